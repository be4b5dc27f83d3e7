// The SQLite journal: every part (EventLog, SinkLedger, InstanceState) in one file, WAL,
// synchronous=FULL. openSqliteJournal() (Journal.h) is the usual way in; this header exists for
// callers that want to see how the file is configured (`ferry check`, tests).
//
// Threading: one connection, guarded by one mutex that every method holds for its whole
// transaction, so a reader never sees another thread's half-written commit.
#pragma once

#include <Poco/Data/Session.h>

struct sqlite3;
struct sqlite3_stmt;

#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "journal/Journal.h"
#include "journal/VersionIndex.h"

namespace ferry::core {

// What the open connection actually runs with (read back from SQLite, not what was asked).
struct SqliteSettings {
  std::string journal_mode;  // "wal"
  int64_t synchronous = 0;   // 2 = FULL
  int64_t busy_timeout_ms = 0;
  int64_t schema_version = 0;  // PRAGMA user_version
};

// All three parts over one connection: advanceSink() copies events into dead letters inside its
// own transaction, as the SinkLedger requires.
//
// The latest version of each key (dedupe) is found through an in-memory VersionIndex, built on
// first use from the file and kept in step by this object's own writes: a commit appends its
// events and not one random B-tree row per key. The file holds what rebuilds it: the key_hash of
// the events the index points at (read from the events' (source, sequence) index, not from the
// bodies), latest_versions (the versions of keys whose events were purged, or whose hash another
// key's event holds in the index) and version_cutoffs (resetCursor's forget_versions). One
// process writes a journal at a time (`ferry run` holds its lock); should another connection
// append events nevertheless, the next commit notices, re-reads the index and fails (JournalError)
// so that its page, deduplicated against what was stale, is fetched again.
class SqliteJournal final : public Journal,
                            public EventLog,
                            public SinkLedger,
                            public InstanceState,
                            public Controls {
 public:
  // The schema version this build creates and understands.
  static constexpr int64_t kSchemaVersion = 5;
  // The page size of a journal this build creates.
  static constexpr int64_t kNewPageSize = 65536;
  // How long a statement waits for another process's lock before failing.
  static constexpr int64_t kBusyTimeoutMs = 5000;

  // Opens (creating when missing) the journal at `path`. Throws JournalError naming the path: the
  // directory is missing, the file is not a database, it is not writable, or its schema is newer
  // than this build.
  // `hash` is the key hash of the version index; tests pass one that collides on purpose.
  explicit SqliteJournal(const std::string& path, KeyHasher hash = defaultKeyHash);
  ~SqliteJournal() override;

  const std::string& path() const { return path_; }
  SqliteSettings settings();

  EventLog& events() override { return *this; }
  SinkLedger& ledger() override { return *this; }
  InstanceState& state() override { return *this; }
  Controls& controls() override { return *this; }
  const std::string& identity() const override { return identity_; }

  // EventLog
  std::optional<Cursor> cursor(const std::string& source) override;
  std::vector<std::optional<VersionSeen>> latestVersions(const std::string& source,
                                                         const std::vector<KeyRef>& keys) override;
  using EventLog::commit;
  int64_t commit(const std::string& source, const std::vector<NewEvent>& events,
                 const Cursor& cursor, const std::vector<SetAsideItem>& set_aside) override;
  bool setAsideKnown(const std::string& source, const std::string& fingerprint) override;
  std::vector<SourceDeadLetter> sourceDeadLetters(
      const std::optional<std::string>& source) override;
  int64_t replaySetAside(const std::string& source, const std::vector<int64_t>& ids) override;
  int64_t dropSetAside(const std::vector<int64_t>& ids) override;
  void resetCursor(const std::string& source, const Cursor& cursor, bool forget_versions) override;
  std::vector<std::pair<std::string, Cursor>> cursors() override;
  std::vector<JournalEvent> readAfter(int64_t after, const std::vector<std::string>& sources,
                                      size_t limit) override;
  int64_t lastSequence() override;
  int64_t countAfter(int64_t after, const std::vector<std::string>& sources) override;
  int64_t purge(int64_t up_to_sequence, int64_t fetched_before_ms) override;
  std::vector<JournalEvent> eventsOfKey(const std::string& key) override;

  // SinkLedger
  int64_t sinkOffset(const std::string& sink) override;
  std::vector<std::pair<std::string, int64_t>> sinkOffsets() override;
  void advanceSink(const std::string& sink, int64_t offset,
                   const std::optional<DeliveryRange>& delivery,
                   const std::vector<NewDeadLetter>& dead) override;
  std::vector<DeliveryRecord> deliveriesOf(int64_t sequence) override;
  std::vector<DeadLetter> deadLetters(const std::optional<std::string>& sink) override;
  int64_t requestReplay(const std::string& sink, const std::vector<int64_t>& ids) override;
  std::vector<DeadLetter> pendingReplays(const std::string& sink, size_t limit) override;
  void settleReplay(int64_t id, const std::optional<std::string>& new_reason) override;
  int64_t deliveredUpTo(const std::string& source) override;
  void setDeliveredUpTo(const std::string& source, int64_t sequence) override;
  std::vector<std::pair<std::string, int64_t>> deliveredProgress() override;
  std::vector<int64_t> deadLetteredBetween(int64_t after, int64_t up_to) override;

  // InstanceState
  std::optional<std::string> stateGet(const std::string& instance, const std::string& key) override;
  void stateSet(const std::string& instance, const std::string& key,
                const std::optional<std::string>& value) override;
  void setStatus(const InstanceStatus& status) override;
  std::vector<InstanceStatus> statuses() override;

  // Controls
  int64_t submitCommand(const std::string& action, const std::string& target,
                        const std::string& argument) override;
  std::vector<CommandRequest> pendingCommands() override;
  std::optional<CommandRequest> command(int64_t id) override;
  void finishCommand(int64_t id, bool ok, const std::string& result) override;
  bool sinkPaused(const std::string& sink) override;
  void setSinkPaused(const std::string& sink, bool paused) override;
  std::vector<std::string> knownSinks() override;
  void setSinkOffset(const std::string& sink, int64_t offset) override;
  void forgetSink(const std::string& sink) override;
  int64_t oldestSequence() override;
  int64_t firstSequenceFetchedFrom(int64_t fetched_at_ms) override;
  std::optional<int64_t> fetchedAt(int64_t sequence) override;
  int64_t dropDeadLetters(const std::vector<int64_t>& ids) override;
  std::optional<std::string> sourceOrigin(const std::string& source) override;
  void setSourceOrigin(const std::string& source, const std::string& start_from) override;
  void setSourceOrigins(const std::vector<std::pair<std::string, std::string>>& origins) override;
  void recordActivity(const InstanceActivity& activity) override;
  std::vector<InstanceActivity> activities() override;

 private:
  // Runs `body` holding the mutex and turns any storage failure into a JournalError that names
  // the file and `action`.
  template <typename Body>
  auto locked(const std::string& action, Body&& body) -> decltype(body());

  void configure();
  void migrate();
  // The version index (all with mutex_ held): built on first use, rebuilt from the file inside
  // the caller's transaction.
  void ensureIndex();
  void buildIndex();
  int64_t highWater();
  // Whether the event at `sequence` is of (source, entity, key); nullopt when there is none.
  std::optional<bool> eventHasKey(int64_t sequence, const std::string& source,
                                  std::string_view entity, std::string_view key);
  void upsertLatest(const std::string& source, std::string_view entity, std::string_view key,
                    std::string_view version, int64_t version_ns);
  int64_t purgeChunk(int64_t up_to_sequence, int64_t fetched_before_ms);
  // The key's hash as the index, the events' key_hash and a commit's own changes all compare it.
  uint64_t keyHash(std::string_view source, std::string_view entity, std::string_view key) const {
    return VersionIndex::normalized(hash_(source, entity, key));
  }
  void upsertCursor(const std::string& source, const Cursor& cursor, int64_t now_ms);
  int64_t totalChanges();
  // Deletes the rows of `table` whose id is in `ids`, in the caller's transaction; how many.
  int64_t deleteIds(const std::string& table, const std::vector<int64_t>& ids);
  std::string describe(const std::string& action, const std::string& cause) const;

  // The hot path (a source's commit, its latest-version lookups) runs on SQLite's own API with
  // statements compiled once and text bound in place: through Poco::Data every body would be
  // copied into a bound vector first. Prepared on first use, finalized before the session closes.
  sqlite3_stmt* prepared(int which, const char* sql);
  void step(sqlite3_stmt* statement);
  enum Prepared { kInsertEvent, kSelectEventKey, kUpsertLatest, kPreparedCount };

  std::string identity_;
  std::string path_;
  std::mutex mutex_;
  Poco::Data::Session session_;
  sqlite3_stmt* prepared_[kPreparedCount] = {};
  KeyHasher hash_;
  // index_ is written with mutex_ AND index_mutex_ held, read with either; index_ready_ and
  // index_last_ (the last sequence it covers) likewise.
  std::mutex index_mutex_;
  VersionIndex index_;
  bool index_ready_ = false;
  int64_t index_last_ = 0;
  // latestVersions() reads the events and latest_versions behind the index's hits on a
  // connection of its own, opened on first use.
  std::mutex reader_mutex_;
  sqlite3* reader_ = nullptr;
  sqlite3_stmt* reader_event_ = nullptr;
  sqlite3_stmt* reader_latest_ = nullptr;
};

}  // namespace ferry::core
