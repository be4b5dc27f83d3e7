// The journal: the host's durable state. Events with their sequence, each source's cursor and
// latest version per key, each sink's offset, dead letters, delivery records, plugin state and
// instance status. SQLite is the first backend (SqliteJournal); the interface is what a second
// one (PostgreSQL, for several hosts) implements.
//
// Threading: every method is safe to call from any thread; implementations serialise writes.
// Errors: storage failures throw JournalError; callers on the event path treat it as transient.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace ferry::core {

class JournalError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A change as the source runner hands it to the journal, already deduplicated.
struct NewEvent {
  std::string entity;
  std::string key;
  std::string version;   // exact text as received
  int64_t version_ns = 0;  // the same, as an instant
  std::string previous;  // "" for a key never seen
  std::string body;
  bool echo = false;
};

// A journalled change.
struct JournalEvent {
  int64_t sequence = 0;
  std::string source;
  std::string entity;
  std::string key;
  std::string version;
  std::string previous;
  std::string body;
  bool echo = false;
  int64_t fetched_at_ms = 0;
  // "source/entity/key/version"
  std::string idempotencyKey() const { return source + "/" + entity + "/" + key + "/" + version; }
};

// Where a source stands: ask from `since`, having taken `offset` items of that instant.
struct Cursor {
  std::string since;     // UTC "YYYY-MM-DDThh:mm:ss.sssZ" or the exact version text it came from
  int64_t since_ns = 0;
  int64_t offset = 0;
};

struct KeyRef {
  std::string entity;
  std::string key;
};

struct VersionSeen {
  std::string version;
  int64_t version_ns = 0;
};

// Map key for latestVersions(): entity + '\x1f' + key.
inline std::string versionMapKey(const std::string& entity, const std::string& key) {
  return entity + '\x1f' + key;
}

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

// Run-time state of a source or sink, so that `ferry status` (another process) can show it.
struct InstanceStatus {
  std::string name;
  std::string kind;     // "source" | "sink"
  std::string state;    // "running" | "retrying" | "stopped" | "idle"
  std::string message;  // last error, "" when fine
  int64_t updated_at_ms = 0;
  int64_t retry_attempt = 0;
  int64_t next_attempt_at_ms = 0;
};

class Journal {
 public:
  virtual ~Journal() = default;

  // --- sources -----------------------------------------------------------------------------

  // The stored cursor of `source`, nullopt before its first commit.
  virtual std::optional<Cursor> cursor(const std::string& source) = 0;

  // The latest version seen for each of `keys` (absent when never seen), keyed by
  // versionMapKey(entity, key).
  virtual std::unordered_map<std::string, VersionSeen> latestVersions(
      const std::string& source, const std::vector<KeyRef>& keys) = 0;

  // In ONE transaction: appends `events` in order (assigning increasing sequences), records each
  // one's version as the latest of its key, and stores `cursor`. Returns the last sequence
  // assigned, or 0 when `events` is empty. Sequences are never reused, not even after purge().
  // An event with an empty source, entity, key or version, or a cursor with a negative offset, is
  // refused: JournalError, and nothing of the call is stored.
  virtual int64_t commit(const std::string& source, const std::vector<NewEvent>& events,
                         const Cursor& cursor) = 0;

  // Operator actions. resetCursor sets the cursor (a backfill moves it back); with
  // forget_versions the latest-version table of the source is cleared too, so that everything
  // fetched again is delivered again (with the same idempotency keys).
  virtual void resetCursor(const std::string& source, const Cursor& cursor,
                           bool forget_versions) = 0;

  // --- sinks -------------------------------------------------------------------------------

  // The sink's offset (the last sequence it has), 0 when it never committed.
  virtual int64_t sinkOffset(const std::string& sink) = 0;

  // Events with sequence > after, from `sources` (empty: every source), ascending, at most
  // `limit`.
  virtual std::vector<JournalEvent> readAfter(int64_t after,
                                              const std::vector<std::string>& sources,
                                              size_t limit) = 0;

  // The highest sequence ever assigned (0 for an empty journal).
  virtual int64_t lastSequence() = 0;

  // How many events from `sources` (empty: all) lie after `after`.
  virtual int64_t countAfter(int64_t after, const std::vector<std::string>& sources) = 0;

  // In ONE transaction: moves the sink's offset to `offset`, records `delivery` (when set) and
  // the dead letters (copies of their events). A dead letter for a sequence that is not in the
  // journal fails the whole call (JournalError, nothing changed). Dead-lettering the same event
  // for the same sink again replaces the reason (one dead letter per sink and event).
  virtual void advanceSink(const std::string& sink, int64_t offset,
                           const std::optional<DeliveryRange>& delivery,
                           const std::vector<NewDeadLetter>& dead) = 0;

  // --- dead letters ------------------------------------------------------------------------

  // Every dead letter, or those of one sink, oldest first.
  virtual std::vector<DeadLetter> deadLetters(const std::optional<std::string>& sink) = 0;
  // Marks dead letters for replay: by id, or all of a sink when `ids` is empty. Returns how many.
  virtual int64_t requestReplay(const std::string& sink, const std::vector<int64_t>& ids) = 0;
  // The dead letters of `sink` marked for replay, oldest first.
  virtual std::vector<DeadLetter> pendingReplays(const std::string& sink, size_t limit) = 0;
  // Removes a dead letter once its replay was written (or dead-letters it again with a new
  // reason when `new_reason` is set, clearing its replay request). An unknown id is a no-op, so
  // that settling twice after a crash is harmless.
  virtual void settleReplay(int64_t id, const std::optional<std::string>& new_reason) = 0;

  // --- delivered hook ------------------------------------------------------------------------

  // The sequence up to which the source's delivered() hook has been called.
  virtual int64_t deliveredUpTo(const std::string& source) = 0;
  virtual void setDeliveredUpTo(const std::string& source, int64_t sequence) = 0;
  // The sequences in (after, up_to] that any sink dead-lettered (so they were not delivered
  // everywhere), ascending. One query for a whole range of delivered hooks.
  virtual std::vector<int64_t> deadLetteredBetween(int64_t after, int64_t up_to) = 0;

  // --- audit (`ferry trace`) --------------------------------------------------------------------

  // The retained events whose key is `key` (any source and entity), oldest first. Scans the
  // events table: an operator's question, not a hot path.
  virtual std::vector<JournalEvent> eventsOfKey(const std::string& key) = 0;
  // The deliveries whose range covers `sequence`, oldest first.
  virtual std::vector<DeliveryRecord> deliveriesOf(int64_t sequence) = 0;

  // --- plugin state, status, retention -------------------------------------------------------

  virtual std::optional<std::string> stateGet(const std::string& instance,
                                              const std::string& key) = 0;
  virtual void stateSet(const std::string& instance, const std::string& key,
                        const std::optional<std::string>& value) = 0;

  virtual void setStatus(const InstanceStatus& status) = 0;
  virtual std::vector<InstanceStatus> statuses() = 0;

  // Deletes events with sequence <= `up_to_sequence` fetched before `fetched_before_ms`.
  // Returns how many were deleted.
  virtual int64_t purge(int64_t up_to_sequence, int64_t fetched_before_ms) = 0;

  // All cursors (for `ferry status`).
  virtual std::vector<std::pair<std::string, Cursor>> cursors() = 0;
  // All sink offsets (for `ferry status`).
  virtual std::vector<std::pair<std::string, int64_t>> sinkOffsets() = 0;
};

// Opens (creating when missing) the SQLite journal at `path`: WAL, synchronous=FULL, schema
// created or migrated. Throws JournalError naming the path when it cannot be opened.
std::unique_ptr<Journal> openSqliteJournal(const std::string& path);

}  // namespace ferry::core
