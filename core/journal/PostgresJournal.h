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
// Hosts: own() takes a session-level advisory lock for this host_id on this connection, so one
// ferry runs per host_id, while any number of host_ids share the journal. Which host runs which
// source and sink is decided by leases (LeaseKeeper.h): one row per lease group with its owner,
// a fencing token that grows with every change of owner, and an expiry on PostgreSQL's clock.
// Every write runs in a transaction that first calls fence(instance): once setFences() was
// called (a host that leases), a write for an instance checks, in that same transaction, that
// this host still holds its group's lease with the token it claimed it with; a frozen or cut-off
// former owner is refused (JournalFenced) and writes nothing.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "journal/Journal.h"

namespace ferry::core {

// A write for an instance whose lease this host no longer holds (PostgresJournal::fence()).
class JournalFenced : public JournalError {
 public:
  using JournalError::JournalError;
};

// A host that shares the journal (table hosts); times on PostgreSQL's clock, in ms.
struct HostRow {
  std::string host_id;
  std::string application;  // "ferry/<host_id>/<pid>"
  int64_t heartbeat_at_ms = 0;
  int64_t expires_at_ms = 0;
};

// A lease group (table leases): the instances run together, the host running them ("" when
// none), the fencing token of its claim and the expiry (PostgreSQL's clock, ms).
struct LeaseRow {
  std::string group;
  std::vector<std::string> members;
  std::string owner;
  int64_t token = 0;
  int64_t expires_at_ms = 0;
};

class PostgresJournal final : public Journal,
                              public EventLog,
                              public SinkLedger,
                              public InstanceState,
                              public Controls {
 public:
  // The schema version this build creates and understands (table ferry_journal).
  static constexpr int64_t kSchemaVersion = 3;

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

  // A ferry running on the journal at `url` as `host_id` (any host_id when empty): the
  // application_name of the connection holding that host's lock ("ferry/<host_id>/<pid>"),
  // nullopt when none runs.
  static std::optional<std::string> ownerOf(const std::string& url,
                                            const std::string& host_id = "");

  // Makes this connection the only ferry of its host_id (a session-level advisory lock, released
  // when the connection ends, however the process ends). Returns nullopt when taken, else the
  // holder's application_name. After a lost connection the lock is taken again before any write;
  // when another ferry took it meanwhile, every write fails with JournalError.
  std::optional<std::string> own();

  // Leases (LeaseKeeper.h). Every time is PostgreSQL's clock in ms.
  // Records this host as live until `lease_ms` from now; returns PostgreSQL's now.
  int64_t heartbeat(int64_t lease_ms);
  // Removes this host's heartbeat (a graceful stop).
  void leave();
  // Every host that recorded a heartbeat; `db_now_ms` gets PostgreSQL's now.
  std::vector<HostRow> hosts(int64_t* db_now_ms = nullptr);
  // Creates the lease rows of `groups` (group -> instances) that are missing; updates members.
  void defineGroups(const std::map<std::string, std::vector<std::string>>& groups);
  // Every lease; `db_now_ms` gets PostgreSQL's now.
  std::vector<LeaseRow> leases(int64_t* db_now_ms = nullptr);
  // Takes the lease of `group` when nobody holds it, its holder let it expire, or it is held by
  // this host_id (a predecessor's: one ferry runs per host_id): the new token, nullopt when
  // another host holds it.
  std::optional<int64_t> claim(const std::string& group, int64_t lease_ms);
  // Extends the leases held (group -> token) to `lease_ms` from now; returns those still held.
  std::set<std::string> renew(const std::map<std::string, int64_t>& held, int64_t lease_ms);
  // Gives the lease up at once (when still held with `token`).
  void release(const std::string& group, int64_t token);
  // From now on, a write for an instance is fenced by its lease: instance -> (group, token).
  // An instance missing from the map is refused.
  void setFences(std::map<std::string, std::pair<std::string, int64_t>> fences);

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
  // `instance`: the source or sink the write is for ("" for none: a command's request, a purge).
  template <typename Body>
  auto write(const std::string& action, const std::string& instance, Body&& body)
      -> decltype(body());
  // Every write transaction's first statement: the host's lock taken again after a reconnect,
  // and the lease of `instance`'s group checked with this host's token (once leasing).
  void fence(const std::string& instance);
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
  std::mutex fences_mutex_;
  std::atomic<bool> leasing_{false};
  std::map<std::string, std::pair<std::string, int64_t>> fences_;  // instance -> (group, token)
};

}  // namespace ferry::core
