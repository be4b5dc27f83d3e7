#include "pipeline/Runners.h"

#include <Poco/Logger.h>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <random>

#include "delivery/Delivery.h"
#include "services/Time.h"

namespace ferry::core {
namespace {

// Waits are cut into short slices so that a stop request is seen quickly.
constexpr int64_t kSliceMs = 200;
constexpr int64_t kProgressEveryMs = 10000;
constexpr int64_t kIdleActivityEveryMs = 60000;

// The status line of an instance stopped by `s` (AUTH, STOP or FATAL).
std::string stoppedBecause(Status s, const std::string& message) {
  if (s == Status::Auth) return "authentication refused: " + message;
  if (s == Status::Fatal) return "fatal error: " + message;
  return message;
}

// The retry jitter's random numbers: one engine per thread, not one per runner (a host runs
// thousands of sources, and a std::mt19937_64 holds 2.5 KiB of state). A runner's turns run on
// one thread at a time, so each call uses the engine of the thread it runs on.
std::mt19937_64& jitterRng() {
  thread_local std::mt19937_64 rng(std::random_device{}());
  return rng;
}

}  // namespace

StatusRecorder::StatusRecorder(HostServices& services, std::string name, std::string kind,
                               int64_t interval_ms)
    : services_(services), name_(std::move(name)), kind_(std::move(kind)) {
  services_.health.add(name_, kind_, interval_ms, nowMs());
  services_.metrics.declareInstance(name_, kind_);
}

void StatusRecorder::succeeded() { services_.health.succeeded(name_, nowMs()); }

void StatusRecorder::waiting(bool waiting) {
  services_.health.setWaiting(name_, waiting, nowMs());
}

void StatusRecorder::record(const std::string& state, const std::string& message,
                            int64_t attempt, int64_t next_at_ms) {
  services_.health.setState(name_, state, message, nowMs());
  if (state == last_state_ && message == last_message_ && attempt == 0) return;
  last_state_ = state;
  last_message_ = message;
  try {
    services_.instance_state.setStatus(
        InstanceStatus{name_, kind_, state, message, nowMs(), attempt, next_at_ms});
  } catch (const std::exception& e) {
    services_.logger.warning(kind_ + " " + name_ + ": cannot record status: " + e.what());
  }
}

void StatusRecorder::recordTransient(const std::string& state) {
  services_.health.setState(name_, state, "", nowMs());
}

void StatusRecorder::leave() {
  // A stop while retrying keeps the last error, so that the operator still sees why after the
  // process ended; otherwise the instance is idle.
  if (last_state_ != "retrying") record("idle", "", 0, 0);
}

void Mailbox::open() {
  std::lock_guard lock(mutex_);
  open_ = true;
}

bool Mailbox::post(std::function<void()> work) {
  std::lock_guard lock(mutex_);
  if (!open_) return false;
  work_.push_back(std::move(work));
  return true;
}

bool Mailbox::hasWork() {
  std::lock_guard lock(mutex_);
  return !work_.empty();
}

bool Mailbox::runPending() {
  std::vector<std::function<void()>> work;
  {
    std::lock_guard lock(mutex_);
    work.swap(work_);
  }
  for (auto& w : work) w();
  return !work.empty();
}

void Mailbox::close() {
  {
    std::lock_guard lock(mutex_);
    open_ = false;
  }
  runPending();
}

ActivityRecorder::ActivityRecorder(HostServices& services, std::string name, std::string kind)
    : services_(services) {
  activity_.name = std::move(name);
  activity_.kind = std::move(kind);
}

void ActivityRecorder::load() {
  try {
    if (auto a = services_.storedActivity(activity_.kind, activity_.name)) {
      activity_.last_attempt_ms = a->last_attempt_ms;
      activity_.last_success_ms = a->last_success_ms;
      activity_.events_total = a->events_total;
    }
  } catch (const JournalError& e) {
    services_.logger.warning(activity_.kind + " " + activity_.name +
                             ": cannot read its activity: " + e.what());
  }
}

void ActivityRecorder::attempt() {
  activity_.last_attempt_ms = nowMs();
  dirty_ = true;
}

void ActivityRecorder::succeeded() {
  activity_.last_success_ms = nowMs();
  dirty_ = true;
}

void ActivityRecorder::count(int64_t events) {
  if (events == 0) return;
  activity_.events_total += events;
  dirty_ = true;
}

void ActivityRecorder::progress(std::string text) {
  if (text != activity_.progress) dirty_ = true;
  activity_.progress = std::move(text);
}

void ActivityRecorder::flush(bool force, int64_t min_gap_ms) {
  if (!dirty_) return;
  const int64_t now = nowMs();
  if (!force && now - written_at_ms_ < min_gap_ms) return;
  try {
    services_.controls.recordActivity(activity_);
    written_at_ms_ = now;
    dirty_ = false;
  } catch (const JournalError& e) {
    services_.logger.warning(activity_.kind + " " + activity_.name +
                             ": cannot record its activity: " + e.what());
  }
}

// ---------------------------------------------------------------------------------------------
// SourceRunner
// ---------------------------------------------------------------------------------------------

SourceRunner::SourceRunner(const InstanceConfig& config, std::unique_ptr<Instance> instance,
                           HostServices& services, CycleSettings cycle, BackoffPolicy backoff,
                           std::vector<std::string> routed_sinks)
    : name_(config.name),
      instance_(std::move(instance)),
      services_(services),
      engine_(config.name, services.event_log, std::move(cycle), &services.handoff),
      backoff_(backoff),
      interval_ms_(config.interval_ms),
      clock_skew_ms_(config.clock_skew_ms),
      routed_sinks_(std::move(routed_sinks)),
      status_(services, config.name, "source", config.interval_ms),
      activity_(services, config.name, "source") {
  has_hook_ = instance_->wantsDelivered();
  instance_->setSetAsideRule(config.set_aside_after, [this](const std::string& fingerprint) {
    return services_.event_log.setAsideKnown(name_, fingerprint);
  });
}

SourceRunner::~SourceRunner() { join(); }

void SourceRunner::requestStop() {
  stop_ = true;
  interrupt();
}

void SourceRunner::interrupt() {
  interrupt_ = true;
  if (scheduler_ != nullptr) scheduler_->wake(this);
}

namespace {

// The shared part of SourceRunner::check and SinkRunner::check.
std::string checkInstance(Instance& instance) {
  Outcome o = instance.check();
  return o.ok() ? "" : stoppedBecause(o.status, o.message);
}

}  // namespace

std::string SourceRunner::check() { return checkInstance(*instance_); }

void SourceRunner::start(Scheduler& scheduler, bool once) {
  scheduler_ = &scheduler;
  once_ = once;
  finished_ = false;
  mailbox_.open();
  next_cycle_ms_ = Scheduler::nowMs() + (once ? 0 : phase_ms_);
  scheduler.add(this, next_cycle_ms_);
}

void SourceRunner::join() {
  if (scheduler_ != nullptr) scheduler_->waitDone(this);
}

void SourceRunner::status(const std::string& state, const std::string& message, int64_t attempt,
                          int64_t next_at_ms) {
  status_.record(state, message, attempt, next_at_ms);
}

bool SourceRunner::post(std::function<void()> work) {
  if (!mailbox_.post(std::move(work))) return false;
  interrupt();  // the cycle under way ends early, and the runner takes a turn at once
  return true;
}

void SourceRunner::sinkAdvanced() {
  if (has_hook_ && hook_pending_.load() && scheduler_ != nullptr) scheduler_->wake(this);
}

PageResult SourceRunner::fetchPage(const PageRequest& request) {
  PageResult page;
  Outcome o = instance_->fetch(request.since, request.since_ms, request.offset, request.limit,
                               page.items, page.set_aside);
  page.status = o.status;
  page.error = o.message;
  page.retry_after_ms = o.retry_after_ms;
  page.received = static_cast<uint32_t>(o.done);
  services_.metrics.add("source_pages_total", name_, o.ok() ? 1 : 0);
  services_.metrics.add("source_items_total", name_, static_cast<double>(page.items.size()));
  return page;
}

void SourceRunner::finish() {
  mailbox_.close();
  activity_.progress("");
  activity_.flush(true);
  finished_ = true;
  services_.sink_advanced.notify();  // wakes a waiting --once pipeline
}

int64_t SourceRunner::step() {
  // The plugin's HTTP exchanges on this worker belong to this instance until the turn ends.
  Metrics::setThreadInstance(name_);
  int64_t next = Scheduler::kDone;
  try {
    next = turn();
  } catch (const std::exception& e) {
    failed_ = true;
    services_.logger.error("source " + name_ + ": stopped by an internal error: " + e.what());
    status("stopped", std::string("internal error: ") + e.what());
    next = Scheduler::kDone;
  }
  Metrics::setThreadInstance("");
  if (next == Scheduler::kDone) finish();
  return next;
}

int64_t SourceRunner::turn() {
  if (!begun_) {
    begun_ = true;
    activity_.load();
  }
  if (stopping()) {
    status_.leave();
    return Scheduler::kDone;
  }
  // Woken before the cycle is due by a sink's progress: the delivered hook alone. Operator work
  // is carried out at once and the cycle follows it (as a poll on demand).
  if (!mailbox_.hasWork() && Scheduler::nowMs() < next_cycle_ms_) {
    processDelivered();
    return next_cycle_ms_;
  }
  // The first request of the cycle needs a grant of a shared rate limit: reserve it, and come
  // back when it is due instead of waiting for it on a worker.
  const std::string& rate_key = instance_->rateKey();
  if (!reserved_ && !rate_key.empty() && !mailbox_.hasWork()) {
    if (auto at = services_.rate_limiters.reserve(rate_key)) {
      reserved_ = true;
      reserved_at_ms_ = *at;
      instance_->prepay(rate_key);
      if (*at > Scheduler::nowMs()) {
        next_cycle_ms_ = *at;
        return next_cycle_ms_;
      }
    }
  }
  // Operator work cut the wait for a reserved grant short: the grant is not due yet, so the
  // cycle's first request waits for one of its own (the reserved one goes unused).
  if (reserved_ && Scheduler::nowMs() < reserved_at_ms_) instance_->prepay("");
  reserved_ = false;

  // A stop request sets both flags, the stop first: clearing ours cannot swallow it.
  interrupt_ = false;
  if (stopping()) interrupt_ = true;
  mailbox_.runPending();
  processDelivered();
  // The first cycle, and one after a failure, say "running" in the journal too; a routine poll
  // after an idle spell only in the health (the journal would get two writes a poll for it).
  if (announce_running_) status("running", "");
  else if (last_ok_) status_.recordTransient("running");  // after a failure: still "retrying"
  const int64_t cycle_start = Scheduler::nowMs();
  int64_t next_progress = cycle_start + kProgressEveryMs;
  activity_.attempt();
  CycleResult r = runCycle(next_progress);
  last_ok_ = r.status == Status::Ok;
  instance_->prepay("");  // a grant the cycle did not use is not kept for later
  services_.metrics.add("source_events_total", name_, static_cast<double>(r.new_events));
  if (r.set_aside > 0) {
    services_.metrics.add("source_set_aside_total", name_, static_cast<double>(r.set_aside));
    services_.logger.warning("source " + name_ + ": " + std::to_string(r.set_aside) +
                             " unreadable item(s) set aside as dead letters, the source goes "
                             "on: see ferry dead-letters list --source " + name_);
  }
  if (r.new_events > 0) hook_pending_ = true;
  activity_.progress("");
  activity_.count(r.new_events);
  if (r.status == Status::Ok) activity_.succeeded();
  // What `ferry status` shows between two polls: at once when the cycle brought events or
  // failed, else at most once a minute (an idle poll costs no transaction).
  activity_.flush(r.new_events > 0 || r.status != Status::Ok, kIdleActivityEveryMs);
  // Said in the log and counted once per item; shown in the status while such items are read.
  auto future = [&](int64_t count) {
    return std::to_string(count) + " item(s) stamped more than " +
           formatDurationMs(clock_skew_ms_) + " (clock_skew) ahead of this host's clock, e.g. " +
           r.future_example + ": delivered, but the cursor does not follow them (check the "
           "remote's clock and this host's)";
  };
  if (r.future_items > 0) {
    services_.logger.warning("source " + name_ + ": " + future(r.future_items));
    services_.metrics.add("source_future_items_total", name_,
                          static_cast<double>(r.future_items));
  }
  if (stopping()) {
    status_.leave();
    return Scheduler::kDone;
  }
  // An operator's command waits (the cycle stopped early, keeping what it committed): carry it
  // out, then poll again at once.
  if (interrupt_.load() && mailbox_.hasWork()) {
    announce_running_ = false;
    return Scheduler::nowMs();
  }
  if (r.status == Status::Ok) {
    instance_->forgetSetAsideTries();
    if (attempt_ > 0)
      services_.logger.information("source " + name_ + ": recovered after " +
                                   std::to_string(attempt_) + " failed attempt(s)");
    attempt_ = 0;
    std::string summary = "source " + name_ + ": " + std::to_string(r.new_events) +
                          " new event(s) in " + std::to_string(r.pages) + " page(s), cursor " +
                          r.cursor;
    if (r.new_events > 0) services_.logger.information(summary);
    else services_.logger.debug(summary);
    status_.succeeded();
    status("idle", r.future_seen > 0 ? future(r.future_seen) : "");
    if (once_) return Scheduler::kDone;
    announce_running_ = false;
    next_cycle_ms_ = cycle_start + interval_ms_;
    return next_cycle_ms_;
  }
  if (r.status == Status::Auth || r.status == Status::Fatal || r.status == Status::Stop) {
    failed_ = true;
    services_.logger.error("source " + name_ + ": stopped, " + stoppedBecause(r.status, r.error));
    status("stopped", stoppedBecause(r.status, r.error));
    return Scheduler::kDone;
  }
  // A cycle that committed something before it failed made progress: only failures in a row
  // without progress grow the backoff, so occasional errors during a long backfill do not
  // slow it down more and more.
  if (r.new_events > 0) attempt_ = 0;
  ++attempt_;
  int64_t delay = backoffDelayMs(backoff_, attempt_, r.retry_after_ms, jitterRng());
  services_.logger.warning("source " + name_ + ": " + r.error + "; retry " +
                           std::to_string(attempt_) + " in " + formatDurationMs(delay));
  services_.metrics.add("source_retries_total", name_, 1);
  status("retrying", r.error, attempt_, nowMs() + delay);
  announce_running_ = false;  // still "retrying" until a cycle succeeds
  next_cycle_ms_ = Scheduler::nowMs() + delay;
  return next_cycle_ms_;
}

CycleResult SourceRunner::runCycle(int64_t& next_progress) {
  int64_t committed = 0;
  const int64_t started = steadyMs();
  try {
    if (has_hook_ && !hook_recorded_) {
      // The hook's progress gets its row before this source's first page, so that retention
      // keeps the source's events for its hook also on a host that does not run the source
      // (several hosts on one journal: Pipeline::applyRetention()).
      SinkLedger& ledger = services_.ledger;
      if (ledger.deliveredUpTo(name_) == 0) ledger.setDeliveredUpTo(name_, 0);
      hook_recorded_ = true;
    }
    return engine_.runCycle(
        [this](const PageRequest& q) { return fetchPage(q); }, interrupt_,
        [&](const CycleResult& so_far, const Cursor& cursor) {
          committed = so_far.new_events;
          status_.succeeded();
          services_.new_events.notify();
          // A long catch-up (a backfill) says how far it got, in the log and in `ferry status`,
          // so that an operator sees it move.
          const int64_t elapsed_ms = std::max<int64_t>(1, steadyMs() - started);
          const std::string progress =
              std::to_string(so_far.pages) + " page(s), " + std::to_string(so_far.new_events) +
              " new event(s), at " + cursor.since + ", " +
              std::to_string(so_far.new_events * 1000 / elapsed_ms) + " events/s";
          activity_.progress("catching up: " + progress);
          activity_.flush(false);
          if (steadyMs() >= next_progress) {
            next_progress = steadyMs() + kProgressEveryMs;
            services_.logger.information("source " + name_ + ": catching up, " + progress);
          }
        });
  } catch (const JournalError& e) {
    // The journal failed (disk full, I/O error, locked): nothing of the failed page counts, the
    // cursor stays where the journal has it, and the cycle is retried like any transient error,
    // so the source recovers by itself once the journal does.
    CycleResult r;
    r.status = Status::Retry;
    r.error = std::string("journal: ") + e.what();
    r.new_events = committed;
    return r;
  }
}

void SourceRunner::processDelivered() {
  if (!instance_ || !has_hook_) return;
  EventLog& log = services_.event_log;
  SinkLedger& ledger = services_.ledger;
  try {
    const int64_t up_to = lowWaterMark(log, ledger, routed_sinks_);
    int64_t from = ledger.deliveredUpTo(name_);
    bool blocked = false;
    int64_t saved = from;
    // The hook writes to the remote: only while the lease is surely held (LeaseKeeper.h).
    while (from < up_to && !stopping() && services_.mayWrite(name_)) {
      auto events = log.readAfter(from, {name_}, 500);
      auto dead = ledger.deadLetteredBetween(from, up_to);
      int64_t reached = from;
      for (const auto& e : events) {
        if (e.sequence > up_to) break;
        if (!std::binary_search(dead.begin(), dead.end(), e.sequence)) {
          Outcome o = instance_->delivered(e);
          if (o.status != Status::Retry && o.reached_remote) {
            // The hook changed something at the remote (a DuckHub confirmation): its progress
            // is saved at once, so that a restart never repeats it.
            ledger.setDeliveredUpTo(name_, e.sequence);
            saved = e.sequence;
          }
          if (o.status == Status::Retry) {
            services_.logger.warning("source " + name_ + ": delivered(" + e.idempotencyKey() +
                                     ") will be retried: " + o.message);
            blocked = true;
            break;
          }
          if (!o.ok())
            services_.logger.error("source " + name_ + ": delivered(" + e.idempotencyKey() +
                                   ") failed: " + o.message);
        }
        reached = e.sequence;
      }
      // Events of other sources between `reached` and `up_to` need no hook.
      if (!blocked && events.size() < 500) reached = up_to;
      if (reached > saved) {
        ledger.setDeliveredUpTo(name_, reached);
        saved = reached;
      }
      if (blocked || reached == from) break;
      from = reached;
    }
    // When the hook has seen every event of this source, a sink's progress does not concern it
    // until its next commit (hook_pending_): thousands of hooked sources are not woken by every
    // batch of every sink.
    if (!stopping()) hook_pending_ = blocked || !log.readAfter(saved, {name_}, 1).empty();
  } catch (const std::exception& e) {
    services_.logger.warning("source " + name_ + ": delivered hook postponed: " + e.what());
  }
}

// ---------------------------------------------------------------------------------------------
// SinkRunner
// ---------------------------------------------------------------------------------------------

SinkRunner::SinkRunner(const InstanceConfig& config, std::unique_ptr<Instance> instance,
                       HostServices& services, BackoffPolicy backoff,
                       std::vector<std::string> sources)
    : name_(config.name),
      instance_(std::move(instance)),
      services_(services),
      backoff_(backoff),
      sources_(std::move(sources)),
      batch_size_(static_cast<size_t>(std::max<int64_t>(1, config.batch_size))),
      batch_delay_ms_(config.batch_delay_ms),
      skip_echo_(config.skip_echo),
      status_(services, config.name, "sink", 0),
      activity_(services, config.name, "sink") {}

SinkRunner::~SinkRunner() { join(); }

void SinkRunner::requestStop() { stop_ = true; }

std::string SinkRunner::check() { return checkInstance(*instance_); }

void SinkRunner::start() {
  finished_ = false;
  mailbox_.open();
  thread_ = std::thread([this] {
    Metrics::setThreadInstance(name_);
    try {
      loop();
    } catch (const std::exception& e) {
      failed_ = true;
      services_.logger.error("sink " + name_ + ": stopped by an internal error: " + e.what());
      status("stopped", std::string("internal error: ") + e.what());
    }
    mailbox_.close();
    activity_.flush(true);
    finished_ = true;
    services_.sink_advanced.notify();
  });
}

void SinkRunner::join() {
  if (thread_.joinable()) thread_.join();
}

bool SinkRunner::post(std::function<void()> work) {
  if (!mailbox_.post(std::move(work))) return false;
  services_.new_events.notify();  // wakes the runner when it waits for events
  return true;
}

void SinkRunner::takeWork() {
  if (!mailbox_.runPending()) return;
  offset_ = services_.ledger.sinkOffset(name_);
  paused_ = services_.controls.sinkPaused(name_);
}

bool SinkRunner::drained() {
  if (paused_.load()) return true;
  SinkLedger& ledger = services_.ledger;
  try {
    return services_.event_log.countAfter(ledger.sinkOffset(name_), sources_) == 0 &&
           ledger.pendingReplays(name_, 1).empty();
  } catch (const JournalError&) {
    return false;  // unknown until the journal answers again
  }
}

void SinkRunner::status(const std::string& state, const std::string& message, int64_t attempt,
                        int64_t next_at_ms) {
  status_.record(state, message, attempt, next_at_ms);
}

bool SinkRunner::sleepFor(int64_t ms) {
  const int64_t until = steadyMs() + ms;
  while (!stopping()) {
    int64_t left = until - steadyMs();
    // An operator's command (a pause, a rewind) need not wait for the backoff.
    if (left <= 0 || mailbox_.hasWork()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(left, kSliceMs)));
  }
  return false;
}

bool SinkRunner::leaseHeld() {
  if (services_.mayWrite(name_)) return true;
  backOff("its lease was not renewed in time (this host was paused, or cut off from "
          "PostgreSQL): nothing is written until it is, or until another host takes it over",
          -1);
  return false;
}

SinkRunner::Step SinkRunner::deliverReplays() {
  SinkLedger& ledger = services_.ledger;
  auto replays = ledger.pendingReplays(name_, batch_size_);
  if (replays.empty()) return Step::Idle;
  std::vector<const JournalEvent*> events;
  for (const auto& d : replays) events.push_back(&d.event);
  if (!leaseHeld()) return Step::Retry;
  activity_.attempt();
  const Outcome w = instance_->write(events);
  activity_.count(static_cast<int64_t>(w.done));
  const size_t done = w.done;
  const std::string& message = w.message;
  for (size_t i = 0; i < done; ++i) ledger.settleReplay(replays[i].id, std::nullopt);
  if (w.ok()) {
    activity_.succeeded();
    services_.logger.information("sink " + name_ + ": replayed " + std::to_string(done) +
                                 " dead letter(s)");
    return Step::Progress;
  }
  if (w.status == Status::Fatal) {
    ledger.settleReplay(replays[done].id, message);
    services_.logger.error("sink " + name_ + ": replay of " + events[done]->idempotencyKey() +
                           " failed again: " + message);
    return Step::Progress;
  }
  if (w.status == Status::Auth || w.status == Status::Stop) {
    failed_ = true;
    services_.logger.error("sink " + name_ + ": stopped, " + stoppedBecause(w.status, message));
    status("stopped", stoppedBecause(w.status, message));
    return Step::Stopped;
  }
  backOff(message, w.retry_after_ms);
  return Step::Retry;
}

void SinkRunner::backOff(const std::string& message, int64_t retry_after_ms) {
  ++attempt_;
  int64_t delay = backoffDelayMs(backoff_, attempt_, retry_after_ms, jitterRng());
  services_.logger.warning("sink " + name_ + ": " + message + "; retry " +
                           std::to_string(attempt_) + " in " + formatDurationMs(delay));
  services_.metrics.add("sink_retries_total", name_, 1);
  status("retrying", message, attempt_, nowMs() + delay);
  sleepFor(delay);
}

SinkRunner::Step SinkRunner::deliverFeed() {
  EventLog& log = services_.event_log;
  SinkLedger& ledger = services_.ledger;
  EventBatch events = readFeed(services_.handoff, log, offset_, sources_, batch_size_);
  if (events.empty()) return Step::Idle;

  // A partial batch waits up to batch_delay for more events, so that a trickle still arrives in
  // batches while a backlog is written at once.
  if (events.size() < batch_size_ && batch_delay_ms_ > 0 && !services_.sources_finished.load()) {
    const int64_t until = steadyMs() + batch_delay_ms_;
    uint64_t seen = services_.new_events.generation();
    while (!stopping() && !services_.sources_finished.load() &&
           steadyMs() < until) {
      seen = services_.new_events.waitFor(seen, std::min(kSliceMs, until - steadyMs()));
      if (countFeed(services_.handoff, log, offset_, sources_) >= static_cast<int64_t>(batch_size_))
        break;
    }
    events = readFeed(services_.handoff, log, offset_, sources_, batch_size_);
  }

  const int64_t batch_last = events.back()->sequence;
  std::vector<const JournalEvent*> to_write;
  to_write.reserve(events.size());
  for (const auto& e : events)
    if (!(skip_echo_ && e->echo)) to_write.push_back(e.get());

  if (to_write.empty()) {
    ledger.advanceSink(name_, batch_last, std::nullopt, {});
    offset_ = batch_last;
    services_.sink_advanced.notify();
    return Step::Progress;
  }

  if (!leaseHeld()) return Step::Retry;
  activity_.attempt();
  const Outcome w = instance_->write(to_write);
  const size_t done = w.done;
  const std::string& message = w.message;
  activity_.count(static_cast<int64_t>(done));
  if (w.ok()) activity_.succeeded();
  activity_.flush(false);

  auto delivered = [&](size_t count) -> std::optional<DeliveryRange> {
    if (count == 0) return std::nullopt;
    return DeliveryRange{to_write.front()->sequence, to_write[count - 1]->sequence,
                         std::to_string(count) + " event(s)"};
  };
  if (w.ok()) {
    ledger.advanceSink(name_, batch_last, delivered(done), {});
    offset_ = batch_last;
    services_.metrics.add("sink_events_total", name_, static_cast<double>(done));
    services_.sink_advanced.notify();
    return Step::Progress;
  }
  if (w.status == Status::Fatal) {
    // Events before `done` are durable, event `done` can never be written: dead-letter it and
    // go on with the next one. Skipped echoes between them are covered by the offset.
    const JournalEvent& dead = *to_write[done];
    ledger.advanceSink(name_, dead.sequence, delivered(done), {{dead.sequence, message}});
    offset_ = dead.sequence;
    services_.logger.error("sink " + name_ + ": " + dead.idempotencyKey() +
                           " moved to the dead letters: " + message);
    services_.metrics.add("sink_dead_letters_total", name_, 1);
    services_.metrics.add("sink_events_total", name_, static_cast<double>(done));
    services_.sink_advanced.notify();
    return Step::Progress;
  }
  if (done > 0) {
    ledger.advanceSink(name_, to_write[done - 1]->sequence, delivered(done), {});
    offset_ = to_write[done - 1]->sequence;
    services_.sink_advanced.notify();
    // A transient error after progress is not a failure streak: the backoff starts over.
    attempt_ = 0;
  }
  if (w.status == Status::Auth || w.status == Status::Stop) {
    failed_ = true;
    services_.logger.error("sink " + name_ + ": stopped, " + stoppedBecause(w.status, message));
    status("stopped", stoppedBecause(w.status, message));
    return Step::Stopped;
  }
  backOff(message, w.retry_after_ms);
  return Step::Retry;
}

void SinkRunner::loop() {
  // The offset is read once; until the journal can be read, the sink waits for it.
  bool known = false;
  while (!known && !stopping()) {
    try {
      offset_ = services_.ledger.sinkOffset(name_);
      paused_ = services_.controls.sinkPaused(name_);
      known = true;
    } catch (const JournalError& e) {
      backOff(std::string("journal: ") + e.what(), -1);
    }
  }
  attempt_ = 0;
  activity_.load();
  status("running", "");
  int failures = 0;
  bool was_paused = false;
  while (!stopping()) {
    uint64_t seen = services_.new_events.generation();
    Step o = Step::Idle;
    try {
      takeWork();
      if (paused_.load()) {
        // Paused by an operator: nothing is written, the offset holds retention, and only a
        // command (resume, rewind) or a stop wakes the runner.
        status("paused", "");
        activity_.flush(true);
        was_paused = true;
        services_.new_events.waitFor(seen, kSliceMs * 5);
        continue;
      }
      if (was_paused) {
        was_paused = false;
        services_.logger.information("sink " + name_ + ": resumed at offset " +
                                     std::to_string(offset_));
        status("running", "");
      }
      o = deliverReplays();
      if (o == Step::Idle) o = deliverFeed();
    } catch (const JournalError& e) {
      // The journal failed (disk full, I/O error): the offset stays where the journal has it,
      // and a batch the plugin already wrote is written again after recovery (sinks are
      // idempotent by the event's key). Backing off here, instead of ending the thread, lets
      // the sink recover by itself once the journal does.
      backOff(std::string("journal: ") + e.what(), -1);
      o = Step::Retry;
    }
    if (o == Step::Stopped) return;
    if (o == Step::Retry) {
      ++failures;
      continue;
    }
    status_.succeeded();
    if (failures > 0) {
      services_.logger.information("sink " + name_ + ": recovered after " +
                                   std::to_string(failures) + " failed attempt(s)");
      failures = 0;
      attempt_ = 0;
      status("running", "");
    }
    if (o == Step::Idle) {
      status("idle", "");
      activity_.flush(true);
      status_.waiting(true);
      services_.new_events.waitFor(seen, kSliceMs * 5);
      status_.waiting(false);
    }
  }
  status_.leave();
}

}  // namespace ferry::core
