#include "pipeline/Runners.h"

#include <Poco/Logger.h>

#include <algorithm>
#include <chrono>
#include <cstddef>

#include "delivery/Delivery.h"
#include "services/Time.h"

namespace ferry::core {
namespace {

// Waits are cut into short slices so that a stop request is seen quickly.
constexpr int64_t kSliceMs = 200;
constexpr int64_t kProgressEveryMs = 10000;

int64_t steadyNowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

const char* statusName(ferry_status s) {
  switch (s) {
    case FERRY_OK: return "OK";
    case FERRY_RETRY: return "RETRY";
    case FERRY_FATAL: return "FATAL";
    case FERRY_AUTH: return "AUTH";
    case FERRY_STOP: return "STOP";
  }
  return "unknown status";
}

// The status line of an instance stopped by `s` (AUTH, STOP or FATAL).
std::string stoppedBecause(ferry_status s, const std::string& message) {
  if (s == FERRY_AUTH) return "authentication refused: " + message;
  if (s == FERRY_FATAL) return "fatal error: " + message;
  return message;
}

std::string messageOr(const std::string& message, ferry_status s) {
  return message.empty() ? std::string("plugin answered ") + statusName(s) + " without a message"
                         : message;
}

}  // namespace

void StatusRecorder::record(const std::string& state, const std::string& message,
                            int64_t attempt, int64_t next_at_ms) {
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

// ---------------------------------------------------------------------------------------------
// SourceRunner
// ---------------------------------------------------------------------------------------------

SourceRunner::SourceRunner(const InstanceConfig& config, InstanceHandle handle,
                           HostServices& services, CycleSettings cycle, BackoffPolicy backoff,
                           std::vector<std::string> routed_sinks)
    : name_(config.name),
      handle_(std::move(handle)),
      services_(services),
      engine_(config.name, services.event_log, std::move(cycle), &services.handoff),
      backoff_(backoff),
      interval_ms_(config.interval_ms),
      routed_sinks_(std::move(routed_sinks)),
      rng_(std::random_device{}()),
      status_(services, config.name, "source") {
  const ferry_source_api* api = handle_.instance->source();
  has_hook_ = api->delivered != nullptr;
  // wants_delivered was appended to the table: only read it when the plugin's table has it.
  if (has_hook_ && api->struct_size >= offsetof(ferry_source_api, wants_delivered) +
                                           sizeof(api->wants_delivered) &&
      api->wants_delivered != nullptr)
    has_hook_ = api->wants_delivered(handle_.instance->handle()) != 0;
}

SourceRunner::~SourceRunner() { join(); }

namespace {

// The shared part of SourceRunner::check and SinkRunner::check.
std::string checkInstance(InstanceHandle& handle, ferry_status (*check)(void*)) {
  if (check == nullptr) return "";
  handle.ctx->clearError();
  ferry_status s = check(handle.instance->handle());
  return s == FERRY_OK ? "" : stoppedBecause(s, messageOr(handle.ctx->last_error, s));
}

}  // namespace

std::string SourceRunner::check() { return checkInstance(handle_, handle_.instance->source()->check); }

void SourceRunner::start(bool once) {
  finished_ = false;
  thread_ = std::thread([this, once] {
    try {
      loop(once);
    } catch (const std::exception& e) {
      failed_ = true;
      services_.logger.error("source " + name_ + ": stopped by an internal error: " + e.what());
      status("stopped", std::string("internal error: ") + e.what());
    }
    finished_ = true;
    services_.sink_advanced.notify();  // wakes a waiting --once pipeline
  });
}

void SourceRunner::join() {
  if (thread_.joinable()) thread_.join();
}

void SourceRunner::status(const std::string& state, const std::string& message, int64_t attempt,
                          int64_t next_at_ms) {
  status_.record(state, message, attempt, next_at_ms);
}

bool SourceRunner::sleepFor(int64_t ms, bool wake_on_sink_progress) {
  const int64_t until = steadyNowMs() + ms;
  uint64_t seen = services_.sink_advanced.generation();
  while (!services_.stopping.load()) {
    int64_t left = until - steadyNowMs();
    if (left <= 0) return true;
    uint64_t now = services_.sink_advanced.waitFor(seen, std::min(left, kSliceMs));
    if (now != seen && wake_on_sink_progress) {
      seen = now;
      processDelivered();
    }
  }
  return false;
}

PageResult SourceRunner::fetchPage(const PageRequest& request) {
  PageResult page;
  ferry_host_ctx& ctx = *handle_.ctx;
  ctx.clearError();
  ctx.emit_error.clear();
  ctx.page = &page.items;
  ferry_fetch_request raw{sizeof(ferry_fetch_request), request.since.c_str(), request.since_ms,
                          request.offset, request.limit};
  ferry_fetch_result result{sizeof(ferry_fetch_result), UINT32_MAX};
  page.status = handle_.instance->source()->fetch(handle_.instance->handle(), &raw, &result);
  ctx.page = nullptr;
  if (page.status == FERRY_OK && !ctx.emit_error.empty()) {
    // The plugin ignored a refused emit: the page is incomplete, so it must not count.
    page.status = FERRY_FATAL;
    page.error = "emit refused: " + ctx.emit_error;
  } else if (page.status != FERRY_OK) {
    page.error = messageOr(ctx.emit_error.empty() ? ctx.last_error
                                                  : ctx.last_error + " (" + ctx.emit_error + ")",
                           page.status);
    page.retry_after_ms = ctx.retry_after_ms;
    page.items.clear();
  }
  page.received = result.received == UINT32_MAX ? static_cast<uint32_t>(page.items.size())
                                                : result.received;
  services_.metrics.add("source_pages_total", name_, page.status == FERRY_OK ? 1 : 0);
  services_.metrics.add("source_items_total", name_, static_cast<double>(page.items.size()));
  return page;
}

void SourceRunner::loop(bool once) {
  int attempt = 0;
  if (!once && phase_ms_ > 0 && !sleepFor(phase_ms_, true)) return;
  status("running", "");
  while (!services_.stopping.load()) {
    processDelivered();
    const int64_t cycle_start = steadyNowMs();
    int64_t next_progress = cycle_start + kProgressEveryMs;
    CycleResult r = runCycle(next_progress);
    services_.metrics.add("source_events_total", name_, static_cast<double>(r.new_events));
    if (services_.stopping.load()) break;
    if (r.status == FERRY_OK) {
      if (attempt > 0)
        services_.logger.information("source " + name_ + ": recovered after " +
                                     std::to_string(attempt) + " failed attempt(s)");
      attempt = 0;
      std::string summary = "source " + name_ + ": " + std::to_string(r.new_events) +
                            " new event(s) in " + std::to_string(r.pages) + " page(s), cursor " +
                            r.cursor;
      if (r.new_events > 0) services_.logger.information(summary);
      else services_.logger.debug(summary);
      status("idle", "");
      if (once) return;
      int64_t next = cycle_start + interval_ms_ - steadyNowMs();
      if (!sleepFor(std::max<int64_t>(0, next), true)) break;
      status("running", "");
      continue;
    }
    if (r.status == FERRY_AUTH || r.status == FERRY_FATAL || r.status == FERRY_STOP) {
      failed_ = true;
      services_.logger.error("source " + name_ + ": stopped, " + stoppedBecause(r.status, r.error));
      status("stopped", stoppedBecause(r.status, r.error));
      return;
    }
    // A cycle that committed something before it failed made progress: only failures in a row
    // without progress grow the backoff, so occasional errors during a long backfill do not
    // slow it down more and more.
    if (r.new_events > 0) attempt = 0;
    ++attempt;
    int64_t delay = backoffDelayMs(backoff_, attempt, r.retry_after_ms, rng_);
    services_.logger.warning("source " + name_ + ": " + r.error + "; retry " +
                             std::to_string(attempt) + " in " + formatDurationMs(delay));
    services_.metrics.add("source_retries_total", name_, 1);
    status("retrying", r.error, attempt, nowMs() + delay);
    if (!sleepFor(delay, true)) break;
  }
  status("idle", "");
}

CycleResult SourceRunner::runCycle(int64_t& next_progress) {
  int64_t committed = 0;
  try {
    return engine_.runCycle(
        [this](const PageRequest& q) { return fetchPage(q); }, services_.stopping,
        [&](const CycleResult& so_far, const Cursor& cursor) {
          committed = so_far.new_events;
          services_.new_events.notify();
          // A long backfill says how far it got, so that an operator sees it move.
          if (steadyNowMs() >= next_progress) {
            next_progress = steadyNowMs() + kProgressEveryMs;
            services_.logger.information("source " + name_ + ": catching up, " +
                                         std::to_string(so_far.new_events) + " new event(s) in " +
                                         std::to_string(so_far.pages) + " page(s) so far, at " +
                                         cursor.since);
          }
        });
  } catch (const JournalError& e) {
    // The journal failed (disk full, I/O error, locked): nothing of the failed page counts, the
    // cursor stays where the journal has it, and the cycle is retried like any transient error,
    // so the source recovers by itself once the journal does.
    CycleResult r;
    r.status = FERRY_RETRY;
    r.error = std::string("journal: ") + e.what();
    r.new_events = committed;
    return r;
  }
}

void SourceRunner::processDelivered() {
  if (!handle_.instance || !has_hook_) return;
  EventLog& log = services_.event_log;
  SinkLedger& ledger = services_.ledger;
  try {
    const int64_t up_to = lowWaterMark(log, ledger, routed_sinks_);
    int64_t from = ledger.deliveredUpTo(name_);
    int64_t saved = from;
    while (from < up_to && !services_.stopping.load()) {
      auto events = log.readAfter(from, {name_}, 500);
      auto dead = ledger.deadLetteredBetween(from, up_to);
      int64_t reached = from;
      bool blocked = false;
      for (const auto& e : events) {
        if (e.sequence > up_to) break;
        if (!std::binary_search(dead.begin(), dead.end(), e.sequence)) {
          std::string id = e.idempotencyKey();
          ferry_event raw{sizeof(ferry_event), e.sequence,         e.source.c_str(),
                          e.entity.c_str(),    e.key.c_str(),      e.version.c_str(),
                          e.previous.c_str(),  e.body.c_str(),     e.body.size(),
                          e.echo ? 1 : 0,      id.c_str()};
          handle_.ctx->clearError();
          const uint64_t requests_before = handle_.ctx->http_requests;
          ferry_status s = handle_.instance->source()->delivered(handle_.instance->handle(), &raw);
          if (s != FERRY_RETRY && handle_.ctx->http_requests != requests_before) {
            // The hook changed something at the remote (a DuckHub confirmation): its progress
            // is saved at once, so that a restart never repeats it.
            ledger.setDeliveredUpTo(name_, e.sequence);
            saved = e.sequence;
          }
          if (s == FERRY_RETRY) {
            services_.logger.warning("source " + name_ + ": delivered(" + id + ") will be retried: " +
                                     messageOr(handle_.ctx->last_error, s));
            blocked = true;
            break;
          }
          if (s != FERRY_OK)
            services_.logger.error("source " + name_ + ": delivered(" + id + ") failed: " +
                                   messageOr(handle_.ctx->last_error, s));
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
  } catch (const std::exception& e) {
    services_.logger.warning("source " + name_ + ": delivered hook postponed: " + e.what());
  }
}

// ---------------------------------------------------------------------------------------------
// SinkRunner
// ---------------------------------------------------------------------------------------------

SinkRunner::SinkRunner(const InstanceConfig& config, InstanceHandle handle,
                       HostServices& services, BackoffPolicy backoff,
                       std::vector<std::string> sources)
    : name_(config.name),
      handle_(std::move(handle)),
      services_(services),
      backoff_(backoff),
      sources_(std::move(sources)),
      batch_size_(static_cast<size_t>(std::max<int64_t>(1, config.batch_size))),
      batch_delay_ms_(config.batch_delay_ms),
      skip_echo_(config.skip_echo),
      rng_(std::random_device{}()),
      status_(services, config.name, "sink") {}

SinkRunner::~SinkRunner() { join(); }

std::string SinkRunner::check() { return checkInstance(handle_, handle_.instance->sink()->check); }

void SinkRunner::start() {
  finished_ = false;
  thread_ = std::thread([this] {
    try {
      loop();
    } catch (const std::exception& e) {
      failed_ = true;
      services_.logger.error("sink " + name_ + ": stopped by an internal error: " + e.what());
      status("stopped", std::string("internal error: ") + e.what());
    }
    finished_ = true;
    services_.sink_advanced.notify();
  });
}

void SinkRunner::join() {
  if (thread_.joinable()) thread_.join();
}

bool SinkRunner::drained() {
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
  const int64_t until = steadyNowMs() + ms;
  while (!services_.stopping.load()) {
    int64_t left = until - steadyNowMs();
    if (left <= 0) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min(left, kSliceMs)));
  }
  return false;
}

ferry_status SinkRunner::write(const std::vector<const JournalEvent*>& events, size_t& done,
                               std::string& message, int64_t& retry_after_ms) {
  std::vector<std::string> ids;
  std::vector<ferry_event> raw;
  ids.reserve(events.size());
  raw.reserve(events.size());
  for (const JournalEvent* event : events) {
    const JournalEvent& e = *event;
    ids.push_back(e.idempotencyKey());
    raw.push_back(ferry_event{sizeof(ferry_event), e.sequence, e.source.c_str(), e.entity.c_str(),
                              e.key.c_str(), e.version.c_str(), e.previous.c_str(), e.body.c_str(),
                              e.body.size(), e.echo ? 1 : 0, ids.back().c_str()});
  }
  handle_.ctx->clearError();
  ferry_write_result result{sizeof(ferry_write_result), 0};
  ferry_status s =
      handle_.instance->sink()->write(handle_.instance->handle(), raw.data(), raw.size(), &result);
  done = s == FERRY_OK ? events.size() : std::min(result.done, events.size());
  message = messageOr(handle_.ctx->last_error, s);
  retry_after_ms = handle_.ctx->retry_after_ms;
  if (s == FERRY_FATAL && done >= events.size()) {
    // FATAL must name an event inside the batch; treat the nonsense as transient.
    s = FERRY_RETRY;
    message = "plugin answered FATAL without naming an event in the batch: " + message;
  }
  return s;
}

SinkRunner::Outcome SinkRunner::deliverReplays() {
  SinkLedger& ledger = services_.ledger;
  auto replays = ledger.pendingReplays(name_, batch_size_);
  if (replays.empty()) return Outcome::Idle;
  std::vector<const JournalEvent*> events;
  for (const auto& d : replays) events.push_back(&d.event);
  size_t done = 0;
  std::string message;
  int64_t retry_after = -1;
  ferry_status s = write(events, done, message, retry_after);
  for (size_t i = 0; i < done; ++i) ledger.settleReplay(replays[i].id, std::nullopt);
  if (s == FERRY_OK) {
    services_.logger.information("sink " + name_ + ": replayed " + std::to_string(done) +
                                 " dead letter(s)");
    return Outcome::Progress;
  }
  if (s == FERRY_FATAL) {
    ledger.settleReplay(replays[done].id, message);
    services_.logger.error("sink " + name_ + ": replay of " + events[done]->idempotencyKey() +
                           " failed again: " + message);
    return Outcome::Progress;
  }
  if (s == FERRY_AUTH || s == FERRY_STOP) {
    failed_ = true;
    services_.logger.error("sink " + name_ + ": stopped, " + stoppedBecause(s, message));
    status("stopped", stoppedBecause(s, message));
    return Outcome::Stopped;
  }
  backOff(message, retry_after);
  return Outcome::Retry;
}

void SinkRunner::backOff(const std::string& message, int64_t retry_after_ms) {
  ++attempt_;
  int64_t delay = backoffDelayMs(backoff_, attempt_, retry_after_ms, rng_);
  services_.logger.warning("sink " + name_ + ": " + message + "; retry " +
                           std::to_string(attempt_) + " in " + formatDurationMs(delay));
  services_.metrics.add("sink_retries_total", name_, 1);
  status("retrying", message, attempt_, nowMs() + delay);
  sleepFor(delay);
}

SinkRunner::Outcome SinkRunner::deliverFeed() {
  EventLog& log = services_.event_log;
  SinkLedger& ledger = services_.ledger;
  EventBatch events = readFeed(services_.handoff, log, offset_, sources_, batch_size_);
  if (events.empty()) return Outcome::Idle;

  // A partial batch waits up to batch_delay for more events, so that a trickle still arrives in
  // batches while a backlog is written at once.
  if (events.size() < batch_size_ && batch_delay_ms_ > 0 && !services_.sources_finished.load()) {
    const int64_t until = steadyNowMs() + batch_delay_ms_;
    uint64_t seen = services_.new_events.generation();
    while (!services_.stopping.load() && !services_.sources_finished.load() &&
           steadyNowMs() < until) {
      seen = services_.new_events.waitFor(seen, std::min(kSliceMs, until - steadyNowMs()));
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
    return Outcome::Progress;
  }

  size_t done = 0;
  std::string message;
  int64_t retry_after = -1;
  ferry_status s = write(to_write, done, message, retry_after);

  auto delivered = [&](size_t count) -> std::optional<DeliveryRange> {
    if (count == 0) return std::nullopt;
    return DeliveryRange{to_write.front()->sequence, to_write[count - 1]->sequence,
                         std::to_string(count) + " event(s)"};
  };
  if (s == FERRY_OK) {
    ledger.advanceSink(name_, batch_last, delivered(done), {});
    offset_ = batch_last;
    services_.metrics.add("sink_events_total", name_, static_cast<double>(done));
    services_.sink_advanced.notify();
    return Outcome::Progress;
  }
  if (s == FERRY_FATAL) {
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
    return Outcome::Progress;
  }
  if (done > 0) {
    ledger.advanceSink(name_, to_write[done - 1]->sequence, delivered(done), {});
    offset_ = to_write[done - 1]->sequence;
    services_.sink_advanced.notify();
    // A transient error after progress is not a failure streak: the backoff starts over.
    attempt_ = 0;
  }
  if (s == FERRY_AUTH || s == FERRY_STOP) {
    failed_ = true;
    services_.logger.error("sink " + name_ + ": stopped, " + stoppedBecause(s, message));
    status("stopped", stoppedBecause(s, message));
    return Outcome::Stopped;
  }
  backOff(message, retry_after);
  return Outcome::Retry;
}

int64_t SinkRunner::sinkOffsetOr(int64_t fallback) {
  try {
    return services_.ledger.sinkOffset(name_);
  } catch (const JournalError&) {
    return fallback;
  }
}

void SinkRunner::loop() {
  // The offset is read once; until the journal can be read, the sink waits for it.
  bool known = false;
  while (!known && !services_.stopping.load()) {
    try {
      offset_ = services_.ledger.sinkOffset(name_);
      known = true;
    } catch (const JournalError& e) {
      backOff(std::string("journal: ") + e.what(), -1);
    }
  }
  attempt_ = 0;
  status("running", "");
  int failures = 0;
  while (!services_.stopping.load()) {
    uint64_t seen = services_.new_events.generation();
    Outcome o = Outcome::Idle;
    try {
      o = deliverReplays();
      if (o == Outcome::Idle) o = deliverFeed();
    } catch (const JournalError& e) {
      // The journal failed (disk full, I/O error): the offset stays where the journal has it,
      // and a batch the plugin already wrote is written again after recovery (sinks are
      // idempotent by the event's key). Backing off here, instead of ending the thread, lets
      // the sink recover by itself once the journal does.
      offset_ = sinkOffsetOr(offset_);
      backOff(std::string("journal: ") + e.what(), -1);
      o = Outcome::Retry;
    }
    if (o == Outcome::Stopped) return;
    if (o == Outcome::Retry) {
      ++failures;
      continue;
    }
    if (failures > 0) {
      services_.logger.information("sink " + name_ + ": recovered after " +
                                   std::to_string(failures) + " failed attempt(s)");
      failures = 0;
      attempt_ = 0;
      status("running", "");
    }
    if (o == Outcome::Idle) {
      status("idle", "");
      services_.new_events.waitFor(seen, kSliceMs * 5);
    }
  }
  status("idle", "");
}

}  // namespace ferry::core
