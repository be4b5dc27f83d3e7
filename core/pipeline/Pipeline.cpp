#include "pipeline/Pipeline.h"

#include <Poco/Logger.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <set>
#include <thread>

#include "delivery/Delivery.h"
#include "services/Time.h"

namespace ferry::core {

Pipeline::Pipeline(LiveConfig& config, const PluginRegistry& plugins, Journal& journal,
                   Poco::Logger& logger)
    : config_(config),
      plugins_(plugins),
      services_(std::make_unique<HostServices>(journal, logger)) {
  services_->sink_advanced.setListener([this] { sinkAdvanced(); });
  // Every worker can have a request in flight to one origin, and a few sinks beside them.
  services_->http_settings.max_connections_per_origin = config.get().host.workers + 4;
}

void Pipeline::sinkAdvanced() {
  std::lock_guard lock(sources_mutex_);
  for (auto* s : hooked_) s->sinkAdvanced();
}

void Pipeline::startScheduler() {
  if (scheduler_) return;
  const int64_t workers = config_.get().host.workers;
  auto scheduler = std::make_unique<Scheduler>(static_cast<size_t>(workers));
  std::lock_guard lock(sources_mutex_);  // requestStop() looks at it from a signal's thread
  scheduler_ = std::move(scheduler);
  services_->logger.information("sources run on " + std::to_string(workers) + " worker thread(s)");
}

void Pipeline::logScheduling() {
  if (!scheduler_) return;
  const Scheduler::LatenessReport l = scheduler_->lateness();
  if (l.total.turns == 0) return;
  auto figures = [](const Scheduler::Lateness& x) {
    return std::to_string(x.turns) + " source turn(s), lateness p50 " + std::to_string(x.p50_ms) +
           " ms, p99 " + std::to_string(x.p99_ms) + " ms, max " + std::to_string(x.max_ms) + " ms";
  };
  services_->logger.information("scheduling: since the start " + figures(l.total) +
                                "; since the last report " + figures(l.recent) +
                                (l.stop.turns > 0 ? "; stopping (apart) " + figures(l.stop) : ""));
}

Pipeline::~Pipeline() {
  stop();
  // Fixed order: sources first (they may hold shared state the sinks never touch), then sinks.
  // The runners' destructors destroy the instances; the libraries go when the registry does.
  {
    std::lock_guard lock(sources_mutex_);
    hooked_.clear();
    sources_.clear();
  }
  sinks_.clear();
  scheduler_.reset();
}

std::unique_ptr<Instance> Pipeline::createInstance(const InstanceConfig& instance) {
  auto plugin = plugins_.find(instance.plugin);
  if (!plugin)
    throw ConfigError(instance.file + ": [" + instance.section + "] plugin: unknown plugin '" +
                      instance.plugin + "'");
  // The plugin's refusal names the option; the config file and section say where it is.
  return Instance::create(plugin, instance.file + ": [" + instance.section + "]", *services_,
                          instance.name, instance.kind, instance.secret_values, instance.resolved);
}

void Pipeline::addSink(const InstanceConfig& sink, std::unique_ptr<Instance> instance) {
  const HostSettings& host = config_.get().host;
  sinks_.push_back(std::make_unique<SinkRunner>(
      sink, std::move(instance), *services_,
      BackoffPolicy{host.retry_initial_ms, host.retry_max_ms}, sink.from));
}

void Pipeline::addSource(const Config& config, const InstanceConfig& source,
                         std::unique_ptr<Instance> instance) {
  CycleSettings cycle;
  cycle.lookback_ms = source.lookback_ms;
  cycle.page_size = static_cast<uint32_t>(std::max<int64_t>(1, source.page_size));
  cycle.commit_pages = config.host.commit_pages;
  cycle.commit_interval_ms = config.host.commit_interval_ms;
  cycle.start_from = source.start_from;
  cycle.clock_skew_ms = source.clock_skew_ms;
  auto runner = std::make_unique<SourceRunner>(
      source, std::move(instance), *services_, cycle,
      BackoffPolicy{config.host.retry_initial_ms, config.host.retry_max_ms},
      routedSinks(config, source.name));
  std::lock_guard lock(sources_mutex_);
  if (runner->hasDeliveredHook()) hooked_.push_back(runner.get());
  sources_.push_back(std::move(runner));
}

void Pipeline::create() {
  const Config& config = config_.get();
  for (const auto& sink : config.sinks)
    if (wanted(sink)) addSink(sink, createInstance(sink));
  for (const auto& source : config.sources)
    if (wanted(source)) addSource(config, source, createInstance(source));
  // Instances of one plugin usually poll one API under one rate budget (DuckHub: per client
  // IP): spread their first cycles evenly over the interval.
  std::map<std::string, std::vector<std::pair<SourceRunner*, int64_t>>> by_plugin;
  size_t i = 0;
  for (const auto& source : config.sources) {
    if (!wanted(source)) continue;
    by_plugin[source.plugin].emplace_back(sources_[i++].get(), source.interval_ms);
  }
  for (auto& [plugin, runners] : by_plugin)
    for (size_t k = 0; k < runners.size(); ++k)
      runners[k].first->setPhase(runners[k].second * static_cast<int64_t>(k) /
                                 static_cast<int64_t>(runners.size()));
}

namespace {

// What makes two configurations of one instance the same: its plugin and every resolved option
// (the host's settings for it included) and, for a source, the sinks routed from it (its
// delivered hook waits for them).
std::string fingerprint(const Config& config, const InstanceConfig& instance) {
  std::string f = instance.plugin;
  for (const auto& [key, value] : instance.resolved)
    f += "\n" + key + (value ? "=" + *value : " unset");
  if (instance.kind == "source")
    for (const auto& sink : routedSinks(config, instance.name)) f += "\nrouted to " + sink;
  return f;
}

// The enabled instances of one kind by name, with their fingerprints.
std::map<std::string, std::string> fingerprints(const Config& config,
                                                const std::vector<InstanceConfig>& instances) {
  std::map<std::string, std::string> out;
  for (const auto& i : instances)
    if (i.enabled) out[i.name] = fingerprint(config, i);
  return out;
}

}  // namespace

std::vector<std::string> Pipeline::reload(Config next) {
  const Config& current = config_.get();
  const auto old_sources = fingerprints(current, current.sources);
  const auto old_sinks = fingerprints(current, current.sinks);
  const auto new_sources = fingerprints(next, next.sources);
  const auto new_sinks = fingerprints(next, next.sinks);
  auto same = [](const std::map<std::string, std::string>& from, const std::string& name,
                 const std::string& fp) {
    auto it = from.find(name);
    return it != from.end() && it->second == fp;
  };

  // 1. Every instance that is new or changed is created once on trial, and destroyed again at
  //    once: a refusal changes nothing. (It is not kept: a changed instance must not start while
  //    the one it replaces still runs, both on the same plugin state.)
  std::set<std::string> fresh_sinks, fresh_sources;
  for (const auto& sink : next.sinks)
    if (wanted(sink) && !same(old_sinks, sink.name, new_sinks.at(sink.name))) {
      createInstance(sink).reset();
      fresh_sinks.insert(sink.name);
    }
  for (const auto& source : next.sources)
    if (wanted(source) && !same(old_sources, source.name, new_sources.at(source.name))) {
      createInstance(source).reset();
      fresh_sources.insert(source.name);
    }

  // 2. Stop what is removed or changed: sources first (a page in flight is committed or
  //    dropped whole), then sinks (a batch in flight finishes and its offset is committed).
  std::vector<std::string> lines = retire([&](const std::string& name, const char* kind) {
    const bool source = std::string(kind) == "source";
    return same(source ? new_sources : new_sinks, name,
                (source ? old_sources : old_sinks).at(name));
  });
  for (auto& line : lines) {
    const bool source = line.rfind("stopped source ", 0) == 0;
    const std::string name = line.substr(line.find(' ', 8) + 1);
    line += (source ? new_sources : new_sinks).count(name) ? " (changed)" : " (removed)";
  }
  refused_.clear();

  // 3. The new configuration, and its new and changed instances running. An instance that
  //    refuses now although its trial started (a plugin whose start depends on more than its
  //    options) stays down, named in the log and in the lines.
  config_.set(std::move(next));
  const Config& now = config_.get();
  services_->forgetActivities();  // the retired runners wrote theirs
  for (const auto& sink : now.sinks)
    if (fresh_sinks.count(sink.name)) launch(sink, lines);
  for (const auto& source : now.sources)
    if (fresh_sources.count(source.name)) launch(source, lines);
  return lines;
}

std::vector<std::string> Pipeline::retire(
    const std::function<bool(const std::string& name, const char* kind)>& stays) {
  std::vector<std::string> lines;
  auto stop = [&](auto& runners, const char* kind) {
    std::vector<size_t> gone;
    for (size_t i = 0; i < runners.size(); ++i) {
      if (stays(runners[i]->name(), kind)) continue;
      runners[i]->requestStop();
      gone.push_back(i);
    }
    for (auto it = gone.rbegin(); it != gone.rend(); ++it) {
      const std::string name = runners[*it]->name();
      runners[*it]->join();
      std::lock_guard lock(sources_mutex_);  // sinkAdvanced() looks at the sources
      std::erase(hooked_, static_cast<void*>(runners[*it].get()));
      runners.erase(runners.begin() + static_cast<std::ptrdiff_t>(*it));
      services_->health.remove(name);
      lines.push_back(std::string("stopped ") + kind + " " + name);
    }
  };
  stop(sources_, "source");
  stop(sinks_, "sink");
  return lines;
}

bool Pipeline::launch(const InstanceConfig& instance, std::vector<std::string>& lines) {
  try {
    if (instance.kind == "sink") {
      addSink(instance, createInstance(instance));
      if (started_) sinks_.back()->start();
    } else {
      addSource(config_.get(), instance, createInstance(instance));
      if (started_) sources_.back()->start(*scheduler_, false);
    }
    lines.push_back("started " + instance.kind + " " + instance.name);
    return true;
  } catch (const std::exception& e) {
    services_->logger.error(std::string("starting ") + instance.kind + " " + instance.name + ": " +
                            e.what());
    lines.push_back("could not start " + instance.kind + " " + instance.name);
    return false;
  }
}

std::vector<std::string> Pipeline::adjust(const std::set<std::string>& names) {
  only_ = names;
  std::vector<std::string> lines =
      retire([&](const std::string& name, const char*) { return names.count(name) > 0; });
  if (!lines.empty()) services_->forgetActivities();
  std::set<std::string> running;
  for (const auto& s : sinks_) running.insert(s->name());
  for (const auto& s : sources_) running.insert(s->name());
  const Config& config = config_.get();
  for (const auto* list : {&config.sinks, &config.sources})
    for (const auto& instance : *list) {
      if (!wanted(instance) || refused_.count(instance.name) || running.count(instance.name))
        continue;
      if (!launch(instance, lines)) refused_.insert(instance.name);
    }
  return lines;
}

void Pipeline::start() {
  started_ = true;
  startScheduler();
  for (auto& s : sinks_) s->start();
  for (auto& s : sources_) s->start(*scheduler_, false);
}

void Pipeline::requestStop() {
  services_->stopping = true;
  {
    std::lock_guard lock(sources_mutex_);  // also called from a signal's thread
    if (scheduler_) scheduler_->stopping();
    for (auto& s : sources_) s->interrupt();
  }
  services_->new_events.notify();
  services_->sink_advanced.notify();
}

void Pipeline::stop() {
  if (!started_) return;
  requestStop();
  // Sources first: a page in flight finishes (or fails) and what is complete is committed.
  for (auto& s : sources_) s->join();
  // Then the sinks: a batch in flight finishes and its offset is committed.
  for (auto& s : sinks_) s->join();
  started_ = false;
  logScheduling();
}

SourceRunner* Pipeline::sourceRunner(const std::string& name) {
  for (auto& s : sources_)
    if (s->name() == name) return s.get();
  return nullptr;
}

SinkRunner* Pipeline::sinkRunner(const std::string& name) {
  for (auto& s : sinks_)
    if (s->name() == name) return s.get();
  return nullptr;
}

int Pipeline::runOnce(const std::function<void()>& tick) {
  started_ = true;
  startScheduler();
  for (auto& s : sinks_) s->start();
  for (auto& s : sources_) s->start(*scheduler_, true);
  size_t finished = 0;  // sources_[0, finished) are done: each is looked at until it is, once
  auto all_done = [&] {
    while (finished < sources_.size() && sources_[finished]->finished()) ++finished;
    if (finished < sources_.size()) return false;
    if (!services_->sources_finished.exchange(true)) services_->new_events.notify();
    for (auto& s : sinks_)
      if (!s->finished() && !s->drained()) return false;
    return true;
  };
  uint64_t seen = services_->sink_advanced.generation();
  while (!services_->stopping.load() && !all_done()) {
    seen = services_->sink_advanced.waitFor(seen, 200);
    if (tick) tick();
  }
  // The source threads are done (joined here), so the hooks run on this thread without racing
  // a fetch; the sinks have drained, so every event has reached every routed sink. A stop
  // request (signal) skips them: they run again on the next start.
  for (auto& s : sources_) s->join();
  if (!services_->stopping.load())
    for (auto& s : sources_) s->processDelivered();
  stop();
  applyRetention();
  return anyFailed() ? 1 : 0;
}

std::vector<std::pair<std::string, std::string>> Pipeline::checkAll() {
  std::vector<std::pair<std::string, std::string>> out;
  for (auto& s : sources_) out.emplace_back("[source." + s->name() + "]", s->check());
  for (auto& s : sinks_) out.emplace_back("[sink." + s->name() + "]", s->check());
  return out;
}

bool Pipeline::anyFailed() const {
  for (const auto& s : sources_)
    if (s->failed()) return true;
  for (const auto& s : sinks_)
    if (s->failed()) return true;
  return false;
}

void Pipeline::applyRetention() {
  EventLog& log = services_->event_log;
  SinkLedger& ledger = services_->ledger;
  const Config& config = config_.get();
  int64_t up_to = lowWaterMark(log, ledger, retentionHolders(config, services_->controls));
  // A source with a delivered hook still needs its events until the hook has run: for the
  // sources run here, as their runners know; for those another host runs (several hosts on one
  // journal), as the journal has their hooks' progress (a hooked source records it before its
  // first page, SourceRunner::runCycle()).
  std::set<std::string> here;
  for (const auto& source : sources_) {
    here.insert(source->name());
    if (source->hasDeliveredHook()) up_to = std::min(up_to, ledger.deliveredUpTo(source->name()));
  }
  std::set<std::string> elsewhere;
  for (const auto& source : config.sources)
    if (source.enabled && !here.count(source.name)) elsewhere.insert(source.name);
  if (!elsewhere.empty())
    for (const auto& [source, sequence] : ledger.deliveredProgress())
      if (elsewhere.count(source)) up_to = std::min(up_to, sequence);
  int64_t removed = log.purge(up_to, nowMs() - config.host.retention_ms);
  if (removed > 0)
    services_->logger.information("retention: removed " + std::to_string(removed) +
                                  " event(s) every sink has passed");
}

}  // namespace ferry::core
