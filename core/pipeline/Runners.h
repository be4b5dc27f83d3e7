// What moves events: one SourceRunner per enabled source (poll cycles, retry with backoff, the
// delivered hook), run as a task of the Scheduler's worker pool (Scheduler.h: a waiting source
// holds no thread); one SinkRunner thread per enabled sink (its own offset, batches,
// OK/RETRY/FATAL, dead letters, replays).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "config/Config.h"
#include "pipeline/CursorEngine.h"
#include "pipeline/HostServices.h"
#include "pipeline/Scheduler.h"
#include "runtime/Instance.h"
#include "services/Backoff.h"

namespace ferry::core {

// The last status a runner recorded in the journal: only changes are written, so that an idle
// loop does not cost a transaction per second.
// Every state also reaches the in-memory health (services/Health.h), with the successes.
class StatusRecorder {
 public:
  // Registers the instance with the health and the metrics. `interval_ms`: a source's poll
  // interval, 0 for a sink.
  StatusRecorder(HostServices& services, std::string name, std::string kind, int64_t interval_ms);
  void record(const std::string& state, const std::string& message, int64_t attempt,
              int64_t next_at_ms);
  // The state for the health alone, not the journal: a routine poll between two idle spells
  // (thousands of sources must not cost two transactions a poll for it).
  void recordTransient(const std::string& state);
  // A poll cycle ended well or a page was committed (source); a batch was written or there was
  // nothing to write (sink).
  void succeeded();
  // The runner waits for work (not in a call into the plugin), or stopped waiting.
  void waiting(bool waiting);
  // The runner ends: "idle", unless it was retrying (its last error is kept).
  void leave();

 private:
  HostServices& services_;
  std::string name_, kind_;
  std::string last_state_, last_message_;
};

// Work an operator's command hands to a runner (a backfill, a rewind, a pause), carried out on the
// runner's own turn at a safe point: between two poll cycles, between two batches. So only the
// runner ever moves its position, and a batch in flight never commits over a rewind. Open while
// the runner runs; post() refuses once it ended (the caller then does the work itself, nothing
// moving that position any more), and what is left when it ends is run then.
class Mailbox {
 public:
  void open();
  // False when the runner's thread does not run (the work was not taken).
  bool post(std::function<void()> work);
  bool hasWork();
  // Runs the posted work on the calling thread; returns whether there was any.
  bool runPending();
  // Refuses further posts and runs what is left.
  void close();

 private:
  std::mutex mutex_;
  std::vector<std::function<void()>> work_;
  bool open_ = false;
};

// What a runner did lately, for `ferry status`: last attempt and success, events ever, and the
// progress of a catch-up. Written at most once a second while busy (flush(true) writes at once).
class ActivityRecorder {
 public:
  ActivityRecorder(HostServices& services, std::string name, std::string kind);
  // Reads the totals the journal has (the counts go on across restarts).
  void load();
  void attempt();
  void succeeded();
  void count(int64_t events);
  void progress(std::string text);
  // Writes what changed, unless the last write is less than `min_gap_ms` old (force: at once).
  void flush(bool force, int64_t min_gap_ms = 1000);

 private:
  HostServices& services_;
  InstanceActivity activity_;
  int64_t written_at_ms_ = 0;
  bool dirty_ = false;
};

// A source as a Scheduler task. Each turn (step()) does, in this order: the operator's work from
// the mailbox, the delivered hook, and one poll cycle when it is due; then it says when it wants
// its next turn (the interval after the cycle's start, a backoff, now when an operator's work
// waits). A sink that moves wakes the sources whose delivered hook has events to confirm, for a
// turn with the hook alone.
//
// Rate limits: a source whose plugin used a shared rate limit (its key is learnt from the
// plugin's first request) reserves the grant for the first request of its next cycle before the
// cycle runs, and takes its turn when the grant is due: a source waiting for a grant holds no
// worker. The later pages of a long cycle (a backfill) and the delivered hook's requests wait for
// their grants inside the plugin's call, on the worker, as work under way.
class SourceRunner final : public Scheduler::Task {
 public:
  SourceRunner(const InstanceConfig& config, std::unique_ptr<Instance> instance,
               HostServices& services,
               CycleSettings cycle, BackoffPolicy backoff, std::vector<std::string> routed_sinks);
  ~SourceRunner() override;

  // Queues the runner's first turn on `scheduler`. With `once`, it ends after the first
  // successful cycle.
  void start(Scheduler& scheduler, bool once);
  // Delays the first cycle of a continuous run, so that instances polling one API spread their
  // polls over the interval instead of firing together.
  void setPhase(int64_t phase_ms) { phase_ms_ = phase_ms; }
  // Waits until the runner ended (at once when it never started).
  void join();
  // True once the runner ended (or never started).
  bool finished() const { return finished_.load(); }
  // True when the source was stopped by an AUTH or FATAL answer.
  bool failed() const { return failed_.load(); }
  // Calls the plugin's delivered() for every event all routed sinks have. Only on the runner's
  // own turn, or after join().
  void processDelivered();
  const std::string& name() const { return name_; }
  // True when the plugin has a delivered() hook and this instance wants it.
  bool hasDeliveredHook() const { return has_hook_; }
  // A sink moved: a runner whose hook may have events to confirm takes a turn for it.
  void sinkAdvanced();
  // Calls the plugin's check() (connectivity, credentials); "" when fine, else the reason.
  // Only before start().
  std::string check();
  void destroyInstance() { instance_.reset(); }
  // Hands `work` to the runner, which runs it on its next turn, between two poll cycles (a cycle
  // under way stops early, keeping what it committed). False when the runner does not run.
  bool post(std::function<void()> work);
  // Ends a cycle under way early and takes a turn at once (a stop of the whole host).
  void interrupt();
  // Stops this runner alone (a reload that removes or changes it): the cycle under way ends early
  // keeping what it committed, and the runner ends; join() waits for it.
  void requestStop();

  // Scheduler::Task: one turn.
  int64_t step() override;

 private:
  int64_t turn();
  // The runner ends: the mailbox's last work, the activity written.
  void finish();
  // One poll cycle; a journal error is an outcome (RETRY), not an exception.
  CycleResult runCycle(int64_t& next_progress);
  PageResult fetchPage(const PageRequest& request);
  void status(const std::string& state, const std::string& message, int64_t attempt = 0,
              int64_t next_at_ms = 0);
  // The whole host stops, or this runner alone.
  bool stopping() const { return stop_.load() || services_.stopping.load(); }

  std::string name_;
  std::unique_ptr<Instance> instance_;
  HostServices& services_;
  CursorEngine engine_;
  BackoffPolicy backoff_;
  int64_t interval_ms_;
  int64_t clock_skew_ms_;
  int64_t phase_ms_ = 0;
  bool has_hook_ = false;
  bool hook_recorded_ = false;  // the hook's progress has a row in the journal (runCycle())
  std::vector<std::string> routed_sinks_;
  Scheduler* scheduler_ = nullptr;
  bool once_ = false;
  // Turn state, touched only on the runner's own turn.
  bool begun_ = false;
  bool announce_running_ = true;  // the next cycle records "running" in the journal
  bool last_ok_ = false;          // the last cycle succeeded
  bool reserved_ = false;         // the grant for the next cycle's first request is reserved
  int64_t reserved_at_ms_ = 0;    // …and due then (steady clock)
  int attempt_ = 0;
  int64_t next_cycle_ms_ = 0;     // steady clock
  // The delivered hook has events to confirm (set by commits and by processDelivered(), which
  // also clears it once the hook saw every event of the source). Events left from an earlier run
  // are found by the first turn's processDelivered().
  std::atomic<bool> hook_pending_{false};
  std::atomic<bool> finished_{true};
  std::atomic<bool> failed_{false};
  std::atomic<bool> stop_{false};
  // Ends the cycle under way: a stop request, or work in the mailbox.
  std::atomic<bool> interrupt_{false};
  Mailbox mailbox_;
  StatusRecorder status_;
  ActivityRecorder activity_;
};

class SinkRunner {
 public:
  SinkRunner(const InstanceConfig& config, std::unique_ptr<Instance> instance,
             HostServices& services,
             BackoffPolicy backoff, std::vector<std::string> sources);
  ~SinkRunner();

  void start();
  void join();
  bool finished() const { return finished_.load(); }
  bool failed() const { return failed_.load(); }
  // True when the sink has every event routed to it and no replay is pending, or is paused.
  bool drained();
  // Hands `work` to the runner's thread, which runs it between two batches and then reads its
  // offset and pause from the journal again. False when the thread does not run.
  bool post(std::function<void()> work);
  const std::string& name() const { return name_; }
  const std::vector<std::string>& sources() const { return sources_; }
  // Stops this runner alone (a reload that removes or changes it): the batch in flight finishes
  // and its offset is committed, then the thread ends; join() waits for it.
  void requestStop();
  // Calls the plugin's check() (reachable, writable); "" when fine, else the reason. Only
  // before start().
  std::string check();
  void destroyInstance() { instance_.reset(); }

 private:
  enum class Step { Progress, Idle, Retry, Stopped };
  void loop();
  Step deliverReplays();
  Step deliverFeed();
  // Runs the mailbox; after work, the offset and the pause are read from the journal again.
  void takeWork();
  void status(const std::string& state, const std::string& message, int64_t attempt = 0,
              int64_t next_at_ms = 0);
  bool sleepFor(int64_t ms);
  bool stopping() const { return stop_.load() || services_.stopping.load(); }
  // Counts the failed attempt, records the retrying status and waits the backoff delay.
  void backOff(const std::string& message, int64_t retry_after_ms);
  // Whether the sink may write to its target now (its lease, HostServices::mayWrite()); when not,
  // backs off.
  bool leaseHeld();

  std::string name_;
  std::unique_ptr<Instance> instance_;
  HostServices& services_;
  BackoffPolicy backoff_;
  std::vector<std::string> sources_;  // empty: every source
  size_t batch_size_;
  int64_t batch_delay_ms_;
  bool skip_echo_;
  int64_t offset_ = 0;
  int attempt_ = 0;
  std::thread thread_;
  std::atomic<bool> finished_{true};
  std::atomic<bool> failed_{false};
  std::atomic<bool> paused_{false};
  std::atomic<bool> stop_{false};
  Mailbox mailbox_;
  StatusRecorder status_;
  ActivityRecorder activity_;
};

}  // namespace ferry::core
