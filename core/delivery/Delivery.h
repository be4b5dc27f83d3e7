// What the host knows about where events go, each defined once and used by the runners,
// retention, `ferry status`, `ferry trace` and /metrics: routing, a sink's backlog, the
// low-water mark every sink has passed, and what a sink did with one event.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/Config.h"
#include "journal/Controls.h"
#include "journal/EventLog.h"
#include "journal/SinkLedger.h"

namespace ferry::core {

// True when `sink` takes events of `source` (its `from` is empty or names the source).
bool routes(const InstanceConfig& sink, const std::string& source);

// The enabled sinks of `config` that take events of `source`, by name, in config order.
std::vector<std::string> routedSinks(const Config& config, const std::string& source);

// How many events routed to `sink` lie after its offset.
int64_t backlog(EventLog& events, SinkLedger& ledger, const InstanceConfig& sink);
// When the oldest of them was fetched (ms since the epoch); 0 when there is none.
int64_t oldestPendingAtMs(EventLog& events, SinkLedger& ledger, const InstanceConfig& sink);

// The highest sequence that every one of `sinks` has passed (the journal's last sequence when
// there are none).
int64_t lowWaterMark(EventLog& events, SinkLedger& ledger, const std::vector<std::string>& sinks);

// The sinks whose offsets retention respects: every enabled sink of `config`, and every sink the
// journal knows (an offset or a pause recorded) until an operator forgets it, so that a paused,
// disabled or no longer configured sink never loses what it has not passed.
std::vector<std::string> retentionHolders(const Config& config, Controls& controls);

// A sink that holds retention although it is not writing: paused, disabled, or no longer in the
// config. `why` says which, `fix` the command that lets retention go on.
struct HeldSink {
  std::string name;
  std::string why;
  std::string fix;
};
std::vector<HeldSink> heldSinks(const Config& config, Controls& controls);

// What one sink did with one event (`ferry trace`).
struct TraceStep {
  std::string sink;
  std::string outcome;  // delivered | dead letter | skipped | passed | not routed | pending…
  int64_t at_ms = 0;    // when delivered or dead-lettered, 0 otherwise
  std::string detail;
};

// The step of `sink` for `event`, given the deliveries recorded for the event's sequence and the
// dead letters of its key.
TraceStep traceStep(SinkLedger& ledger, const InstanceConfig& sink, const JournalEvent& event,
                    const std::vector<DeliveryRecord>& deliveries,
                    const std::vector<DeadLetter>& dead_letters);

// The business numbers a source named in an event's metadata ("numbers", see ferry_item.meta:
// order number, purchase-order number, shipment number), in its order; none for empty metadata
// or metadata that cannot be read.
std::vector<std::string> businessNumbers(const std::string& meta);

// Whether `ferry trace <query>` shows the event: its key is `query`, or its source named `query`
// among its business numbers.
bool traceMatches(const JournalEvent& event, const std::string& query);

// The retained events that `ferry trace <query>` shows (traceMatches), oldest first: one pass
// over the journal, a page at a time (an operator's question, not a hot path).
std::vector<JournalEvent> traceEvents(EventLog& events, const std::string& query);

}  // namespace ferry::core
