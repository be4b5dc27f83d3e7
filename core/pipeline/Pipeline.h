// Wires a validated configuration into running sources and sinks, and takes them down again in
// a fixed order: stop the sources, let the sinks finish their batch, destroy the instances
// (sources, then sinks), and only then may the caller drop the plugin libraries. The sources run
// as tasks of one Scheduler (`[host] workers` threads, Scheduler.h), the sinks on a thread each.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "config/Config.h"
#include "journal/Journal.h"
#include "loader/Loader.h"
#include "pipeline/HostServices.h"
#include "pipeline/Runners.h"

namespace ferry::core {

class Pipeline {
 public:
  // `config` must have passed validate() against `plugins`. Nothing starts yet.
  Pipeline(LiveConfig& config, const PluginRegistry& plugins, Journal& journal,
           Poco::Logger& logger);
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // Only the instances named here are created, started and reloaded (several hosts sharing a
  // journal: the ones whose lease this host holds, LeaseKeeper.h); before create(). Unset: every
  // enabled instance.
  void runOnly(std::set<std::string> names) { only_ = std::move(names); }
  // A started pipeline runs the enabled instances of `names` and no other: runners of others stop
  // (a batch or page in flight finishes and is committed), new ones are created and started.
  // An instance that refuses to be created is named in the log and not tried again until a
  // reload. Returns one line per instance stopped or started.
  std::vector<std::string> adjust(const std::set<std::string>& names);

  // Creates every enabled instance (sinks first, then sources). Throws LoadError(CreateFailed)
  // naming the instance, the plugin file and the plugin's message; whatever was created is
  // destroyed again.
  void create();

  // Starts every runner; returns at once.
  void start();
  // Asks every runner to stop (also safe from another thread); stop() then waits for them.
  void requestStop();
  void stop();

  // --once: every source runs until one cycle succeeded, every sink drains (a paused one counts
  // as drained), the delivered hooks run. `tick` is called about every 200 ms meanwhile (the
  // owner picks up operators' requests there). Returns 0 when all went well, 1 when a source or
  // sink ended stopped.
  int runOnce(const std::function<void()>& tick = {});

  // The runner of an enabled source or sink, null when there is none (disabled, unknown).
  SourceRunner* sourceRunner(const std::string& name);
  SinkRunner* sinkRunner(const std::string& name);

  // For the main loop of `ferry run`: deletes events every sink has passed (an enabled one, or
  // one the journal knows: paused, disabled, no longer configured, until forgotten) and older
  // than the retention. Cheap when there is nothing to do.
  void applyRetention();
  // True when a runner stopped with an error (AUTH/FATAL).
  bool anyFailed() const;
  // After create(), before start(): every instance's check() (`ferry check --connect`), as
  // ("[source.x]", "" or the reason) in config order.
  std::vector<std::pair<std::string, std::string>> checkAll();
  HostServices& services() { return *services_; }
  // Logs how late the sources' turns were taken against their schedule since the start (p50,
  // p99, max): a p99 near the interval says `[host] workers` is too small.
  void logScheduling();

  // Applies `next` (validated against the same plugins, the same [host] settings that need a
  // restart) to a started pipeline: the instances that were added, removed or changed (plugin,
  // options, host settings, routing) are stopped and started anew, the others keep running
  // untouched. Every new or changed instance is created on trial before anything stops: when
  // one refuses to start, this throws (LoadError naming it) and the running configuration goes
  // on unchanged. Returns one line per instance it stopped or started.
  std::vector<std::string> reload(Config next);

 private:
  std::unique_ptr<Instance> createInstance(const InstanceConfig& instance);
  void addSink(const InstanceConfig& sink, std::unique_ptr<Instance> instance);
  void addSource(const Config& config, const InstanceConfig& source,
                 std::unique_ptr<Instance> instance);
  bool wanted(const InstanceConfig& instance) const {
    return instance.enabled && (!only_ || only_->count(instance.name) > 0);
  }
  // Stops and removes the runners `stays` says no to (sources first, then sinks); one line each.
  std::vector<std::string> retire(
      const std::function<bool(const std::string& name, const char* kind)>& stays);
  // Creates and adds (and starts, when the pipeline runs) one runner; false when the instance
  // refused (logged).
  bool launch(const InstanceConfig& instance, std::vector<std::string>& lines);

  // The sources' worker pool, made by start()/runOnce() with `[host] workers` threads.
  void startScheduler();
  // Tells the sources with a delivered hook that a sink moved (from the sinks' threads).
  void sinkAdvanced();

  LiveConfig& config_;
  const PluginRegistry& plugins_;
  std::unique_ptr<HostServices> services_;
  std::unique_ptr<Scheduler> scheduler_;
  // Guards sources_ against sinkAdvanced(), which runs on the sinks' threads; only the owner's
  // thread changes sources_.
  std::mutex sources_mutex_;
  std::vector<std::unique_ptr<SourceRunner>> sources_;
  // The sources with a delivered hook (the only ones a sink's progress concerns).
  std::vector<SourceRunner*> hooked_;
  std::vector<std::unique_ptr<SinkRunner>> sinks_;
  bool started_ = false;
  std::optional<std::set<std::string>> only_;
  std::set<std::string> refused_;  // adjust(): instances that refused to be created
};

}  // namespace ferry::core
