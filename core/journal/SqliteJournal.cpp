#include "journal/SqliteJournal.h"

#include <Poco/Data/LOB.h>
#include <Poco/Data/SQLite/Connector.h>
#include <Poco/Data/SQLite/Utility.h>
#include <Poco/Data/Statement.h>
#include <Poco/Exception.h>
#include <Poco/Tuple.h>

#include <sqlite3.h>

#include <algorithm>
#include <filesystem>
#include <limits>
#include <tuple>
#include <unordered_map>
#include <utility>

#include "services/Time.h"

namespace ferry::core {
namespace {

using namespace Poco::Data::Keywords;
using Poco::Int64;
using Poco::Data::Session;
using Poco::Data::Statement;

// Each step takes the schema from version i to i + 1; a later release appends steps and never
// edits a published one, so every older file can be brought forward in order.
//
// Why some CHECKs: an event without source, entity, key or version, or a cursor with a negative
// offset, is a bug upstream that would corrupt dedupe for good if stored; refusing it fails the
// whole commit, which the caller already treats as "fetch the page again".
//
// The tables by journal part (Journal.h): EventLog owns events, latest_versions and cursors;
// SinkLedger owns sink_offsets, deliveries, dead_letters and delivered_hooks; InstanceState owns
// plugin_state and instance_status. All live in this one file, so advanceSink() can copy events
// into dead_letters in one transaction.
const std::vector<std::vector<const char*>> kMigrations = {
    {
        // AUTOINCREMENT: sequences are never reused, even after purge deleted the newest events;
        // a sink offset therefore never points at a different event than it did.
        R"(CREATE TABLE events (
             sequence INTEGER PRIMARY KEY AUTOINCREMENT,
             source TEXT NOT NULL CHECK (source <> ''),
             entity TEXT NOT NULL CHECK (entity <> ''),
             key TEXT NOT NULL CHECK (key <> ''),
             version TEXT NOT NULL CHECK (version <> ''),
             previous TEXT NOT NULL,
             body TEXT NOT NULL,
             echo INTEGER NOT NULL,
             fetched_at_ms INTEGER NOT NULL))",
        "CREATE INDEX events_source_sequence ON events (source, sequence)",
        R"(CREATE TABLE latest_versions (
             source TEXT NOT NULL,
             entity TEXT NOT NULL,
             key TEXT NOT NULL,
             version TEXT NOT NULL,
             version_ns INTEGER NOT NULL,
             PRIMARY KEY (source, entity, key)) WITHOUT ROWID)",
        R"(CREATE TABLE cursors (
             source TEXT PRIMARY KEY,
             since TEXT NOT NULL,
             since_ns INTEGER NOT NULL,
             since_offset INTEGER NOT NULL CHECK (since_offset >= 0),
             updated_at_ms INTEGER NOT NULL))",
        R"(CREATE TABLE sink_offsets (
             sink TEXT PRIMARY KEY,
             sequence INTEGER NOT NULL,
             updated_at_ms INTEGER NOT NULL))",
        R"(CREATE TABLE deliveries (
             id INTEGER PRIMARY KEY AUTOINCREMENT,
             sink TEXT NOT NULL,
             first_sequence INTEGER NOT NULL,
             last_sequence INTEGER NOT NULL,
             delivered_at_ms INTEGER NOT NULL,
             detail TEXT NOT NULL))",
        // `ferry trace` asks which deliveries cover one sequence.
        "CREATE INDEX deliveries_last_sequence ON deliveries (last_sequence, first_sequence)",
        // A full copy of the event: retention deletes events, never dead letters. AUTOINCREMENT
        // so that an id an operator saw in a listing never names another dead letter later.
        R"(CREATE TABLE dead_letters (
             id INTEGER PRIMARY KEY AUTOINCREMENT,
             sink TEXT NOT NULL,
             sequence INTEGER NOT NULL,
             source TEXT NOT NULL,
             entity TEXT NOT NULL,
             key TEXT NOT NULL,
             version TEXT NOT NULL,
             previous TEXT NOT NULL,
             body TEXT NOT NULL,
             echo INTEGER NOT NULL,
             fetched_at_ms INTEGER NOT NULL,
             reason TEXT NOT NULL,
             failed_at_ms INTEGER NOT NULL,
             replay_requested INTEGER NOT NULL DEFAULT 0,
             UNIQUE (sink, sequence)))",
        "CREATE INDEX dead_letters_sequence ON dead_letters (sequence)",
        R"(CREATE TABLE delivered_hooks (
             source TEXT PRIMARY KEY,
             sequence INTEGER NOT NULL,
             updated_at_ms INTEGER NOT NULL))",
        R"(CREATE TABLE plugin_state (
             instance TEXT NOT NULL,
             key TEXT NOT NULL,
             value BLOB NOT NULL,
             updated_at_ms INTEGER NOT NULL,
             PRIMARY KEY (instance, key)) WITHOUT ROWID)",
        R"(CREATE TABLE instance_status (
             name TEXT PRIMARY KEY,
             kind TEXT NOT NULL,
             state TEXT NOT NULL,
             message TEXT NOT NULL,
             updated_at_ms INTEGER NOT NULL,
             retry_attempt INTEGER NOT NULL,
             next_attempt_at_ms INTEGER NOT NULL))",
    },
    {
        // Schema 2. Controls (Controls.h): operators' requests to the journal's owner, sink
        // pauses, the start_from each source began with, and each instance's activity.
        R"(CREATE TABLE commands (
             id INTEGER PRIMARY KEY AUTOINCREMENT,
             action TEXT NOT NULL,
             target TEXT NOT NULL,
             argument TEXT NOT NULL,
             state TEXT NOT NULL DEFAULT 'pending',
             result TEXT NOT NULL DEFAULT '',
             requested_at_ms INTEGER NOT NULL,
             finished_at_ms INTEGER NOT NULL DEFAULT 0))",
        "CREATE INDEX commands_state ON commands (state, id)",
        R"(CREATE TABLE sink_controls (
             sink TEXT PRIMARY KEY,
             paused INTEGER NOT NULL,
             updated_at_ms INTEGER NOT NULL))",
        R"(CREATE TABLE source_origins (
             source TEXT PRIMARY KEY,
             start_from TEXT NOT NULL,
             updated_at_ms INTEGER NOT NULL))",
        R"(CREATE TABLE instance_activity (
             name TEXT PRIMARY KEY,
             kind TEXT NOT NULL,
             last_attempt_ms INTEGER NOT NULL,
             last_success_ms INTEGER NOT NULL,
             events_total INTEGER NOT NULL,
             progress TEXT NOT NULL,
             updated_at_ms INTEGER NOT NULL))",
    },
    {
        // Schema 3. A source may attach metadata (a JSON object) to an event; dead letters copy
        // it with the rest of the event.
        "ALTER TABLE events ADD COLUMN meta TEXT NOT NULL DEFAULT ''",
        "ALTER TABLE dead_letters ADD COLUMN meta TEXT NOT NULL DEFAULT ''",
        // The latest version of each key is found through an in-memory index (VersionIndex.h),
        // so a commit appends and no longer dirties one random page of latest_versions per event.
        // An event that carries its key's latest version for the index has the key's hash in
        // key_hash (NULL otherwise), and the (source, sequence) index covers it: the version
        // index is rebuilt from that index alone, without reading event bodies. latest_versions
        // keeps the versions the index cannot point at: of keys whose events were purged, and of
        // keys whose hash another key's event holds. version_cutoffs says from which event on a
        // source's events count again after resetCursor(forget_versions). A journal older than this
        // keeps its latest_versions (every key's latest version) and has no key_hash: its keys
        // are found in that table until they change again.
        "ALTER TABLE events ADD COLUMN key_hash INTEGER",
        "DROP INDEX events_source_sequence",
        "CREATE INDEX events_source_sequence ON events (source, sequence, key_hash)",
        R"(CREATE TABLE version_cutoffs (
             source TEXT PRIMARY KEY,
             after_sequence INTEGER NOT NULL))",
    },
    {
        // Schema 4. The journal's identity (Journal::identity): its creation time and 64 random
        // bits, made once (a journal upgraded to this schema gets it at the upgrade).
        "CREATE TABLE journal_identity (id TEXT NOT NULL)",
        "INSERT INTO journal_identity SELECT strftime('%Y%m%dT%H%M%SZ', 'now') || '-' || "
        "lower(hex(randomblob(8)))",
    },
    {
        // Schema 5. Source dead letters: items a source could not read, set aside (EventLog.h).
        // The text columns are BLOBs: a key set aside for its NUL byte keeps it.
        R"(CREATE TABLE source_dead_letters (
             id INTEGER PRIMARY KEY AUTOINCREMENT,
             source TEXT NOT NULL,
             fingerprint TEXT NOT NULL,
             entity BLOB NOT NULL,
             key BLOB NOT NULL,
             version BLOB NOT NULL,
             raw BLOB NOT NULL,
             reason TEXT NOT NULL,
             since_ms INTEGER NOT NULL,
             set_aside_at_ms INTEGER NOT NULL,
             UNIQUE (source, fingerprint)))",
    },
};
static_assert(SqliteJournal::kSchemaVersion == 5, "add a migration step with the version bump");

// Events purged per transaction (purge() runs in chunks of this many).
constexpr int64_t kPurgeChunk = 10000;

constexpr const char* kEventColumns =
    "sequence, source, entity, key, version, previous, body, echo, fetched_at_ms, meta";
using EventRow = Poco::Tuple<Int64, std::string, std::string, std::string, std::string, std::string,
                             std::string, int, Int64, std::string>;

constexpr const char* kDeadLetterColumns =
    "id, sink, sequence, source, entity, key, version, previous, body, echo, fetched_at_ms, "
    "reason, failed_at_ms, replay_requested, meta";
using DeadLetterRow =
    Poco::Tuple<Int64, std::string, Int64, std::string, std::string, std::string, std::string,
                std::string, std::string, int, Int64, std::string, Int64, int, std::string>;

JournalEvent toEvent(const EventRow& row) {
  JournalEvent e;
  e.sequence = row.get<0>();
  e.source = row.get<1>();
  e.entity = row.get<2>();
  e.key = row.get<3>();
  e.version = row.get<4>();
  e.previous = row.get<5>();
  e.body = row.get<6>();
  e.echo = row.get<7>() != 0;
  e.fetched_at_ms = row.get<8>();
  e.meta = row.get<9>();
  return e;
}

DeadLetter toDeadLetter(const DeadLetterRow& row) {
  DeadLetter d;
  d.id = row.get<0>();
  d.sink = row.get<1>();
  d.event.sequence = row.get<2>();
  d.event.source = row.get<3>();
  d.event.entity = row.get<4>();
  d.event.key = row.get<5>();
  d.event.version = row.get<6>();
  d.event.previous = row.get<7>();
  d.event.body = row.get<8>();
  d.event.echo = row.get<9>() != 0;
  d.event.fetched_at_ms = row.get<10>();
  d.reason = row.get<11>();
  d.failed_at_ms = row.get<12>();
  d.replay_requested = row.get<13>() != 0;
  d.event.meta = row.get<14>();
  return d;
}

// "?, ?, ?": placeholders for a list whose values are bound one by one.
std::string placeholders(size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) out += i == 0 ? "?" : ", ?";
  return out;
}

Int64 clampLimit(size_t limit) {
  return limit > static_cast<size_t>(std::numeric_limits<Int64>::max())
             ? std::numeric_limits<Int64>::max()
             : static_cast<Int64>(limit);
}

// BEGIN IMMEDIATE takes the write lock up front: a transaction that started as a reader and then
// writes can fail with SQLITE_BUSY half-way if another process wrote meanwhile, and the busy
// timeout does not help in that case. Rolls back unless commit() was reached.
class Transaction {
 public:
  explicit Transaction(Session& session) : session_(session) { session_ << "BEGIN IMMEDIATE", now; }
  ~Transaction() {
    if (done_) return;
    try {
      session_ << "ROLLBACK", now;
    } catch (...) {
      // SQLite already rolled back (e.g. after an I/O error): nothing left to undo.
    }
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  void commit() {
    session_ << "COMMIT", now;
    done_ = true;
  }

 private:
  Session& session_;
  bool done_ = false;
};

constexpr const char* kOpenHint =
    " (check that the path names a ferry journal and that this user may write it and its "
    "directory)";

Session openSession(const std::string& path) {
  static std::once_flag registered;
  std::call_once(registered, [] { Poco::Data::SQLite::Connector::registerConnector(); });
  try {
    return Session(Poco::Data::SQLite::Connector::KEY, path);
  } catch (const Poco::Exception& e) {
    throw JournalError("journal " + path + ": cannot open: " + e.displayText() + kOpenHint);
  }
}

}  // namespace

SqliteJournal::SqliteJournal(const std::string& path, KeyHasher hash)
    : path_(path), session_(openSession(path)), hash_(hash) {
  try {
    configure();
    migrate();
    session_ << "SELECT id FROM journal_identity", into(identity_), now;
  } catch (const JournalError&) {
    throw;
  } catch (const Poco::Exception& e) {
    throw JournalError(describe("cannot open", e.displayText() + kOpenHint));
  } catch (const std::exception& e) {
    throw JournalError(describe("cannot open", e.what() + std::string(kOpenHint)));
  }
}

SqliteJournal::~SqliteJournal() {
  sqlite3_finalize(reader_event_);
  sqlite3_finalize(reader_latest_);
  sqlite3_close(reader_);
  for (sqlite3_stmt*& statement : prepared_) {
    sqlite3_finalize(statement);
    statement = nullptr;
  }
  try {
    session_.close();
  } catch (...) {
    // Closing cannot lose committed data; nothing useful to report from a destructor.
  }
}

sqlite3_stmt* SqliteJournal::prepared(int which, const char* sql) {
  if (prepared_[which] == nullptr) {
    sqlite3* db = Poco::Data::SQLite::Utility::dbHandle(session_);
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &prepared_[which], nullptr) !=
        SQLITE_OK)
      throw std::runtime_error(sqlite3_errmsg(db));
  }
  sqlite3_stmt* statement = prepared_[which];
  sqlite3_reset(statement);
  sqlite3_clear_bindings(statement);
  return statement;
}

void SqliteJournal::step(sqlite3_stmt* statement) {
  const int rc = sqlite3_step(statement);
  if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
    std::string message = sqlite3_errmsg(sqlite3_db_handle(statement));
    sqlite3_reset(statement);
    throw std::runtime_error(message);
  }
}

namespace {

void bindText(sqlite3_stmt* statement, int index, std::string_view text) {
  // SQLITE_STATIC: the text outlives the step, which happens before the caller's data changes.
  sqlite3_bind_text(statement, index, text.data(), static_cast<int>(text.size()), SQLITE_STATIC);
}

// Bytes that may hold NUL, stored as a BLOB (never an empty NULL).
void bindBlob(sqlite3_stmt* statement, int index, std::string_view bytes) {
  sqlite3_bind_blob(statement, index, bytes.empty() ? "" : bytes.data(),
                    static_cast<int>(bytes.size()), SQLITE_STATIC);
}

std::string_view columnBlob(sqlite3_stmt* statement, int column) {
  const auto* bytes = static_cast<const char*>(sqlite3_column_blob(statement, column));
  return {bytes == nullptr ? "" : bytes,
          static_cast<size_t>(sqlite3_column_bytes(statement, column))};
}

std::string_view columnText(sqlite3_stmt* statement, int column) {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(statement, column));
  return {text == nullptr ? "" : text,
          static_cast<size_t>(sqlite3_column_bytes(statement, column))};
}

// A statement run once (building the index, purging): finalized however the caller leaves.
class Query {
 public:
  Query(sqlite3* db, const char* sql) {
    if (sqlite3_prepare_v2(db, sql, -1, &statement_, nullptr) != SQLITE_OK)
      throw std::runtime_error(sqlite3_errmsg(db));
  }
  ~Query() { sqlite3_finalize(statement_); }
  Query(const Query&) = delete;
  Query& operator=(const Query&) = delete;

  sqlite3_stmt* get() const { return statement_; }
  // The next row: true while there is one.
  bool next() {
    const int rc = sqlite3_step(statement_);
    if (rc == SQLITE_ROW) return true;
    if (rc != SQLITE_DONE) throw std::runtime_error(sqlite3_errmsg(sqlite3_db_handle(statement_)));
    return false;
  }

 private:
  sqlite3_stmt* statement_ = nullptr;
};

}  // namespace

std::string SqliteJournal::describe(const std::string& action, const std::string& cause) const {
  return "journal " + path_ + ": " + action + ": " + cause;
}

// One connection and one mutex. Poco's Session is not safe for concurrent use, and, more
// importantly, a transaction belongs to the connection: a second thread's SELECT on it while a
// commit is under way would read the rows inserted so far. Holding the mutex for the whole
// transaction makes every read see whole commits only. Commits are short (one fsync), so readers
// waiting for them cost little; a pool of read connections is the upgrade path if it ever shows.
template <typename Body>
auto SqliteJournal::locked(const std::string& action, Body&& body) -> decltype(body()) {
  std::lock_guard<std::mutex> lock(mutex_);
  try {
    return body();
  } catch (const JournalError&) {
    throw;
  } catch (const Poco::Exception& e) {
    throw JournalError(describe(action, e.displayText()));
  } catch (const std::exception& e) {
    throw JournalError(describe(action, e.what()));
  }
}

void SqliteJournal::configure() {
  // Before anything touches the file, so that the PRAGMAs below already wait for another
  // process's lock instead of failing at once.
  session_ << "PRAGMA busy_timeout = " + std::to_string(kBusyTimeoutMs), now;
  // A new journal gets 64 KiB pages (SQLite's largest): event bodies of about a kilobyte fill a
  // 4 KiB page with three rows, and a backfill's commits then spend a third more CPU on per-page
  // work (B-tree, WAL frames and their checksums, the checkpoint) than with 64 KiB pages. A small
  // commit writes a few whole pages, which costs little at one per poll cycle. Takes effect only
  // when the file is created (before WAL mode is set); an existing journal keeps its page size.
  session_ << "PRAGMA page_size = " + std::to_string(kNewPageSize), now;
  std::string mode;
  session_ << "PRAGMA journal_mode = WAL", into(mode), now;
  if (mode != "wal") {
    throw JournalError(describe("cannot open", "SQLite refused WAL mode (journal_mode is '" + mode +
                                                   "'); put the journal on a local file system"));
  }
  session_ << "PRAGMA synchronous = FULL", now;
  // A backfill writes event bodies by the hundred megabytes, and sinks that are caught up get
  // them from memory (Handoff), not from here; dedupe reads the file only for keys it has seen
  // (VersionIndex), and commits append. The cache (8 MiB) is bounded and the file is not mapped,
  // so that the process's memory stays flat however large the journal grows; the WAL may grow to
  // 64 MB between checkpoints (each checkpoint copies and fsyncs the database).
  Int64 page_size = 0;
  session_ << "PRAGMA page_size", into(page_size), now;
  session_ << "PRAGMA cache_size = -8192", now;
  session_ << "PRAGMA mmap_size = 0", now;
  session_ << "PRAGMA wal_autocheckpoint = " +
                  std::to_string((64 << 20) / std::max<Int64>(page_size, 512)),
      now;
  session_ << "PRAGMA temp_store = MEMORY", now;
}

void SqliteJournal::migrate() {
  Int64 version = 0;
  session_ << "PRAGMA user_version", into(version), now;
  if (version == kSchemaVersion) return;
  if (version > kSchemaVersion) {
    throw JournalError(describe("cannot open", "its schema version is " + std::to_string(version) +
                                                   " but this ferry understands up to " +
                                                   std::to_string(kSchemaVersion) +
                                                   "; run a newer ferry on it"));
  }
  Transaction tx(session_);
  // Read again under the write lock: another process may have migrated meanwhile.
  session_ << "PRAGMA user_version", into(version), now;
  if (version == 0) {
    // A new journal has no table yet. Tables without our schema version: another program's
    // database, which must never be taken for a new (empty) journal.
    Int64 tables = 0;
    session_ << "SELECT COUNT(*) FROM sqlite_master", into(tables), now;
    if (tables > 0)
      throw JournalError(describe(
          "cannot open", "it is an SQLite database but not a ferry journal (it has " +
                             std::to_string(tables) +
                             " table(s) and no ferry schema); point [host] journal at the "
                             "journal file, or at a new path to start a new journal"));
  }
  for (; version < kSchemaVersion; ++version) {
    for (const char* sql : kMigrations.at(static_cast<size_t>(version))) {
      session_ << sql, now;
    }
  }
  // PRAGMA takes no bound parameters; the value is our own constant.
  session_ << "PRAGMA user_version = " + std::to_string(kSchemaVersion), now;
  tx.commit();
}

SqliteSettings SqliteJournal::settings() {
  return locked("reading settings", [&] {
    SqliteSettings s;
    session_ << "PRAGMA journal_mode", into(s.journal_mode), now;
    Int64 value = 0;
    session_ << "PRAGMA synchronous", into(value), now;
    s.synchronous = value;
    session_ << "PRAGMA busy_timeout", into(value), now;
    s.busy_timeout_ms = value;
    session_ << "PRAGMA user_version", into(value), now;
    s.schema_version = value;
    return s;
  });
}

int64_t SqliteJournal::totalChanges() {
  Int64 n = 0;
  session_ << "SELECT total_changes()", into(n), now;
  return n;
}

// --- the version index ---------------------------------------------------------------------------

int64_t SqliteJournal::highWater() {
  // sqlite_sequence keeps the high-water mark even when purge deleted every event.
  Query q(Poco::Data::SQLite::Utility::dbHandle(session_),
          "SELECT ifnull((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0)");
  return q.next() ? sqlite3_column_int64(q.get(), 0) : 0;
}

void SqliteJournal::ensureIndex() {
  if (index_ready_) return;
  Transaction tx(session_);
  buildIndex();
  tx.commit();
}

void SqliteJournal::buildIndex() {
  sqlite3* db = Poco::Data::SQLite::Utility::dbHandle(session_);
  // Readers wait for the whole rebuild: a half-built index would call known keys new.
  std::lock_guard<std::mutex> lock(index_mutex_);
  index_ready_ = false;
  index_.clear();
  std::unordered_map<std::string, int64_t> cutoffs;
  Query cutoff(db, "SELECT source, after_sequence FROM version_cutoffs");
  while (cutoff.next())
    cutoffs[std::string(columnText(cutoff.get(), 0))] = sqlite3_column_int64(cutoff.get(), 1);
  // In (source, sequence) order: a source's cutoff is looked up once per run of its events.
  // Where a key changed more than once, its newest event wins.
  Query hashes(db,
               "SELECT source, sequence, key_hash FROM events INDEXED BY events_source_sequence "
               "WHERE key_hash IS NOT NULL");
  std::string source;
  int64_t after = 0;
  while (hashes.next()) {
    if (columnText(hashes.get(), 0) != source) {
      source = columnText(hashes.get(), 0);
      auto it = cutoffs.find(source);
      after = it == cutoffs.end() ? 0 : it->second;
    }
    const int64_t sequence = sqlite3_column_int64(hashes.get(), 1);
    if (sequence <= after) continue;  // forgotten by resetCursor
    const auto hash = static_cast<uint64_t>(sqlite3_column_int64(hashes.get(), 2));
    if (index_.find(hash).value_or(0) < sequence) index_.set(hash, sequence);
  }
  // A key in the table whose hash an event holds is found there after the event's key differs.
  Query table(db, "SELECT source, entity, key FROM latest_versions");
  while (table.next()) {
    const std::string source(columnText(table.get(), 0));
    const uint64_t hash = keyHash(source, columnText(table.get(), 1), columnText(table.get(), 2));
    if (!index_.find(hash)) index_.set(hash, VersionIndex::kInTable);
  }
  index_last_ = highWater();
  index_ready_ = true;
}

std::optional<bool> SqliteJournal::eventHasKey(int64_t sequence, const std::string& source,
                                               std::string_view entity, std::string_view key) {
  sqlite3_stmt* select =
      prepared(kSelectEventKey, "SELECT source, entity, key FROM events WHERE sequence = ?");
  sqlite3_bind_int64(select, 1, sequence);
  const int rc = sqlite3_step(select);
  if (rc == SQLITE_DONE) return std::nullopt;
  if (rc != SQLITE_ROW) {
    std::string message = sqlite3_errmsg(sqlite3_db_handle(select));
    sqlite3_reset(select);
    throw std::runtime_error(message);
  }
  const bool same = columnText(select, 0) == source && columnText(select, 1) == entity &&
                    columnText(select, 2) == key;
  sqlite3_reset(select);
  return same;
}

void SqliteJournal::upsertLatest(const std::string& source, std::string_view entity,
                                 std::string_view key, std::string_view version,
                                 int64_t version_ns) {
  sqlite3_stmt* upsert =
      prepared(kUpsertLatest,
               "INSERT INTO latest_versions (source, entity, key, version, version_ns) "
               "VALUES (?, ?, ?, ?, ?) ON CONFLICT (source, entity, key) DO UPDATE SET "
               "version = excluded.version, version_ns = excluded.version_ns");
  bindText(upsert, 1, source);
  bindText(upsert, 2, entity);
  bindText(upsert, 3, key);
  bindText(upsert, 4, version);
  sqlite3_bind_int64(upsert, 5, version_ns);
  step(upsert);
  sqlite3_reset(upsert);
}

// --- EventLog: events, cursors, latest versions --------------------------------------------------

std::optional<Cursor> SqliteJournal::cursor(const std::string& source) {
  return locked("reading the cursor of '" + source + "'", [&]() -> std::optional<Cursor> {
    std::vector<std::string> since;
    std::vector<Int64> since_ns, offset;
    session_ << "SELECT since, since_ns, since_offset FROM cursors WHERE source = ?",
        useRef(source), into(since), into(since_ns), into(offset), now;
    if (since.empty()) return std::nullopt;
    return Cursor{since[0], since_ns[0], offset[0]};
  });
}

// The index answers every key it does not know (a backfill's keys) without touching the file.
// A hit is read on a connection of its own: a source looks up the versions of its next page
// while its previous pages commit on the main connection (WAL lets one reader and one writer
// work at once). What is being committed is not visible here yet; the cursor engine keeps those
// versions in memory until the commit is done.
std::vector<std::optional<VersionSeen>> SqliteJournal::latestVersions(
    const std::string& source, const std::vector<KeyRef>& keys) {
  std::vector<std::optional<VersionSeen>> out(keys.size());
  if (keys.empty()) return out;
  const std::string action = "reading latest versions of '" + source + "'";
  // The index first, then the file: a commit or purge changes the index only after its
  // transaction committed, so the snapshot read below holds whatever the index said.
  std::vector<std::pair<size_t, int64_t>> hits;  // (position in keys, sequence)
  while (true) {
    {
      std::lock_guard<std::mutex> lock(index_mutex_);
      if (index_ready_) {
        for (size_t i = 0; i < keys.size(); ++i) {
          if (auto sequence = index_.find(keyHash(source, keys[i].entity, keys[i].key)))
            hits.emplace_back(i, *sequence);
        }
        break;
      }
    }
    locked(action, [&] { ensureIndex(); });
  }
  if (hits.empty()) return out;

  std::lock_guard<std::mutex> lock(reader_mutex_);
  auto fail = [&](const std::string& cause) { return JournalError(describe(action, cause)); };
  if (reader_ == nullptr) {
    if (sqlite3_open_v2(path_.c_str(), &reader_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                        nullptr) != SQLITE_OK) {
      std::string cause = reader_ ? sqlite3_errmsg(reader_) : "out of memory";
      sqlite3_close(reader_);
      reader_ = nullptr;
      throw fail(cause);
    }
    sqlite3_busy_timeout(reader_, static_cast<int>(kBusyTimeoutMs));
  }
  for (auto [statement, sql] : {std::pair{&reader_event_,
                                          "SELECT source, entity, key, version FROM events "
                                          "WHERE sequence = ?"},
                                std::pair{&reader_latest_,
                                          "SELECT version, version_ns FROM latest_versions "
                                          "WHERE source = ? AND entity = ? AND key = ?"}}) {
    if (*statement == nullptr && sqlite3_prepare_v3(reader_, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                                    statement, nullptr) != SQLITE_OK)
      throw fail(sqlite3_errmsg(reader_));
  }
  // One read transaction for the page: one snapshot and one pair of lock calls, not one per key.
  if (sqlite3_exec(reader_, "BEGIN", nullptr, nullptr, nullptr) != SQLITE_OK)
    throw fail(sqlite3_errmsg(reader_));
  std::string cause;
  for (const auto& [i, sequence] : hits) {
    const KeyRef& k = keys[i];
    int rc = SQLITE_DONE;
    if (sequence != VersionIndex::kInTable) {
      // The event the index points at carries the key's latest version, if it is this key's.
      sqlite3_stmt* select = reader_event_;
      sqlite3_reset(select);
      sqlite3_bind_int64(select, 1, sequence);
      rc = sqlite3_step(select);
      if (rc == SQLITE_ROW && columnText(select, 0) == source &&
          columnText(select, 1) == k.entity && columnText(select, 2) == k.key) {
        const std::string_view version = columnText(select, 3);
        const auto ns = parseInstantNs(std::string(version));
        if (!ns) {
          cause = "event " + std::to_string(sequence) + " has version '" + std::string(version) +
                  "', which is not an instant";
          break;
        }
        out[i] = VersionSeen{std::string(version), *ns};
        continue;
      }
      if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        cause = sqlite3_errmsg(reader_);
        break;
      }
    }
    // Purged, or another key's event holds the hash: the table has it, if anyone does.
    sqlite3_stmt* select = reader_latest_;
    sqlite3_reset(select);
    bindText(select, 1, source);
    bindText(select, 2, k.entity);
    bindText(select, 3, k.key);
    rc = sqlite3_step(select);
    if (rc == SQLITE_ROW) {
      out[i] = VersionSeen{std::string(columnText(select, 0)), sqlite3_column_int64(select, 1)};
    } else if (rc != SQLITE_DONE) {
      cause = sqlite3_errmsg(reader_);
      break;
    }
  }
  sqlite3_reset(reader_event_);
  sqlite3_reset(reader_latest_);
  sqlite3_exec(reader_, "COMMIT", nullptr, nullptr, nullptr);
  if (!cause.empty()) throw fail(cause);
  return out;
}

void SqliteJournal::upsertCursor(const std::string& source, const Cursor& cursor, int64_t now_ms) {
  Int64 since_ns = cursor.since_ns, offset = cursor.offset, updated = now_ms;
  session_ << "INSERT INTO cursors (source, since, since_ns, since_offset, updated_at_ms) "
              "VALUES (?, ?, ?, ?, ?) ON CONFLICT (source) DO UPDATE SET "
              "since = excluded.since, since_ns = excluded.since_ns, "
              "since_offset = excluded.since_offset, updated_at_ms = excluded.updated_at_ms",
      useRef(source), useRef(cursor.since), use(since_ns), use(offset), use(updated), now;
}

int64_t SqliteJournal::commit(const std::string& source, const std::vector<NewEvent>& events,
                              const Cursor& cursor, const std::vector<SetAsideItem>& set_aside) {
  const std::string action =
      "committing " + std::to_string(events.size()) + " events from '" + source + "'";
  return locked(action, [&] {
    ensureIndex();
    const Int64 now_ms = nowMs();
    int64_t last = 0;
    Transaction tx(session_);
    if (highWater() != index_last_) {
      buildIndex();
      throw JournalError(
          describe(action,
                   "events were appended by another connection since this one read the journal; "
                   "its version index was read again and this commit refused (the pages are "
                   "fetched again)"));
    }
    // What this commit changes in the index, applied once it is durable.
    std::unordered_map<uint64_t, int64_t> owners;
    if (!events.empty()) {
      owners.reserve(events.size());
      sqlite3* db = Poco::Data::SQLite::Utility::dbHandle(session_);
      // Backfills hand over thousands of events per call: each statement is compiled once and
      // stepped per event with its text bound in place. Both inserts append at the end of their
      // table.
      sqlite3_stmt* insert = prepared(
          kInsertEvent,
          "INSERT INTO events (source, entity, key, version, previous, body, echo, fetched_at_ms, "
          "meta, key_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
      for (const NewEvent& e : events) {
        // The key's slot in the index: its own (a new key, or its older event), free (the event
        // there was purged), or another key's, whose event keeps it; then this key's version
        // goes to the table.
        const uint64_t hash = keyHash(source, e.entity, e.key);
        auto pending = owners.find(hash);
        const std::optional<int64_t> slot =
            pending != owners.end() ? std::optional(pending->second) : index_.find(hash);
        const bool owns = !slot || *slot == VersionIndex::kInTable ||
                          eventHasKey(*slot, source, e.entity, e.key).value_or(true);
        if (!owns) upsertLatest(source, e.entity, e.key, e.version, e.version_ns);
        bindText(insert, 1, source);
        bindText(insert, 2, e.entity);
        bindText(insert, 3, e.key);
        bindText(insert, 4, e.version);
        bindText(insert, 5, e.previous);
        bindText(insert, 6, e.body);
        sqlite3_bind_int(insert, 7, e.echo ? 1 : 0);
        sqlite3_bind_int64(insert, 8, now_ms);
        bindText(insert, 9, e.meta);
        if (owns) sqlite3_bind_int64(insert, 10, static_cast<int64_t>(hash));
        else sqlite3_bind_null(insert, 10);
        step(insert);
        sqlite3_reset(insert);
        last = sqlite3_last_insert_rowid(db);
        if (owns) owners[hash] = last;
      }
    }
    if (!set_aside.empty()) {
      Query insert(Poco::Data::SQLite::Utility::dbHandle(session_),
                   "INSERT INTO source_dead_letters (source, fingerprint, entity, key, version, "
                   "raw, reason, since_ms, set_aside_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                   "ON CONFLICT (source, fingerprint) DO NOTHING");
      for (const SetAsideItem& item : set_aside) {
        sqlite3_stmt* q = insert.get();
        bindText(q, 1, source);
        bindText(q, 2, item.fingerprint);
        bindBlob(q, 3, item.entity);
        bindBlob(q, 4, item.key);
        bindBlob(q, 5, item.version);
        bindBlob(q, 6, item.raw);
        bindText(q, 7, item.reason);
        sqlite3_bind_int64(q, 8, item.since_ms);
        sqlite3_bind_int64(q, 9, now_ms);
        insert.next();
        sqlite3_reset(q);
      }
    }
    upsertCursor(source, cursor, now_ms);
    tx.commit();
    std::lock_guard<std::mutex> lock(index_mutex_);
    try {
      for (const auto& [hash, sequence] : owners) index_.set(hash, sequence);
      if (last > 0) index_last_ = last;
    } catch (...) {
      index_ready_ = false;  // out of memory half-way: rebuilt from the file on next use
      throw;
    }
    return last;
  });
}

void SqliteJournal::resetCursor(const std::string& source, const Cursor& cursor,
                                bool forget_versions) {
  locked("resetting the cursor of '" + source + "'", [&] {
    {
      Transaction tx(session_);
      upsertCursor(source, cursor, nowMs());
      if (forget_versions) {
        session_ << "DELETE FROM latest_versions WHERE source = ?", useRef(source), now;
        // The source's events so far no longer count for its versions, now or after a restart.
        Int64 after = highWater();
        session_ << "INSERT INTO version_cutoffs (source, after_sequence) VALUES (?, ?) "
                    "ON CONFLICT (source) DO UPDATE SET after_sequence = excluded.after_sequence",
            useRef(source), use(after), now;
      }
      tx.commit();
    }
    if (forget_versions && index_ready_) {
      Transaction tx(session_);
      buildIndex();
      tx.commit();
    }
  });
}

std::vector<std::pair<std::string, Cursor>> SqliteJournal::cursors() {
  return locked("reading cursors", [&] {
    std::vector<Poco::Tuple<std::string, std::string, Int64, Int64>> rows;
    session_ << "SELECT source, since, since_ns, since_offset FROM cursors ORDER BY source",
        into(rows), now;
    std::vector<std::pair<std::string, Cursor>> out;
    out.reserve(rows.size());
    for (const auto& row : rows) {
      out.emplace_back(row.get<0>(), Cursor{row.get<1>(), row.get<2>(), row.get<3>()});
    }
    return out;
  });
}

std::vector<JournalEvent> SqliteJournal::readAfter(int64_t after,
                                                   const std::vector<std::string>& sources,
                                                   size_t limit) {
  return locked("reading events after " + std::to_string(after), [&] {
    std::vector<JournalEvent> out;
    if (limit == 0) return out;
    std::string sql = std::string("SELECT ") + kEventColumns + " FROM events WHERE sequence > ?";
    if (!sources.empty()) sql += " AND source IN (" + placeholders(sources.size()) + ")";
    sql += " ORDER BY sequence LIMIT ?";
    Int64 after_value = after, limit_value = clampLimit(limit);
    std::vector<EventRow> rows;
    Statement select(session_);
    select << sql;
    select.addBind(use(after_value));
    for (const std::string& s : sources) select.addBind(useRef(s));
    select.addBind(use(limit_value));
    select.addExtract(into(rows));
    select.execute();
    out.reserve(rows.size());
    for (const EventRow& row : rows) out.push_back(toEvent(row));
    return out;
  });
}

int64_t SqliteJournal::lastSequence() {
  return locked("reading the last sequence", [&] { return highWater(); });
}

int64_t SqliteJournal::countAfter(int64_t after, const std::vector<std::string>& sources) {
  return locked("counting events after " + std::to_string(after), [&] {
    std::string sql = "SELECT count(*) FROM events WHERE sequence > ?";
    if (!sources.empty()) sql += " AND source IN (" + placeholders(sources.size()) + ")";
    Int64 after_value = after, count = 0;
    Statement select(session_);
    select << sql;
    select.addBind(use(after_value));
    for (const std::string& s : sources) select.addBind(useRef(s));
    select.addExtract(into(count));
    select.execute();
    return static_cast<int64_t>(count);
  });
}

int64_t SqliteJournal::purge(int64_t up_to_sequence, int64_t fetched_before_ms) {
  int64_t total = 0;
  while (true) {
    const int64_t deleted = locked("purging events up to " + std::to_string(up_to_sequence),
                                   [&] { return purgeChunk(up_to_sequence, fetched_before_ms); });
    total += deleted;
    if (deleted < kPurgeChunk) return total;
  }
}

int64_t SqliteJournal::purgeChunk(int64_t up_to_sequence, int64_t fetched_before_ms) {
  ensureIndex();
  sqlite3* db = Poco::Data::SQLite::Utility::dbHandle(session_);
  Transaction tx(session_);
  // The oldest events, up to the first one too recent to go. An event the index points at
  // carries its key's latest version: that version moves to latest_versions, so the key is still
  // known once its events are gone.
  struct Moved {
    std::string source, entity, key, version;
    uint64_t hash = 0;
  };
  std::vector<Moved> moved;
  int64_t deleted = 0, last_deleted = 0;
  {
    Query select(db,
                 "SELECT sequence, fetched_at_ms, source, entity, key, version FROM events "
                 "WHERE sequence <= ? ORDER BY sequence LIMIT ?");
    sqlite3_bind_int64(select.get(), 1, up_to_sequence);
    sqlite3_bind_int64(select.get(), 2, kPurgeChunk);
    while (select.next()) {
      if (sqlite3_column_int64(select.get(), 1) >= fetched_before_ms) break;
      const int64_t sequence = sqlite3_column_int64(select.get(), 0);
      ++deleted;
      last_deleted = sequence;
      Moved m{std::string(columnText(select.get(), 2)), std::string(columnText(select.get(), 3)),
              std::string(columnText(select.get(), 4)), std::string(columnText(select.get(), 5))};
      m.hash = keyHash(m.source, m.entity, m.key);
      if (index_.find(m.hash) == sequence) moved.push_back(std::move(m));
    }
  }
  if (deleted == 0) return 0;
  // In key order: neighbouring rows of the table are written together.
  std::sort(moved.begin(), moved.end(), [](const Moved& a, const Moved& b) {
    return std::tie(a.source, a.entity, a.key) < std::tie(b.source, b.entity, b.key);
  });
  for (const Moved& m : moved) {
    const auto ns = parseInstantNs(m.version);
    if (!ns) {
      throw JournalError(describe("purging events", "the event of key '" + m.key +
                                                        "' has version '" + m.version +
                                                        "', which is not an instant"));
    }
    upsertLatest(m.source, m.entity, m.key, m.version, *ns);
  }
  Int64 up_to = last_deleted;
  session_ << "DELETE FROM events WHERE sequence <= ?", use(up_to), now;
  tx.commit();
  std::lock_guard<std::mutex> lock(index_mutex_);
  for (const Moved& m : moved) index_.set(m.hash, VersionIndex::kInTable);
  return deleted;
}

std::vector<JournalEvent> SqliteJournal::eventsOfKey(const std::string& key) {
  return locked("reading the events of key '" + key + "'", [&] {
    std::vector<EventRow> rows;
    session_ << std::string("SELECT ") + kEventColumns +
                    " FROM events WHERE key = ? ORDER BY sequence",
        useRef(key), into(rows), now;
    std::vector<JournalEvent> out;
    out.reserve(rows.size());
    for (const EventRow& row : rows) out.push_back(toEvent(row));
    return out;
  });
}

// --- SinkLedger: offsets, deliveries, dead letters, delivered hooks ------------------------------

int64_t SqliteJournal::sinkOffset(const std::string& sink) {
  return locked("reading the offset of sink '" + sink + "'", [&] {
    Int64 offset = 0;
    session_ << "SELECT ifnull((SELECT sequence FROM sink_offsets WHERE sink = ?), 0)",
        useRef(sink), into(offset), now;
    return static_cast<int64_t>(offset);
  });
}

std::vector<std::pair<std::string, int64_t>> SqliteJournal::sinkOffsets() {
  return locked("reading sink offsets", [&] {
    std::vector<Poco::Tuple<std::string, Int64>> rows;
    session_ << "SELECT sink, sequence FROM sink_offsets ORDER BY sink", into(rows), now;
    std::vector<std::pair<std::string, int64_t>> out;
    out.reserve(rows.size());
    for (const auto& row : rows) out.emplace_back(row.get<0>(), row.get<1>());
    return out;
  });
}

void SqliteJournal::advanceSink(const std::string& sink, int64_t offset,
                                const std::optional<DeliveryRange>& delivery,
                                const std::vector<NewDeadLetter>& dead) {
  locked("advancing sink '" + sink + "' to " + std::to_string(offset), [&] {
    const Int64 now_ms = nowMs();
    Int64 offset_value = offset;
    Transaction tx(session_);
    session_ << "INSERT INTO sink_offsets (sink, sequence, updated_at_ms) VALUES (?, ?, ?) "
                "ON CONFLICT (sink) DO UPDATE SET sequence = excluded.sequence, "
                "updated_at_ms = excluded.updated_at_ms",
        useRef(sink), use(offset_value), bind(now_ms), now;
    if (delivery) {
      Int64 first = delivery->first_sequence, last = delivery->last_sequence;
      session_ << "INSERT INTO deliveries "
                  "(sink, first_sequence, last_sequence, delivered_at_ms, detail) "
                  "VALUES (?, ?, ?, ?, ?)",
          useRef(sink), use(first), use(last), bind(now_ms), useRef(delivery->detail), now;
    }
    // Dead letters are rare, so one statement each; what matters is that each copies its event
    // from the journal inside this transaction, and that a missing event fails it loudly rather
    // than losing the dead letter.
    for (const NewDeadLetter& d : dead) {
      Int64 sequence = d.sequence;
      const int64_t before = totalChanges();
      session_ << "INSERT INTO dead_letters (sink, sequence, source, entity, key, version, "
                  "previous, body, echo, fetched_at_ms, reason, failed_at_ms, replay_requested, "
                  "meta) SELECT ?, sequence, source, entity, key, version, previous, body, echo, "
                  "fetched_at_ms, ?, ?, 0, meta FROM events WHERE sequence = ? "
                  "ON CONFLICT (sink, sequence) DO UPDATE SET reason = excluded.reason, "
                  "failed_at_ms = excluded.failed_at_ms, replay_requested = 0",
          useRef(sink), useRef(d.reason), bind(now_ms), use(sequence), now;
      if (totalChanges() == before) {
        throw JournalError(describe(
            "advancing sink '" + sink + "' to " + std::to_string(offset),
            "cannot dead-letter event " + std::to_string(d.sequence) +
                ": it is not in the journal (purged, or a sequence that was never assigned); "
                "nothing was changed"));
      }
    }
    tx.commit();
  });
}

std::vector<DeliveryRecord> SqliteJournal::deliveriesOf(int64_t sequence) {
  return locked("reading the deliveries of event " + std::to_string(sequence), [&] {
    Int64 seq = sequence;
    std::vector<Poco::Tuple<std::string, Int64, Int64, Int64, std::string>> rows;
    session_ << "SELECT sink, first_sequence, last_sequence, delivered_at_ms, detail "
                "FROM deliveries WHERE last_sequence >= ? AND first_sequence <= ? ORDER BY id",
        use(seq), use(seq), into(rows), now;
    std::vector<DeliveryRecord> out;
    for (const auto& r : rows)
      out.push_back(DeliveryRecord{r.get<0>(), r.get<1>(), r.get<2>(), r.get<3>(), r.get<4>()});
    return out;
  });
}

std::vector<DeadLetter> SqliteJournal::deadLetters(const std::optional<std::string>& sink) {
  return locked("listing dead letters", [&] {
    std::vector<DeadLetterRow> rows;
    const std::string select = std::string("SELECT ") + kDeadLetterColumns + " FROM dead_letters";
    if (sink) {
      session_ << select + " WHERE sink = ? ORDER BY id", useRef(*sink), into(rows), now;
    } else {
      session_ << select + " ORDER BY id", into(rows), now;
    }
    std::vector<DeadLetter> out;
    out.reserve(rows.size());
    for (const DeadLetterRow& row : rows) out.push_back(toDeadLetter(row));
    return out;
  });
}

int64_t SqliteJournal::requestReplay(const std::string& sink, const std::vector<int64_t>& ids) {
  return locked("requesting replay of dead letters of sink '" + sink + "'", [&] {
    Transaction tx(session_);
    const int64_t before = totalChanges();
    if (ids.empty()) {
      session_ << "UPDATE dead_letters SET replay_requested = 1 WHERE sink = ?", useRef(sink), now;
    } else {
      // The sink is part of the match: an id of another sink's dead letter is not replayed here.
      std::vector<std::string> sinks(ids.size(), sink);
      std::vector<Int64> id_values(ids.begin(), ids.end());
      session_ << "UPDATE dead_letters SET replay_requested = 1 WHERE sink = ? AND id = ?",
          use(sinks), use(id_values), now;
    }
    const int64_t marked = totalChanges() - before;
    tx.commit();
    return marked;
  });
}

std::vector<DeadLetter> SqliteJournal::pendingReplays(const std::string& sink, size_t limit) {
  return locked("reading pending replays of sink '" + sink + "'", [&] {
    std::vector<DeadLetter> out;
    if (limit == 0) return out;
    std::vector<DeadLetterRow> rows;
    Int64 limit_value = clampLimit(limit);
    session_ << std::string("SELECT ") + kDeadLetterColumns +
                    " FROM dead_letters WHERE sink = ? AND replay_requested = 1 "
                    "ORDER BY id LIMIT ?",
        useRef(sink), use(limit_value), into(rows), now;
    out.reserve(rows.size());
    for (const DeadLetterRow& row : rows) out.push_back(toDeadLetter(row));
    return out;
  });
}

void SqliteJournal::settleReplay(int64_t id, const std::optional<std::string>& new_reason) {
  locked("settling the replay of dead letter " + std::to_string(id), [&] {
    Int64 id_value = id;
    // An id that is already gone was settled before (e.g. by a run that crashed right after):
    // settling is idempotent, so there is nothing to report.
    if (new_reason) {
      session_ << "UPDATE dead_letters SET reason = ?, failed_at_ms = ?, replay_requested = 0 "
                  "WHERE id = ?",
          useRef(*new_reason), bind(static_cast<Int64>(nowMs())), use(id_value), now;
    } else {
      // The replay is a delivery like any other, so that `ferry trace` shows it as one.
      Transaction tx(session_);
      session_ << "INSERT INTO deliveries (sink, first_sequence, last_sequence, delivered_at_ms, "
                  "detail) SELECT sink, sequence, sequence, ?, 'replay of dead letter #' || id "
                  "FROM dead_letters WHERE id = ?",
          bind(static_cast<Int64>(nowMs())), use(id_value), now;
      session_ << "DELETE FROM dead_letters WHERE id = ?", use(id_value), now;
      tx.commit();
    }
  });
}

int64_t SqliteJournal::deliveredUpTo(const std::string& source) {
  return locked("reading delivered progress of '" + source + "'", [&] {
    Int64 sequence = 0;
    session_ << "SELECT ifnull((SELECT sequence FROM delivered_hooks WHERE source = ?), 0)",
        useRef(source), into(sequence), now;
    return static_cast<int64_t>(sequence);
  });
}

void SqliteJournal::setDeliveredUpTo(const std::string& source, int64_t sequence) {
  locked("recording delivered progress of '" + source + "'", [&] {
    Int64 sequence_value = sequence;
    session_ << "INSERT INTO delivered_hooks (source, sequence, updated_at_ms) VALUES (?, ?, ?) "
                "ON CONFLICT (source) DO UPDATE SET sequence = excluded.sequence, "
                "updated_at_ms = excluded.updated_at_ms",
        useRef(source), use(sequence_value), bind(static_cast<Int64>(nowMs())), now;
  });
}

std::vector<std::pair<std::string, int64_t>> SqliteJournal::deliveredProgress() {
  return locked("reading delivered progress", [&] {
    std::vector<Poco::Tuple<std::string, Int64>> rows;
    session_ << "SELECT source, sequence FROM delivered_hooks ORDER BY source", into(rows), now;
    std::vector<std::pair<std::string, int64_t>> out;
    out.reserve(rows.size());
    for (const auto& row : rows) out.emplace_back(row.get<0>(), row.get<1>());
    return out;
  });
}

std::vector<int64_t> SqliteJournal::deadLetteredBetween(int64_t after, int64_t up_to) {
  return locked("reading dead letters between " + std::to_string(after) + " and " +
                    std::to_string(up_to),
                [&] {
                  Int64 from = after, to = up_to;
                  std::vector<Int64> found;
                  session_ << "SELECT DISTINCT sequence FROM dead_letters WHERE sequence > ? AND "
                              "sequence <= ? ORDER BY sequence",
                      use(from), use(to), into(found), now;
                  return std::vector<int64_t>(found.begin(), found.end());
                });
}

// --- InstanceState: plugin state, instance status ------------------------------------------------

std::optional<std::string> SqliteJournal::stateGet(const std::string& instance,
                                                   const std::string& key) {
  return locked("reading state '" + key + "' of '" + instance + "'",
                [&]() -> std::optional<std::string> {
                  // A BLOB, not text: plugin state is bytes with a length and may hold NULs.
                  std::vector<Poco::Data::BLOB> values;
                  session_ << "SELECT value FROM plugin_state WHERE instance = ? AND key = ?",
                      useRef(instance), useRef(key), into(values), now;
                  if (values.empty()) return std::nullopt;
                  const Poco::Data::BLOB& blob = values[0];
                  if (blob.size() == 0) return std::string();
                  return std::string(reinterpret_cast<const char*>(blob.rawContent()), blob.size());
                });
}

void SqliteJournal::stateSet(const std::string& instance, const std::string& key,
                             const std::optional<std::string>& value) {
  locked("writing state '" + key + "' of '" + instance + "'", [&] {
    if (!value) {
      session_ << "DELETE FROM plugin_state WHERE instance = ? AND key = ?", useRef(instance),
          useRef(key), now;
      return;
    }
    Poco::Data::BLOB blob(reinterpret_cast<const unsigned char*>(value->data()), value->size());
    // Poco binds an empty BLOB as NULL; coalesce keeps "set to empty" distinct from "absent".
    session_ << "INSERT INTO plugin_state (instance, key, value, updated_at_ms) "
                "VALUES (?, ?, coalesce(?, X''), ?) ON CONFLICT (instance, key) DO UPDATE SET "
                "value = excluded.value, updated_at_ms = excluded.updated_at_ms",
        useRef(instance), useRef(key), use(blob), bind(static_cast<Int64>(nowMs())), now;
  });
}

void SqliteJournal::setStatus(const InstanceStatus& status) {
  locked("recording the status of '" + status.name + "'", [&] {
    Int64 updated = status.updated_at_ms, attempt = status.retry_attempt,
          next = status.next_attempt_at_ms;
    session_ << "INSERT INTO instance_status (name, kind, state, message, updated_at_ms, "
                "retry_attempt, next_attempt_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, state = excluded.state, "
                "message = excluded.message, updated_at_ms = excluded.updated_at_ms, "
                "retry_attempt = excluded.retry_attempt, "
                "next_attempt_at_ms = excluded.next_attempt_at_ms",
        useRef(status.name), useRef(status.kind), useRef(status.state), useRef(status.message),
        use(updated), use(attempt), use(next), now;
  });
}

std::vector<InstanceStatus> SqliteJournal::statuses() {
  return locked("reading statuses", [&] {
    std::vector<
        Poco::Tuple<std::string, std::string, std::string, std::string, Int64, Int64, Int64>>
        rows;
    session_ << "SELECT name, kind, state, message, updated_at_ms, retry_attempt, "
                "next_attempt_at_ms FROM instance_status ORDER BY name",
        into(rows), now;
    std::vector<InstanceStatus> out;
    out.reserve(rows.size());
    for (const auto& row : rows) {
      out.push_back({row.get<0>(), row.get<1>(), row.get<2>(), row.get<3>(), row.get<4>(),
                     row.get<5>(), row.get<6>()});
    }
    return out;
  });
}

// --- Controls: operators' requests, sink pauses, source origins, activity ------------------------

int64_t SqliteJournal::submitCommand(const std::string& action, const std::string& target,
                                     const std::string& argument) {
  return locked("storing the request " + action, [&] {
    Transaction tx(session_);
    session_ << "INSERT INTO commands (action, target, argument, requested_at_ms) "
                "VALUES (?, ?, ?, ?)",
        useRef(action), useRef(target), useRef(argument), bind(static_cast<Int64>(nowMs())), now;
    Int64 id = 0;
    session_ << "SELECT last_insert_rowid()", into(id), now;
    tx.commit();
    return static_cast<int64_t>(id);
  });
}

namespace {

using CommandRow = Poco::Tuple<Int64, std::string, std::string, std::string, std::string,
                               std::string, Int64>;
constexpr const char* kCommandColumns =
    "SELECT id, action, target, argument, state, result, requested_at_ms FROM commands ";

CommandRequest toCommand(const CommandRow& r) {
  return CommandRequest{r.get<0>(), r.get<1>(), r.get<2>(), r.get<3>(),
                        r.get<4>(), r.get<5>(), r.get<6>()};
}

}  // namespace

std::vector<CommandRequest> SqliteJournal::pendingCommands() {
  return locked("reading pending requests", [&] {
    std::vector<CommandRow> rows;
    session_ << std::string(kCommandColumns) + "WHERE state = 'pending' ORDER BY id", into(rows),
        now;
    std::vector<CommandRequest> out;
    for (const auto& r : rows) out.push_back(toCommand(r));
    return out;
  });
}

std::optional<CommandRequest> SqliteJournal::command(int64_t id) {
  return locked("reading request " + std::to_string(id), [&]() -> std::optional<CommandRequest> {
    std::vector<CommandRow> rows;
    Int64 id_value = id;
    session_ << std::string(kCommandColumns) + "WHERE id = ?", use(id_value), into(rows), now;
    if (rows.empty()) return std::nullopt;
    return toCommand(rows[0]);
  });
}

void SqliteJournal::finishCommand(int64_t id, bool ok, const std::string& result) {
  locked("answering request " + std::to_string(id), [&] {
    Int64 id_value = id;
    const std::string state = ok ? "done" : "failed";
    session_ << "UPDATE commands SET state = ?, result = ?, finished_at_ms = ? WHERE id = ?",
        useRef(state), useRef(result), bind(static_cast<Int64>(nowMs())), use(id_value), now;
  });
}

bool SqliteJournal::sinkPaused(const std::string& sink) {
  return locked("reading whether sink '" + sink + "' is paused", [&] {
    Int64 paused = 0;
    session_ << "SELECT ifnull((SELECT paused FROM sink_controls WHERE sink = ?), 0)",
        useRef(sink), into(paused), now;
    return paused != 0;
  });
}

void SqliteJournal::setSinkPaused(const std::string& sink, bool paused) {
  locked(std::string(paused ? "pausing" : "resuming") + " sink '" + sink + "'", [&] {
    Int64 value = paused ? 1 : 0;
    session_ << "INSERT INTO sink_controls (sink, paused, updated_at_ms) VALUES (?, ?, ?) "
                "ON CONFLICT (sink) DO UPDATE SET paused = excluded.paused, "
                "updated_at_ms = excluded.updated_at_ms",
        useRef(sink), use(value), bind(static_cast<Int64>(nowMs())), now;
  });
}

std::vector<std::string> SqliteJournal::knownSinks() {
  return locked("listing known sinks", [&] {
    std::vector<std::string> names;
    session_ << "SELECT sink FROM sink_offsets UNION SELECT sink FROM sink_controls ORDER BY 1",
        into(names), now;
    return names;
  });
}

void SqliteJournal::setSinkOffset(const std::string& sink, int64_t offset) {
  locked("moving sink '" + sink + "' to " + std::to_string(offset), [&] {
    Int64 offset_value = offset;
    session_ << "INSERT INTO sink_offsets (sink, sequence, updated_at_ms) VALUES (?, ?, ?) "
                "ON CONFLICT (sink) DO UPDATE SET sequence = excluded.sequence, "
                "updated_at_ms = excluded.updated_at_ms",
        useRef(sink), use(offset_value), bind(static_cast<Int64>(nowMs())), now;
  });
}

void SqliteJournal::forgetSink(const std::string& sink) {
  locked("forgetting sink '" + sink + "'", [&] {
    Transaction tx(session_);
    session_ << "DELETE FROM sink_offsets WHERE sink = ?", useRef(sink), now;
    session_ << "DELETE FROM sink_controls WHERE sink = ?", useRef(sink), now;
    session_ << "DELETE FROM instance_activity WHERE name = ? AND kind = 'sink'", useRef(sink), now;
    tx.commit();
  });
}

int64_t SqliteJournal::oldestSequence() {
  return locked("reading the oldest retained event", [&] {
    Int64 first = 0;
    session_ << "SELECT ifnull(min(sequence), 0) FROM events", into(first), now;
    return static_cast<int64_t>(first);
  });
}

int64_t SqliteJournal::firstSequenceFetchedFrom(int64_t fetched_at_ms) {
  return locked("finding the first event fetched from an instant", [&] {
    Int64 from = fetched_at_ms, first = 0;
    // In sequence order, stopping at the first match: fetch times grow with sequences, so this
    // reads only the events before the instant, and needs no index on the hot insert path.
    session_ << "SELECT ifnull((SELECT sequence FROM events WHERE fetched_at_ms >= ? "
                "ORDER BY sequence LIMIT 1), 0)",
        use(from), into(first), now;
    return static_cast<int64_t>(first);
  });
}

std::optional<int64_t> SqliteJournal::fetchedAt(int64_t sequence) {
  return locked("reading event " + std::to_string(sequence), [&]() -> std::optional<int64_t> {
    Int64 seq = sequence;
    std::vector<Int64> at;
    session_ << "SELECT fetched_at_ms FROM events WHERE sequence = ?", use(seq), into(at), now;
    if (at.empty()) return std::nullopt;
    return at[0];
  });
}

int64_t SqliteJournal::dropDeadLetters(const std::vector<int64_t>& ids) {
  return locked("dropping dead letters", [&] {
    Transaction tx(session_);
    const int64_t dropped = deleteIds("dead_letters", ids);
    tx.commit();
    return dropped;
  });
}

int64_t SqliteJournal::deleteIds(const std::string& table, const std::vector<int64_t>& ids) {
  const int64_t before = totalChanges();
  for (int64_t id : ids) {
    Int64 id_value = id;
    session_ << "DELETE FROM " + table + " WHERE id = ?", use(id_value), now;
  }
  return totalChanges() - before;
}

bool SqliteJournal::setAsideKnown(const std::string& source, const std::string& fingerprint) {
  return locked("looking up a set-aside item of '" + source + "'", [&] {
    Query q(Poco::Data::SQLite::Utility::dbHandle(session_),
            "SELECT 1 FROM source_dead_letters WHERE source = ? AND fingerprint = ?");
    bindText(q.get(), 1, source);
    bindText(q.get(), 2, fingerprint);
    return q.next();
  });
}

std::vector<SourceDeadLetter> SqliteJournal::sourceDeadLetters(
    const std::optional<std::string>& source) {
  return locked("listing source dead letters", [&] {
    std::string sql =
        "SELECT id, source, fingerprint, entity, key, version, raw, reason, since_ms, "
        "set_aside_at_ms FROM source_dead_letters";
    sql += source ? " WHERE source = ? ORDER BY id" : " ORDER BY id";
    Query q(Poco::Data::SQLite::Utility::dbHandle(session_), sql.c_str());
    if (source) bindText(q.get(), 1, *source);
    std::vector<SourceDeadLetter> out;
    while (q.next()) {
      sqlite3_stmt* s = q.get();
      SourceDeadLetter& d = out.emplace_back();
      d.id = sqlite3_column_int64(s, 0);
      d.source = columnText(s, 1);
      d.item.fingerprint = columnText(s, 2);
      d.item.entity = columnBlob(s, 3);
      d.item.key = columnBlob(s, 4);
      d.item.version = columnBlob(s, 5);
      d.item.raw = columnBlob(s, 6);
      d.item.reason = columnText(s, 7);
      d.item.since_ms = sqlite3_column_int64(s, 8);
      d.set_aside_at_ms = sqlite3_column_int64(s, 9);
    }
    return out;
  });
}

int64_t SqliteJournal::replaySetAside(const std::string& source, const std::vector<int64_t>& ids) {
  return locked("replaying source dead letters of '" + source + "'", [&]() -> int64_t {
    sqlite3* db = Poco::Data::SQLite::Utility::dbHandle(session_);
    Transaction tx(session_);
    std::vector<int64_t> chosen;
    int64_t since_ms = INT64_MAX;
    {
      Query q(db, "SELECT id, since_ms FROM source_dead_letters WHERE source = ? ORDER BY id");
      bindText(q.get(), 1, source);
      while (q.next()) {
        const int64_t id = sqlite3_column_int64(q.get(), 0);
        if (!ids.empty() && std::find(ids.begin(), ids.end(), id) == ids.end()) continue;
        chosen.push_back(id);
        since_ms = std::min<int64_t>(since_ms, sqlite3_column_int64(q.get(), 1));
      }
    }
    if (chosen.empty()) return 0;
    deleteIds("source_dead_letters", chosen);
    // Only ever back: a cursor already before the items reads them anyway.
    std::vector<Int64> current;
    session_ << "SELECT since_ns FROM cursors WHERE source = ?", useRef(source), into(current),
        now;
    const int64_t since_ns = since_ms * 1000000;
    if (current.empty() || current[0] > since_ns)
      upsertCursor(source, Cursor{formatInstantMs(since_ns), since_ns, 0}, nowMs());
    tx.commit();
    return static_cast<int64_t>(chosen.size());
  });
}

int64_t SqliteJournal::dropSetAside(const std::vector<int64_t>& ids) {
  return locked("dropping source dead letters", [&] {
    Transaction tx(session_);
    const int64_t dropped = deleteIds("source_dead_letters", ids);
    tx.commit();
    return dropped;
  });
}

std::optional<std::string> SqliteJournal::sourceOrigin(const std::string& source) {
  return locked("reading the origin of source '" + source + "'",
                [&]() -> std::optional<std::string> {
                  std::vector<std::string> from;
                  session_ << "SELECT start_from FROM source_origins WHERE source = ?",
                      useRef(source), into(from), now;
                  if (from.empty()) return std::nullopt;
                  return from[0];
                });
}

void SqliteJournal::setSourceOrigin(const std::string& source, const std::string& start_from) {
  setSourceOrigins({{source, start_from}});
}

void SqliteJournal::setSourceOrigins(
    const std::vector<std::pair<std::string, std::string>>& origins) {
  if (origins.empty()) return;
  locked(origins.size() == 1
             ? "recording the origin of source '" + origins[0].first + "'"
             : "recording the origins of " + std::to_string(origins.size()) + " sources",
         [&] {
           Transaction tx(session_);
           const Int64 at = nowMs();
           for (const auto& [source, start_from] : origins)
             session_ << "INSERT INTO source_origins (source, start_from, updated_at_ms) "
                         "VALUES (?, ?, ?) ON CONFLICT (source) DO UPDATE SET "
                         "start_from = excluded.start_from, updated_at_ms = excluded.updated_at_ms",
                 useRef(source), useRef(start_from), bind(at), now;
           tx.commit();
         });
}

void SqliteJournal::recordActivity(const InstanceActivity& a) {
  locked("recording the activity of '" + a.name + "'", [&] {
    Int64 attempt = a.last_attempt_ms, success = a.last_success_ms, total = a.events_total;
    session_ << "INSERT INTO instance_activity (name, kind, last_attempt_ms, last_success_ms, "
                "events_total, progress, updated_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, "
                "last_attempt_ms = excluded.last_attempt_ms, "
                "last_success_ms = excluded.last_success_ms, "
                "events_total = excluded.events_total, progress = excluded.progress, "
                "updated_at_ms = excluded.updated_at_ms",
        useRef(a.name), useRef(a.kind), use(attempt), use(success), use(total),
        useRef(a.progress), bind(static_cast<Int64>(nowMs())), now;
  });
}

std::vector<InstanceActivity> SqliteJournal::activities() {
  return locked("reading activity", [&] {
    std::vector<Poco::Tuple<std::string, std::string, Int64, Int64, Int64, std::string>> rows;
    session_ << "SELECT name, kind, last_attempt_ms, last_success_ms, events_total, progress "
                "FROM instance_activity ORDER BY name",
        into(rows), now;
    std::vector<InstanceActivity> out;
    for (const auto& r : rows)
      out.push_back({r.get<0>(), r.get<1>(), r.get<2>(), r.get<3>(), r.get<4>(), r.get<5>()});
    return out;
  });
}

std::unique_ptr<Journal> openSqliteJournal(const std::string& path) {
  if (path.empty())
    throw JournalError("journal: no path given (set the journal file in the config)");
  // SQLite would create the file but not its directory, and its "unable to open database file"
  // does not say why; a missing directory is an operator's mistake worth naming exactly.
  const std::filesystem::path dir = std::filesystem::path(path).parent_path();
  std::error_code ec;
  if (!dir.empty() && !std::filesystem::is_directory(dir, ec)) {
    throw JournalError("journal " + path + ": directory " + dir.string() +
                       " does not exist; create it (ferry does not create the journal's "
                       "directory) or point the journal elsewhere");
  }
  // SQLite takes an empty file for an empty database, and ferry would take that for a new
  // journal: fetch and deliver everything again. A truncated journal is a loss to look at.
  if (std::filesystem::is_regular_file(path, ec) && std::filesystem::file_size(path, ec) == 0 &&
      !ec)
    throw JournalError("journal " + path +
                       ": the file is empty, so it is no journal (a lost or truncated one?); "
                       "restore it from a backup, or remove the file to start a new journal "
                       "(every source then starts again from its start_from, and the sinks "
                       "write what they get under the new journal's identity)");
  return std::make_unique<SqliteJournal>(path);
}

}  // namespace ferry::core
