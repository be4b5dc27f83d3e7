// The sink ledger, the second part of the journal (Journal.h): where each sink stands (its
// offset), what it delivered (delivery records for `ferry trace`), what it could never write
// (dead letters and their replays), and how far each source's delivered() hook has run. Sink
// runners write it, the delivered hook and retention read it, `ferry status`, `ferry trace` and
// `ferry dead-letters` look into it.
//
// Threading: every method is safe to call from any thread; implementations serialise writes.
// Errors: storage failures throw JournalError (nothing of the failed call is stored).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "journal/EventLog.h"

namespace ferry::core {

// What a sink runner records when it moves its offset.
struct DeliveryRange {
  int64_t first_sequence = 0;
  int64_t last_sequence = 0;
  std::string detail;  // what the sink said, e.g. "3 events"
};

// A recorded delivery of a range of events to a sink (`ferry trace`).
struct DeliveryRecord {
  std::string sink;
  int64_t first_sequence = 0;
  int64_t last_sequence = 0;
  int64_t delivered_at_ms = 0;
  std::string detail;
};

struct NewDeadLetter {
  int64_t sequence = 0;
  std::string reason;
};

struct DeadLetter {
  int64_t id = 0;
  std::string sink;
  JournalEvent event;  // a copy: retention never removes a dead letter's event
  std::string reason;
  int64_t failed_at_ms = 0;
  bool replay_requested = false;
};

// Transactions: advanceSink() reads the event log (it copies each dead-lettered event, and
// refuses a sequence the event log does not hold) in the same transaction as it writes the
// ledger, so a backend keeps this part and the EventLog in ONE database and runs advanceSink as
// one transaction over both. Sequences here (offsets, ranges, dead letters) are the event log's.
// Every other method is one statement or one transaction of this part alone.
class SinkLedger {
 public:
  virtual ~SinkLedger() = default;

  // --- offsets and deliveries ----------------------------------------------------------------

  // The sink's offset (the last sequence it has), 0 when it never committed.
  virtual int64_t sinkOffset(const std::string& sink) = 0;

  // All sink offsets (for `ferry status`).
  virtual std::vector<std::pair<std::string, int64_t>> sinkOffsets() = 0;

  // In ONE transaction: moves the sink's offset to `offset`, records `delivery` (when set) and
  // the dead letters (copies of their events, read from the event log in the same transaction).
  // A dead letter for a sequence that is not in the event log fails the whole call (JournalError,
  // nothing changed). Dead-lettering the same event for the same sink again replaces the reason
  // (one dead letter per sink and event).
  virtual void advanceSink(const std::string& sink, int64_t offset,
                           const std::optional<DeliveryRange>& delivery,
                           const std::vector<NewDeadLetter>& dead) = 0;

  // The deliveries whose range covers `sequence`, oldest first (`ferry trace`).
  virtual std::vector<DeliveryRecord> deliveriesOf(int64_t sequence) = 0;

  // --- dead letters --------------------------------------------------------------------------

  // Every dead letter, or those of one sink, oldest first.
  virtual std::vector<DeadLetter> deadLetters(const std::optional<std::string>& sink) = 0;
  // Marks dead letters for replay: by id, or all of a sink when `ids` is empty. Returns how many.
  virtual int64_t requestReplay(const std::string& sink, const std::vector<int64_t>& ids) = 0;
  // The dead letters of `sink` marked for replay, oldest first.
  virtual std::vector<DeadLetter> pendingReplays(const std::string& sink, size_t limit) = 0;
  // Removes a dead letter once its replay was written, recording the replay as a delivery of its
  // event (or dead-letters it again with a new reason when `new_reason` is set, clearing its
  // replay request). An unknown id is a no-op, so that settling twice after a crash is harmless.
  virtual void settleReplay(int64_t id, const std::optional<std::string>& new_reason) = 0;

  // --- delivered hook ------------------------------------------------------------------------

  // The sequence up to which the source's delivered() hook has been called.
  virtual int64_t deliveredUpTo(const std::string& source) = 0;
  virtual void setDeliveredUpTo(const std::string& source, int64_t sequence) = 0;
  // Every recorded delivered progress, (source, sequence) by source: the hooks of sources that
  // other hosts run hold retention too (Pipeline::applyRetention()).
  virtual std::vector<std::pair<std::string, int64_t>> deliveredProgress() = 0;
  // The sequences in (after, up_to] that any sink dead-lettered (so they were not delivered
  // everywhere), ascending. One query for a whole range of delivered hooks.
  virtual std::vector<int64_t> deadLetteredBetween(int64_t after, int64_t up_to) = 0;
};

}  // namespace ferry::core
