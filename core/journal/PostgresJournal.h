// The PostgreSQL journal: every part (EventLog, SinkLedger, InstanceState, Controls) in one
// PostgreSQL database (its current schema), for `[host] journal = postgresql://…`. The same
// guarantees as the SQLite journal: a page's events and its cursor in one transaction, a sink's
// offset and its dead letters (copies of their events) in one transaction, the schema created or
// migrated by ferry, a database that is not a ferry journal refused.
//
// The sequence is assigned in commit order (see kSequenceOrder below and the README's "Running on
// PostgreSQL"): a sink reading "events after my offset" never skips an event that commits late.
//
// Connections: libpq directly (the library Poco::DataPostgreSQL wraps): Poco's PostgreSQL session
// takes only space-separated key=value connection strings (no URL, no password with a space) and
// binds text only, while the journal wants the URL, bytea for plugin state and one round trip per
// statement. One connection, guarded by one mutex that every method holds for its whole
// transaction; a second one for the reads of the event path (latestVersions, readAfter), which
// see committed transactions only. A lost connection is reset on the next call (which fails with
// JournalError until PostgreSQL answers again, so the runners retry); an owner takes its lock again
// first.
//
// Ownership: own() takes a session-level advisory lock on this connection, so one ferry owns the
// journal at a time, across hosts. Every write runs in a transaction that first calls fence(),
// the one place where a later lease's fencing token is checked.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "journal/Journal.h"

namespace ferry::core {

class PostgresJournal final : public Journal,
                              public EventLog,
                              public SinkLedger,
                              public InstanceState,
                              public Controls {
 public:
  // The schema version this build creates and understands (table ferry_journal).
  static constexpr int64_t kSchemaVersion = 2;

  // Connects to `url` and creates or migrates the schema. `host_id` names this host in
  // PostgreSQL's application_name ("ferry/<host_id>/<pid>"), which is how another ferry tells who
  // owns the journal. Throws JournalError naming the URL (password masked): PostgreSQL
  // unreachable or refusing the login, a database with tables but no ferry journal, a schema
  // newer than this build.
  PostgresJournal(const std::string& url, const std::string& host_id);
  ~PostgresJournal() override;

  // Whether `url` holds a ferry journal (read-only commands never create one). Throws
  // JournalError when PostgreSQL cannot be reached.
  static bool exists(const std::string& url);

  // Who owns the journal at `url`: the application_name of the connection holding the owner's
  // lock ("ferry/<host_id>/<pid>"), nullopt when nobody does.
  static std::optional<std::string> ownerOf(const std::string& url);

  // Makes this connection the journal's owner (a session-level advisory lock, released when the
  // connection ends, however the process ends). Returns nullopt when owned, else the current
  // owner's application_name. After a lost connection the lock is taken again before any write;
  // when another ferry took it meanwhile, every write fails with JournalError.
  std::optional<std::string> own();

  const std::string& displayName() const { return display_; }
  int64_t schemaVersion();

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
  void recordActivity(const InstanceActivity& activity) override;
  std::vector<InstanceActivity> activities() override;

  class Connection;  // libpq, one connection (PostgresJournal.cpp)

 private:
  // Runs `body` holding the mutex on a live connection, turning any failure into a JournalError
  // that names the journal and `action`.
  template <typename Body>
  auto locked(const std::string& action, Body&& body) -> decltype(body());
  // The same on the reader connection (reader_, under reader_mutex_): the hot reads (a page's
  // latest versions, a sink's next events) do not wait for a commit in flight on the main one.
  template <typename Body>
  auto reading(const std::string& action, Body&& body) -> decltype(body());
  // locked(), inside one transaction that starts with fence() and commits when `body` returns.
  template <typename Body>
  auto write(const std::string& action, Body&& body) -> decltype(body());
  // Every write transaction's first statement: where a lease's fencing token will be checked.
  // For now the owner's advisory lock, held by this very connection, is the fence (taken again
  // after a reconnect by connect()).
  void fence();
  void connect();
  void migrate();
  std::string describe(const std::string& action, const std::string& cause) const;

  std::string url_;
  std::string display_;
  std::vector<std::string> secrets_;  // what every message is redacted of
  std::string host_id_;
  std::string identity_;
  std::mutex mutex_;
  std::unique_ptr<Connection> db_;
  std::mutex reader_mutex_;
  std::unique_ptr<Connection> reader_;  // opened on first use
  bool owner_ = false;       // own() succeeded: the lock is taken again after a reconnect
  bool holds_lock_ = false;  // this session holds the owner's lock
};

}  // namespace ferry::core
