#include "journal/PostgresJournal.h"

#include <Poco/URI.h>
#include <libpq-fe.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <deque>
#include <limits>
#include <map>
#include <stdexcept>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>

#include "services/Text.h"
#include "services/Time.h"

namespace ferry::core {
namespace {

// PostgreSQL type OIDs of the parameters the journal binds.
constexpr unsigned kBool = 16, kBytea = 17, kInt8 = 20, kText = 25;

// The advisory locks of one journal: (class, key), the key being the database and schema the
// journal lives in, so that journals in two schemas of one database are two journals. kOwnerClass
// is held by the owning ferry for its whole life (session level); kMigrateClass by whoever creates
// or migrates the schema, for that transaction only.
constexpr const char* kOwnerClass = "1178944089";
constexpr const char* kMigrateClass = "1178944090";
constexpr const char* kJournalKey =
    "(hashtext(current_database() || '/' || current_schema()) & 2147483647)";
// kOwnerClass's key: one lock per host_id of the journal, so that one ferry runs per host_id while
// any number of host_ids share the journal. `$1` is the host_id.
constexpr const char* kHostKey =
    "(hashtext(current_database() || '/' || current_schema() || '/' || $1) & 2147483647)";
// The same key, of the host_id in a connection's application_name ("ferry/<host_id>/<pid>").
constexpr const char* kHostKeyOfConnection =
    "(hashtext(current_database() || '/' || current_schema() || '/' || "
    "split_part(a.application_name, '/', 2)) & 2147483647)";
// PostgreSQL's clock in milliseconds: every lease and heartbeat time is on it, so that the hosts'
// clocks never have to agree.
constexpr const char* kDbNowMs = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

// Events purged per transaction (purge() runs in chunks of this many).
constexpr int64_t kPurgeChunk = 10000;

// Each step takes the schema from version i to i + 1; a later release appends steps and never
// edits a published one. The tables are those of the SQLite journal (SqliteJournal.cpp explains
// each), with two differences:
// - the sequence comes from event_sequence, a single row updated in the commit's transaction, not
//   from a bigserial: see commit();
// - latest_versions holds the latest version of every key (PostgreSQL answers a page's keys in
//   one indexed query, and several hosts will write it), where SQLite keeps an in-memory index.
// ferry_journal (one row: schema version, identity) is created first, in the same transaction.
// Text is ordered with COLLATE "C" wherever the API promises an order by name: byte order, as
// SQLite, whatever the database's collation.
const std::vector<std::vector<const char*>> kMigrations = {
    {
        R"(CREATE TABLE event_sequence (
             only_row boolean PRIMARY KEY DEFAULT true CHECK (only_row),
             last bigint NOT NULL CHECK (last >= 0)))",
        "INSERT INTO event_sequence (last) VALUES (0)",
        R"(CREATE TABLE events (
             sequence bigint PRIMARY KEY,
             source text NOT NULL CHECK (source <> ''),
             entity text NOT NULL CHECK (entity <> ''),
             key text NOT NULL CHECK (key <> ''),
             version text NOT NULL CHECK (version <> ''),
             previous text NOT NULL,
             body text NOT NULL,
             echo boolean NOT NULL,
             fetched_at_ms bigint NOT NULL,
             meta text NOT NULL DEFAULT ''))",
        "CREATE INDEX events_source_sequence ON events (source, sequence)",
        R"(CREATE TABLE latest_versions (
             source text NOT NULL,
             entity text NOT NULL,
             key text NOT NULL,
             version text NOT NULL,
             version_ns bigint NOT NULL,
             PRIMARY KEY (source, entity, key)))",
        R"(CREATE TABLE cursors (
             source text PRIMARY KEY,
             since text NOT NULL,
             since_ns bigint NOT NULL,
             since_offset bigint NOT NULL CHECK (since_offset >= 0),
             updated_at_ms bigint NOT NULL))",
        R"(CREATE TABLE sink_offsets (
             sink text PRIMARY KEY,
             sequence bigint NOT NULL,
             updated_at_ms bigint NOT NULL))",
        R"(CREATE TABLE deliveries (
             id bigserial PRIMARY KEY,
             sink text NOT NULL,
             first_sequence bigint NOT NULL,
             last_sequence bigint NOT NULL,
             delivered_at_ms bigint NOT NULL,
             detail text NOT NULL))",
        "CREATE INDEX deliveries_last_sequence ON deliveries (last_sequence, first_sequence)",
        R"(CREATE TABLE dead_letters (
             id bigserial PRIMARY KEY,
             sink text NOT NULL,
             sequence bigint NOT NULL,
             source text NOT NULL,
             entity text NOT NULL,
             key text NOT NULL,
             version text NOT NULL,
             previous text NOT NULL,
             body text NOT NULL,
             echo boolean NOT NULL,
             fetched_at_ms bigint NOT NULL,
             reason text NOT NULL,
             failed_at_ms bigint NOT NULL,
             replay_requested boolean NOT NULL DEFAULT false,
             meta text NOT NULL DEFAULT '',
             UNIQUE (sink, sequence)))",
        "CREATE INDEX dead_letters_sequence ON dead_letters (sequence)",
        R"(CREATE TABLE delivered_hooks (
             source text PRIMARY KEY,
             sequence bigint NOT NULL,
             updated_at_ms bigint NOT NULL))",
        R"(CREATE TABLE plugin_state (
             instance text NOT NULL,
             key text NOT NULL,
             value bytea NOT NULL,
             updated_at_ms bigint NOT NULL,
             PRIMARY KEY (instance, key)))",
        R"(CREATE TABLE instance_status (
             name text PRIMARY KEY,
             kind text NOT NULL,
             state text NOT NULL,
             message text NOT NULL,
             updated_at_ms bigint NOT NULL,
             retry_attempt bigint NOT NULL,
             next_attempt_at_ms bigint NOT NULL))",
        R"(CREATE TABLE commands (
             id bigserial PRIMARY KEY,
             action text NOT NULL,
             target text NOT NULL,
             argument text NOT NULL,
             state text NOT NULL DEFAULT 'pending',
             result text NOT NULL DEFAULT '',
             requested_at_ms bigint NOT NULL,
             finished_at_ms bigint NOT NULL DEFAULT 0))",
        "CREATE INDEX commands_state ON commands (state, id)",
        R"(CREATE TABLE sink_controls (
             sink text PRIMARY KEY,
             paused boolean NOT NULL,
             updated_at_ms bigint NOT NULL))",
        R"(CREATE TABLE source_origins (
             source text PRIMARY KEY,
             start_from text NOT NULL,
             updated_at_ms bigint NOT NULL))",
        R"(CREATE TABLE instance_activity (
             name text PRIMARY KEY,
             kind text NOT NULL,
             last_attempt_ms bigint NOT NULL,
             last_success_ms bigint NOT NULL,
             events_total bigint NOT NULL,
             progress text NOT NULL,
             updated_at_ms bigint NOT NULL))",
    },
    {
        // Schema 2. Source dead letters: items a source could not read, set aside (EventLog.h).
        // bytea: a key set aside for its NUL byte keeps it.
        R"(CREATE TABLE source_dead_letters (
             id bigserial PRIMARY KEY,
             source text NOT NULL,
             fingerprint text NOT NULL,
             entity bytea NOT NULL,
             key bytea NOT NULL,
             version bytea NOT NULL,
             raw bytea NOT NULL,
             reason text NOT NULL,
             since_ms bigint NOT NULL,
             set_aside_at_ms bigint NOT NULL,
             UNIQUE (source, fingerprint)))",
    },
    {
        // Schema 3. Several hosts: each live host's heartbeat, and one lease per lease group
        // (LeaseKeeper.h). Times are PostgreSQL's clock in ms.
        R"(CREATE TABLE hosts (
             host_id text PRIMARY KEY,
             application text NOT NULL,
             started_at_ms bigint NOT NULL,
             heartbeat_at_ms bigint NOT NULL,
             expires_at_ms bigint NOT NULL))",
        R"(CREATE TABLE leases (
             lease_group text PRIMARY KEY,
             members text[] NOT NULL,
             owner text,
             token bigint NOT NULL DEFAULT 0,
             expires_at_ms bigint NOT NULL DEFAULT 0,
             changed_at_ms bigint NOT NULL DEFAULT 0))",
    },
};
static_assert(PostgresJournal::kSchemaVersion == 3, "add a migration step with the version bump");

constexpr const char* kEventColumns =
    "sequence, source, entity, key, version, previous, body, echo, fetched_at_ms, meta";
constexpr const char* kDeadLetterColumns =
    "id, sink, sequence, source, entity, key, version, previous, body, echo, fetched_at_ms, "
    "reason, failed_at_ms, replay_requested, meta";

// Parameters of one statement. Text and bytes are sent in binary format with their length (the
// binary form of text is its bytes), so they need no terminating NUL and are never copied; the
// caller's data outlives the statement. Numbers and array literals are sent as text.
class Params {
 public:
  Params& text(std::string_view s) { return add(s.data(), s.size(), 1, kText); }
  Params& bytes(std::string_view s) { return add(s.data(), s.size(), 1, kBytea); }
  Params& integer(int64_t v) {
    owned_.push_back(std::to_string(v));
    return add(owned_.back().c_str(), 0, 0, kInt8);
  }
  Params& boolean(bool v) { return add(v ? "true" : "false", 0, 0, kBool); }
  // A text[] literal: {"a","b"}; the statement casts it ($n::text[]).
  Params& textArray(const std::vector<std::string_view>& items) {
    std::string literal = "{";
    for (size_t i = 0; i < items.size(); ++i) {
      literal += i == 0 ? "\"" : ",\"";
      for (char c : items[i]) {
        if (c == '"' || c == '\\') literal += '\\';
        literal += c;
      }
      literal += '"';
    }
    owned_.push_back(literal + "}");
    return add(owned_.back().c_str(), 0, 0, 0);
  }
  Params& integerArray(const std::vector<int64_t>& items) {
    std::string literal = "{";
    for (size_t i = 0; i < items.size(); ++i)
      literal += (i == 0 ? "" : ",") + std::to_string(items[i]);
    owned_.push_back(literal + "}");
    return add(owned_.back().c_str(), 0, 0, 0);
  }

  int count() const { return static_cast<int>(values_.size()); }
  const unsigned* types() const { return types_.data(); }
  const char* const* values() const { return values_.data(); }
  const int* lengths() const { return lengths_.data(); }
  const int* formats() const { return formats_.data(); }

 private:
  Params& add(const char* value, size_t length, int format, unsigned type) {
    if (length > static_cast<size_t>(std::numeric_limits<int>::max()))
      throw std::length_error("a value of " + std::to_string(length) + " bytes is too long");
    // libpq takes a null pointer for SQL NULL: an empty value needs a non-null one.
    values_.push_back(value != nullptr ? value : "");
    lengths_.push_back(static_cast<int>(length));
    formats_.push_back(format);
    types_.push_back(type);
    return *this;
  }

  std::deque<std::string> owned_;  // a deque: pointers into it stay valid as it grows
  std::vector<const char*> values_;
  std::vector<int> lengths_, formats_;
  std::vector<unsigned> types_;
};

// libpq's messages end with a line break and may span lines: one line.
std::string oneLine(const char* message) {
  std::string out = message != nullptr ? message : "";
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  std::replace(out.begin(), out.end(), '\n', ' ');
  return out;
}

// A statement's result, freed however the caller leaves.
class Result {
 public:
  explicit Result(PGresult* r) : r_(r) {}
  ~Result() { PQclear(r_); }
  Result(Result&& other) noexcept : r_(std::exchange(other.r_, nullptr)) {}
  Result(const Result&) = delete;
  Result& operator=(const Result&) = delete;

  int rows() const { return PQntuples(r_); }
  bool null(int row, int col) const { return PQgetisnull(r_, row, col) != 0; }
  std::string text(int row, int col) const {
    return std::string(PQgetvalue(r_, row, col), static_cast<size_t>(PQgetlength(r_, row, col)));
  }
  int64_t integer(int row, int col) const {
    return std::strtoll(PQgetvalue(r_, row, col), nullptr, 10);
  }
  bool boolean(int row, int col) const { return PQgetvalue(r_, row, col)[0] == 't'; }
  // A bytea column read as text ("\\x" and hex digits): its bytes.
  std::string bytes(int row, int col) const {
    const std::string hex = text(row, col);
    std::string out;
    for (size_t i = 2; i + 1 < hex.size(); i += 2)
      out += static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
    return out;
  }
  // Rows a command changed (INSERT, UPDATE, DELETE).
  int64_t changed() const { return std::strtoll(PQcmdTuples(r_), nullptr, 10); }
  // Throws the server's message unless the statement succeeded.
  const Result& check() const {
    const ExecStatusType status = r_ == nullptr ? PGRES_FATAL_ERROR : PQresultStatus(r_);
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return *this;
    throw std::runtime_error(r_ == nullptr ? "out of memory" : oneLine(PQresultErrorMessage(r_)));
  }

 private:
  PGresult* r_;
};

JournalEvent toEvent(const Result& r, int row, int col = 0) {
  JournalEvent e;
  e.sequence = r.integer(row, col + 0);
  e.source = r.text(row, col + 1);
  e.entity = r.text(row, col + 2);
  e.key = r.text(row, col + 3);
  e.version = r.text(row, col + 4);
  e.previous = r.text(row, col + 5);
  e.body = r.text(row, col + 6);
  e.echo = r.boolean(row, col + 7);
  e.fetched_at_ms = r.integer(row, col + 8);
  e.meta = r.text(row, col + 9);
  return e;
}

DeadLetter toDeadLetter(const Result& r, int row) {
  DeadLetter d;
  d.id = r.integer(row, 0);
  d.sink = r.text(row, 1);
  d.event.sequence = r.integer(row, 2);
  d.event.source = r.text(row, 3);
  d.event.entity = r.text(row, 4);
  d.event.key = r.text(row, 5);
  d.event.version = r.text(row, 6);
  d.event.previous = r.text(row, 7);
  d.event.body = r.text(row, 8);
  d.event.echo = r.boolean(row, 9);
  d.event.fetched_at_ms = r.integer(row, 10);
  d.reason = r.text(row, 11);
  d.failed_at_ms = r.integer(row, 12);
  d.replay_requested = r.boolean(row, 13);
  d.event.meta = r.text(row, 14);
  return d;
}

int64_t clampLimit(size_t limit) {
  return limit > static_cast<size_t>(std::numeric_limits<int64_t>::max())
             ? std::numeric_limits<int64_t>::max()
             : static_cast<int64_t>(limit);
}

// The user-info and password of the URL, decoded too: what messages are redacted of.
std::vector<std::string> secretsOf(const std::string& url) {
  std::vector<std::string> out;
  const size_t start = url.find("://");
  if (start == std::string::npos) return out;
  const size_t end = url.find_first_of("/?#", start + 3);
  const std::string authority =
      url.substr(start + 3, end == std::string::npos ? std::string::npos : end - start - 3);
  const size_t at = authority.rfind('@');
  const size_t colon = authority.find(':');
  if (at == std::string::npos || colon == std::string::npos || colon > at) return out;
  const std::string password = authority.substr(colon + 1, at - colon - 1);
  if (password.empty()) return out;
  std::string decoded;
  Poco::URI::decode(password, decoded);
  return {authority.substr(0, at), password, decoded};
}

std::vector<std::string> splitLines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = std::min(text.find('\n', start), text.size());
    out.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

std::string applicationName(const std::string& host_id) {
  // PostgreSQL keeps 63 bytes of it; the PID goes last and must survive.
  const std::string pid = std::to_string(::getpid());
  return "ferry/" + host_id.substr(0, 63 - 7 - pid.size()) + "/" + pid;
}

}  // namespace

// --- the connection ------------------------------------------------------------------------------

class PostgresJournal::Connection {
 public:
  Connection(const std::string& url, const std::string& application_name) {
    // The URL is expanded by libpq (expand_dbname); what follows it overrides it. Keepalives: a
    // PostgreSQL host that vanished is noticed within about a minute, not after TCP's hours.
    const char* keys[] = {"dbname",
                          "application_name",
                          "connect_timeout",
                          "keepalives_idle",
                          "keepalives_interval",
                          "keepalives_count",
                          nullptr};
    const char* values[] = {url.c_str(), application_name.c_str(), "10", "30", "10", "3", nullptr};
    conn_ = PQconnectdbParams(keys, values, 1);
    if (conn_ == nullptr) throw std::runtime_error("out of memory");
  }
  ~Connection() { PQfinish(conn_); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  bool ok() const { return PQstatus(conn_) == CONNECTION_OK; }
  bool idle() const { return PQtransactionStatus(conn_) == PQTRANS_IDLE; }
  void reset() { PQreset(conn_); }
  std::string error() const { return oneLine(PQerrorMessage(conn_)); }

  Result exec(const std::string& sql, const Params& params = Params(), bool binary = false) {
    Result r(PQexecParams(conn_, sql.c_str(), params.count(), params.types(), params.values(),
                          params.lengths(), params.formats(), binary ? 1 : 0));
    r.check();
    return r;
  }
  // Statements without parameters, separated by ';' (migrations, BEGIN, COMMIT).
  void run(const std::string& sql) { Result(PQexec(conn_, sql.c_str())).check(); }

 private:
  PGconn* conn_ = nullptr;
};

namespace {

// BEGIN … COMMIT on the journal's connection; rolls back unless commit() was reached.
class Transaction {
 public:
  explicit Transaction(PostgresJournal::Connection& db) : db_(db) { db_.run("BEGIN"); }
  ~Transaction() {
    if (done_) return;
    try {
      db_.run("ROLLBACK");
    } catch (...) {
      // The connection is gone: PostgreSQL rolled back already.
    }
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  void commit() {
    db_.run("COMMIT");
    done_ = true;
  }

 private:
  PostgresJournal::Connection& db_;
  bool done_ = false;
};

constexpr const char* kOpenHint =
    " (check the URL in [host] journal, that PostgreSQL runs and accepts this user, and that the "
    "user may create tables in the database: see \"Running on PostgreSQL\" in the README)";

}  // namespace

PostgresJournal::PostgresJournal(const std::string& url, const std::string& host_id)
    : url_(url), display_(journalDisplayName(url)), secrets_(secretsOf(url)), host_id_(host_id) {
  try {
    connect();
    migrate();
    Result r = db_->exec("SELECT identity FROM ferry_journal");
    identity_ = r.text(0, 0);
  } catch (const JournalError&) {
    throw;
  } catch (const std::exception& e) {
    throw JournalError(describe("cannot open", e.what() + std::string(kOpenHint)));
  }
}

PostgresJournal::~PostgresJournal() = default;

std::string PostgresJournal::describe(const std::string& action, const std::string& cause) const {
  return "journal " + display_ + ": " + action + ": " + redact(cause, secrets_);
}

void PostgresJournal::connect() {
  if (!db_) {
    db_ = std::make_unique<Connection>(url_, applicationName(host_id_));
  } else {
    db_->reset();
  }
  if (!db_->ok()) throw std::runtime_error("cannot connect to PostgreSQL: " + db_->error());
  // The journal's text is UTF-8 whatever the database's default; times are the client's own.
  db_->run("SET client_encoding = 'UTF8'");
  holds_lock_ = false;  // a new session holds no lock: fence() takes the owner's again
}

void PostgresJournal::migrate() {
  Transaction tx(*db_);
  // Two ferries starting on a new database: one creates the schema, the other waits, then sees it.
  db_->run(std::string("SELECT pg_advisory_xact_lock(") + kMigrateClass + ", " + kJournalKey + ")");
  Result ours = db_->exec(
      "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() "
      "AND table_name = 'ferry_journal'");
  int64_t version = 0;
  if (ours.integer(0, 0) == 0) {
    // No journal yet. Tables without ours: another program's database, which must never be taken
    // for a new (empty) journal.
    Result tables = db_->exec(
        "SELECT count(*), current_schema() FROM information_schema.tables "
        "WHERE table_schema = current_schema()");
    if (tables.null(0, 1))
      throw std::runtime_error(
          "no schema to create the journal in (the search_path names none that exists)");
    if (tables.integer(0, 0) > 0)
      throw JournalError(describe(
          "cannot open", "schema " + tables.text(0, 1) + " of this database has " +
                             tables.text(0, 0) +
                             " table(s) but no ferry journal (no table ferry_journal): it belongs "
                             "to another program; point [host] journal at an empty database (or "
                             "schema) of its own"));
    db_->run(
        "CREATE TABLE ferry_journal (schema_version integer NOT NULL, identity text NOT NULL, "
        "created_at_ms bigint NOT NULL)");
    // Journal::identity: the creation time and 64 random bits.
    db_->exec(
        "INSERT INTO ferry_journal (schema_version, identity, created_at_ms) VALUES (0, "
        "to_char(now() AT TIME ZONE 'UTC', 'YYYYMMDD\"T\"HH24MISS\"Z\"') || '-' || "
        "substr(md5(random()::text || clock_timestamp()::text || pg_backend_pid()::text), 1, 16), "
        "$1)",
        Params().integer(nowMs()));
  } else {
    version = db_->exec("SELECT schema_version FROM ferry_journal").integer(0, 0);
  }
  if (version > kSchemaVersion)
    throw JournalError(describe("cannot open", "its schema version is " + std::to_string(version) +
                                                   " but this ferry understands up to " +
                                                   std::to_string(kSchemaVersion) +
                                                   "; run a newer ferry on it"));
  if (version == kSchemaVersion) return;  // the transaction rolls back: nothing was changed
  for (; version < kSchemaVersion; ++version)
    for (const char* sql : kMigrations.at(static_cast<size_t>(version))) db_->run(sql);
  db_->exec("UPDATE ferry_journal SET schema_version = $1", Params().integer(kSchemaVersion));
  tx.commit();
}

int64_t PostgresJournal::schemaVersion() {
  return locked("reading the schema version", [&] {
    return db_->exec("SELECT schema_version FROM ferry_journal").integer(0, 0);
  });
}

bool PostgresJournal::exists(const std::string& url) {
  const std::string display = journalDisplayName(url);
  Connection db(url, applicationName("probe"));
  if (!db.ok())
    throw JournalError("journal " + display + ": cannot connect to PostgreSQL: " +
                       redact(db.error(), secretsOf(url)) + kOpenHint);
  try {
    return db.exec(
                 "SELECT count(*) FROM information_schema.tables WHERE table_schema = "
                 "current_schema() AND table_name = 'ferry_journal'")
               .integer(0, 0) > 0;
  } catch (const std::exception& e) {
    throw JournalError("journal " + display + ": " + redact(e.what(), secretsOf(url)));
  }
}

std::optional<std::string> PostgresJournal::ownerOf(const std::string& url,
                                                    const std::string& host_id) {
  const std::string display = journalDisplayName(url);
  Connection db(url, applicationName("probe"));
  if (!db.ok())
    throw JournalError("journal " + display + ": cannot connect to PostgreSQL: " +
                       redact(db.error(), secretsOf(url)) + kOpenHint);
  try {
    // The connections holding a host's lock of this journal: their application_name names the
    // host_id the lock is for.
    Result r = db.exec(std::string("SELECT coalesce(a.application_name, '') FROM pg_locks l "
                                   "JOIN pg_stat_activity a ON a.pid = l.pid "
                                   "WHERE l.locktype = 'advisory' AND l.granted AND "
                                   "l.objsubid = 2 AND l.classid = ") +
                           kOwnerClass + "::oid AND l.objid = " + kHostKeyOfConnection +
                           "::bigint::oid AND ($1 = '' OR split_part(a.application_name, '/', 2) "
                           "= $1) ORDER BY 1",
                       Params().text(host_id));
    if (r.rows() == 0) return std::nullopt;
    return r.text(0, 0);
  } catch (const std::exception& e) {
    throw JournalError("journal " + display + ": " + redact(e.what(), secretsOf(url)));
  }
}

std::optional<std::string> PostgresJournal::own() {
  const bool taken = locked("taking the ownership", [&] {
    return db_
        ->exec(std::string("SELECT pg_try_advisory_lock(") + kOwnerClass + ", " + kHostKey + ")",
               Params().text(host_id_))
        .boolean(0, 0);
  });
  if (taken) {
    owner_ = true;
    holds_lock_ = true;
    return std::nullopt;
  }
  // Read on another connection: this one does not hold the lock, so pg_locks shows the holder.
  return ownerOf(url_, host_id_).value_or("unknown (it just stopped?)");
}

template <typename Body>
auto PostgresJournal::locked(const std::string& action, Body&& body) -> decltype(body()) {
  std::lock_guard<std::mutex> lock(mutex_);
  try {
    // A connection lost since the last call (PostgreSQL restarted, failed over, the network) is
    // made again here; until PostgreSQL answers, every call fails and the runners retry.
    if (!db_->ok()) connect();
    if (!db_->idle()) db_->run("ROLLBACK");  // a transaction a failure left open
    return body();
  } catch (const JournalError&) {
    throw;
  } catch (const std::exception& e) {
    throw JournalError(describe(action, e.what()));
  }
}

template <typename Body>
auto PostgresJournal::reading(const std::string& action, Body&& body) -> decltype(body()) {
  std::lock_guard<std::mutex> lock(reader_mutex_);
  try {
    if (!reader_) {
      reader_ = std::make_unique<Connection>(url_, applicationName(host_id_));
    } else if (!reader_->ok()) {
      reader_->reset();
    }
    if (!reader_->ok())
      throw std::runtime_error("cannot connect to PostgreSQL: " + reader_->error());
    return body();
  } catch (const JournalError&) {
    throw;
  } catch (const std::exception& e) {
    throw JournalError(describe(action, e.what()));
  }
}

template <typename Body>
auto PostgresJournal::write(const std::string& action, const std::string& instance, Body&& body)
    -> decltype(body()) {
  return locked(action, [&] {
    Transaction tx(*db_);
    fence(instance);
    if constexpr (std::is_void_v<decltype(body())>) {
      body();
      tx.commit();
    } else {
      auto result = body();
      tx.commit();
      return result;
    }
  });
}

void PostgresJournal::fence(const std::string& instance) {
  // The host's lock lives as long as its session: after a reconnect it is taken again before
  // the first write.
  if (owner_ && !holds_lock_) {
    Result r = db_->exec(
        std::string("SELECT pg_try_advisory_lock(") + kOwnerClass + ", " + kHostKey + ")",
        Params().text(host_id_));
    if (!r.boolean(0, 0))
      throw JournalError(describe(
          "writing", "another ferry (" + ownerOf(url_, host_id_).value_or("unknown") +
                         ") with host_id " + host_id_ +
                         " started while this one's connection to PostgreSQL was down; this "
                         "ferry writes nothing more: stop one of them"));
    holds_lock_ = true;
  }
  if (!leasing_ || instance.empty()) return;
  std::string group;
  int64_t token = 0;
  {
    std::lock_guard<std::mutex> lock(fences_mutex_);
    auto it = fences_.find(instance);
    if (it != fences_.end()) std::tie(group, token) = it->second;
  }
  if (group.empty())
    throw JournalFenced(describe("writing for '" + instance + "'",
                                 "refused: host " + host_id_ + " holds no lease for it"));
  // FOR SHARE: a host claiming the lease meanwhile waits for this transaction to end, and a
  // claim that committed first is seen here (the row is read again at its latest version).
  Result r = db_->exec("SELECT coalesce(owner, ''), token FROM leases WHERE lease_group = $1 "
                       "FOR SHARE",
                       Params().text(group));
  if (r.rows() == 1 && r.text(0, 0) == host_id_ && r.integer(0, 1) == token) return;
  const std::string holder = r.rows() == 0 || r.text(0, 0).empty() ? "nobody" : r.text(0, 0);
  throw JournalFenced(describe(
      "writing for '" + instance + "'",
      "refused: the lease of group " + group + " is now held by " + holder + " (token " +
          (r.rows() == 0 ? std::string("none") : r.text(0, 1)) + ", this host's was " +
          std::to_string(token) + "); host " + host_id_ + " writes nothing more for it"));
}

void PostgresJournal::setFences(std::map<std::string, std::pair<std::string, int64_t>> fences) {
  std::lock_guard<std::mutex> lock(fences_mutex_);
  fences_ = std::move(fences);
  leasing_ = true;
}

// --- leases --------------------------------------------------------------------------------------

int64_t PostgresJournal::heartbeat(int64_t lease_ms) {
  return write("recording the heartbeat of host " + host_id_, "", [&] {
    return db_
        ->exec(std::string("INSERT INTO hosts (host_id, application, started_at_ms, "
                           "heartbeat_at_ms, expires_at_ms) VALUES ($1, $2, ") +
                   kDbNowMs + ", " + kDbNowMs + ", " + kDbNowMs +
                   " + $3) ON CONFLICT (host_id) DO UPDATE SET application = excluded.application, "
                   "heartbeat_at_ms = excluded.heartbeat_at_ms, expires_at_ms = "
                   "excluded.expires_at_ms RETURNING heartbeat_at_ms",
               Params().text(host_id_).text(applicationName(host_id_)).integer(lease_ms))
        .integer(0, 0);
  });
}

void PostgresJournal::leave() {
  write("removing host " + host_id_, "", [&] {
    db_->exec("DELETE FROM hosts WHERE host_id = $1", Params().text(host_id_));
  });
}

std::vector<HostRow> PostgresJournal::hosts(int64_t* db_now_ms) {
  return locked("reading hosts", [&] {
    Result r = db_->exec(std::string("SELECT host_id, application, heartbeat_at_ms, "
                                     "expires_at_ms, ") +
                         kDbNowMs + " FROM hosts ORDER BY host_id COLLATE \"C\"");
    std::vector<HostRow> out;
    for (int i = 0; i < r.rows(); ++i)
      out.push_back({r.text(i, 0), r.text(i, 1), r.integer(i, 2), r.integer(i, 3)});
    if (db_now_ms != nullptr)
      *db_now_ms = r.rows() > 0 ? r.integer(0, 4)
                                : db_->exec(std::string("SELECT ") + kDbNowMs).integer(0, 0);
    return out;
  });
}

void PostgresJournal::defineGroups(const std::map<std::string, std::vector<std::string>>& groups) {
  write("recording lease groups", "", [&] {
    for (const auto& [group, members] : groups) {
      std::vector<std::string_view> names(members.begin(), members.end());
      db_->exec(
          "INSERT INTO leases (lease_group, members) VALUES ($1, $2::text[]) ON CONFLICT "
          "(lease_group) DO UPDATE SET members = excluded.members WHERE leases.members IS "
          "DISTINCT FROM excluded.members",
          Params().text(group).textArray(names));
    }
  });
}

std::vector<LeaseRow> PostgresJournal::leases(int64_t* db_now_ms) {
  return locked("reading leases", [&] {
    Result r = db_->exec(std::string("SELECT lease_group, array_to_string(members, E'\\n'), "
                                     "coalesce(owner, ''), token, expires_at_ms, ") +
                         kDbNowMs + " FROM leases ORDER BY lease_group COLLATE \"C\"");
    std::vector<LeaseRow> out;
    for (int i = 0; i < r.rows(); ++i) {
      LeaseRow l{r.text(i, 0), splitLines(r.text(i, 1)), r.text(i, 2), r.integer(i, 3),
                 r.integer(i, 4)};
      out.push_back(std::move(l));
    }
    if (db_now_ms != nullptr)
      *db_now_ms = r.rows() > 0 ? r.integer(0, 5)
                                : db_->exec(std::string("SELECT ") + kDbNowMs).integer(0, 0);
    return out;
  });
}

std::optional<int64_t> PostgresJournal::claim(const std::string& group, int64_t lease_ms) {
  return write("claiming the lease of " + group, "", [&]() -> std::optional<int64_t> {
    Result r = db_->exec(
        std::string("UPDATE leases SET owner = $2, token = token + 1, expires_at_ms = ") +
            kDbNowMs + " + $3, changed_at_ms = " + kDbNowMs +
            " WHERE lease_group = $1 AND (owner IS NULL OR owner = $2 OR expires_at_ms < " +
            kDbNowMs + ") RETURNING token",
        Params().text(group).text(host_id_).integer(lease_ms));
    if (r.rows() == 0) return std::nullopt;
    return r.integer(0, 0);
  });
}

std::set<std::string> PostgresJournal::renew(const std::map<std::string, int64_t>& held,
                                             int64_t lease_ms) {
  std::set<std::string> renewed;
  if (held.empty()) return renewed;
  return write("renewing " + std::to_string(held.size()) + " lease(s)", "", [&] {
    std::vector<std::string_view> groups;
    std::vector<int64_t> tokens;
    for (const auto& [group, token] : held) {
      groups.push_back(group);
      tokens.push_back(token);
    }
    Result r = db_->exec(
        std::string("UPDATE leases l SET expires_at_ms = ") + kDbNowMs +
            " + $3 FROM unnest($1::text[], $2::bigint[]) AS h(g, t) WHERE l.lease_group = h.g "
            "AND l.token = h.t AND l.owner = $4 RETURNING l.lease_group",
        Params().textArray(groups).integerArray(tokens).integer(lease_ms).text(host_id_));
    for (int i = 0; i < r.rows(); ++i) renewed.insert(r.text(i, 0));
    return renewed;
  });
}

void PostgresJournal::release(const std::string& group, int64_t token) {
  write("releasing the lease of " + group, "", [&] {
    db_->exec(std::string("UPDATE leases SET owner = NULL, expires_at_ms = 0, changed_at_ms = ") +
                  kDbNowMs + " WHERE lease_group = $1 AND owner = $2 AND token = $3",
              Params().text(group).text(host_id_).integer(token));
  });
}

// --- EventLog: events, cursors, latest versions --------------------------------------------------

std::optional<Cursor> PostgresJournal::cursor(const std::string& source) {
  return locked("reading the cursor of '" + source + "'", [&]() -> std::optional<Cursor> {
    Result r = db_->exec("SELECT since, since_ns, since_offset FROM cursors WHERE source = $1",
                         Params().text(source));
    if (r.rows() == 0) return std::nullopt;
    return Cursor{r.text(0, 0), r.integer(0, 1), r.integer(0, 2)};
  });
}

std::vector<std::optional<VersionSeen>> PostgresJournal::latestVersions(
    const std::string& source, const std::vector<KeyRef>& keys) {
  std::vector<std::optional<VersionSeen>> out(keys.size());
  if (keys.empty()) return out;
  return reading("reading latest versions of '" + source + "'", [&] {
    std::vector<std::string_view> entities, names;
    for (const KeyRef& k : keys) {
      entities.push_back(k.entity);
      names.push_back(k.key);
    }
    // One query for the page: the keys as two arrays, joined on the primary key.
    Result r = reader_->exec(
        "SELECT k.i, v.version, v.version_ns FROM unnest($1::text[], $2::text[]) "
        "WITH ORDINALITY AS k(entity, key, i) JOIN latest_versions v ON v.source = $3 AND "
        "v.entity = k.entity AND v.key = k.key",
        Params().textArray(entities).textArray(names).text(source));
    for (int row = 0; row < r.rows(); ++row)
      out.at(static_cast<size_t>(r.integer(row, 0) - 1)) =
          VersionSeen{r.text(row, 1), r.integer(row, 2)};
    return out;
  });
}

namespace {

void upsertCursor(PostgresJournal::Connection& db, const std::string& source, const Cursor& cursor,
                  int64_t now_ms) {
  db.exec(
      "INSERT INTO cursors (source, since, since_ns, since_offset, updated_at_ms) "
      "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (source) DO UPDATE SET since = excluded.since, "
      "since_ns = excluded.since_ns, since_offset = excluded.since_offset, "
      "updated_at_ms = excluded.updated_at_ms",
      Params()
          .text(source)
          .text(cursor.since)
          .integer(cursor.since_ns)
          .integer(cursor.offset)
          .integer(now_ms));
}

}  // namespace

// The sequence. A bigserial is not commit-ordered: a transaction that took 10 may commit after
// one that took 11, and a sink that read 11 in between has its offset past 10 for good. Here the
// sequences come from the single row of event_sequence, updated inside the commit's transaction:
// the UPDATE locks the row until COMMIT, so a second committer (another thread, connection or
// host) waits at its UPDATE until the first one has committed, and then reads the first one's
// value. Sequences are therefore handed out in commit order, and a reader that sees sequence n
// committed sees every sequence below n committed too (PostgreSQL makes a commit visible before
// it releases the transaction's row locks). A rolled-back commit rolls its numbers back: no gaps,
// no reuse (the row only grows; purge() never touches it). The row is taken as late as possible
// (after versions and cursor, right before the events' INSERT), so commits are serialised only
// for that INSERT and the COMMIT.
int64_t PostgresJournal::commit(const std::string& source, const std::vector<NewEvent>& events,
                                const Cursor& cursor, const std::vector<SetAsideItem>& set_aside) {
  const std::string action =
      "committing " + std::to_string(events.size()) + " events from '" + source + "'";
  return write(action, source, [&]() -> int64_t {
    const int64_t now_ms = nowMs();
    // The latest version of each key: its last event in the page (one row per key per INSERT).
    std::map<std::pair<std::string_view, std::string_view>, size_t> last_of_key;
    for (size_t i = 0; i < events.size(); ++i) last_of_key[{events[i].entity, events[i].key}] = i;
    std::vector<const NewEvent*> latest;
    for (size_t i = 0; i < events.size(); ++i)
      if (last_of_key[{events[i].entity, events[i].key}] == i) latest.push_back(&events[i]);
    if (!latest.empty()) {
      std::vector<std::string_view> entities, keys, versions;
      std::vector<int64_t> version_ns;
      for (const NewEvent* e : latest) {
        entities.push_back(e->entity);
        keys.push_back(e->key);
        versions.push_back(e->version);
        version_ns.push_back(e->version_ns);
      }
      db_->exec(
          "INSERT INTO latest_versions (source, entity, key, version, version_ns) "
          "SELECT $1, e, k, v, n FROM unnest($2::text[], $3::text[], $4::text[], $5::bigint[]) "
          "AS t(e, k, v, n) ON CONFLICT (source, entity, key) DO UPDATE SET "
          "version = excluded.version, version_ns = excluded.version_ns",
          Params()
              .text(source)
              .textArray(entities)
              .textArray(keys)
              .textArray(versions)
              .integerArray(version_ns));
    }
    // Items set aside on these pages: kept with the cursor that passes them (once per text).
    for (const SetAsideItem& item : set_aside)
      db_->exec(
          "INSERT INTO source_dead_letters (source, fingerprint, entity, key, version, raw, "
          "reason, since_ms, set_aside_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
          "ON CONFLICT (source, fingerprint) DO NOTHING",
          Params()
              .text(source)
              .text(item.fingerprint)
              .bytes(item.entity)
              .bytes(item.key)
              .bytes(item.version)
              .bytes(item.raw)
              .text(item.reason)
              .integer(item.since_ms)
              .integer(now_ms));
    upsertCursor(*db_, source, cursor, now_ms);
    if (events.empty()) return 0;
    const int64_t last = db_->exec("UPDATE event_sequence SET last = last + $1 RETURNING last",
                                   Params().integer(static_cast<int64_t>(events.size())))
                             .integer(0, 0);
    // One statement for the page: each column as one array parameter (PostgreSQL plans it once,
    // whatever the page's size), the sequences counted from the row's old value in page order.
    std::vector<std::string_view> entities, keys, versions, previous, bodies, metas;
    std::vector<int64_t> echoes;
    for (const NewEvent& e : events) {
      entities.push_back(e.entity);
      keys.push_back(e.key);
      versions.push_back(e.version);
      previous.push_back(e.previous);
      bodies.push_back(e.body);
      metas.push_back(e.meta);
      echoes.push_back(e.echo ? 1 : 0);
    }
    db_->exec(std::string("INSERT INTO events (") + kEventColumns +
                  ") SELECT $1 + i, $2, e, k, v, p, b, x <> 0, $3, m FROM unnest($4::text[], "
                  "$5::text[], $6::text[], $7::text[], $8::text[], $9::int[], $10::text[]) "
                  "WITH ORDINALITY AS t(e, k, v, p, b, x, m, i) ORDER BY i",
              Params()
                  .integer(last - static_cast<int64_t>(events.size()))
                  .text(source)
                  .integer(now_ms)
                  .textArray(entities)
                  .textArray(keys)
                  .textArray(versions)
                  .textArray(previous)
                  .textArray(bodies)
                  .integerArray(echoes)
                  .textArray(metas));
    return last;
  });
}

bool PostgresJournal::setAsideKnown(const std::string& source, const std::string& fingerprint) {
  return locked("looking up a set-aside item of '" + source + "'", [&] {
    return db_->exec("SELECT 1 FROM source_dead_letters WHERE source = $1 AND fingerprint = $2",
                     Params().text(source).text(fingerprint))
               .rows() > 0;
  });
}

std::vector<SourceDeadLetter> PostgresJournal::sourceDeadLetters(
    const std::optional<std::string>& source) {
  return locked("listing source dead letters", [&] {
    const std::string select =
        "SELECT id, source, fingerprint, entity, key, version, raw, reason, since_ms, "
        "set_aside_at_ms FROM source_dead_letters";
    Result r = source ? db_->exec(select + " WHERE source = $1 ORDER BY id", Params().text(*source))
                      : db_->exec(select + " ORDER BY id");
    std::vector<SourceDeadLetter> out;
    for (int i = 0; i < r.rows(); ++i) {
      SourceDeadLetter& d = out.emplace_back();
      d.id = r.integer(i, 0);
      d.source = r.text(i, 1);
      d.item.fingerprint = r.text(i, 2);
      d.item.entity = r.bytes(i, 3);
      d.item.key = r.bytes(i, 4);
      d.item.version = r.bytes(i, 5);
      d.item.raw = r.bytes(i, 6);
      d.item.reason = r.text(i, 7);
      d.item.since_ms = r.integer(i, 8);
      d.set_aside_at_ms = r.integer(i, 9);
    }
    return out;
  });
}

int64_t PostgresJournal::replaySetAside(const std::string& source,
                                        const std::vector<int64_t>& ids) {
  return write("replaying source dead letters of '" + source + "'", source, [&]() -> int64_t {
    Result r =
        ids.empty()
            ? db_->exec("DELETE FROM source_dead_letters WHERE source = $1 RETURNING since_ms",
                        Params().text(source))
            : db_->exec(
                  "DELETE FROM source_dead_letters WHERE source = $1 AND "
                  "id = ANY($2::bigint[]) RETURNING since_ms",
                  Params().text(source).integerArray(ids));
    if (r.rows() == 0) return 0;
    int64_t since_ms = r.integer(0, 0);
    for (int i = 1; i < r.rows(); ++i) since_ms = std::min(since_ms, r.integer(i, 0));
    // Only ever back: a cursor already before the items reads them anyway.
    const int64_t since_ns = since_ms * 1000000;
    Result current =
        db_->exec("SELECT since_ns FROM cursors WHERE source = $1", Params().text(source));
    if (current.rows() == 0 || current.integer(0, 0) > since_ns)
      upsertCursor(*db_, source, Cursor{formatInstantMs(since_ns), since_ns, 0}, nowMs());
    return r.rows();
  });
}

int64_t PostgresJournal::dropSetAside(const std::vector<int64_t>& ids) {
  return write("dropping source dead letters", "", [&] {
    return db_
        ->exec("DELETE FROM source_dead_letters WHERE id = ANY($1::bigint[])",
               Params().integerArray(ids))
        .changed();
  });
}

void PostgresJournal::resetCursor(const std::string& source, const Cursor& cursor,
                                  bool forget_versions) {
  write("resetting the cursor of '" + source + "'", source, [&] {
    upsertCursor(*db_, source, cursor, nowMs());
    if (forget_versions)
      db_->exec("DELETE FROM latest_versions WHERE source = $1", Params().text(source));
  });
}

std::vector<std::pair<std::string, Cursor>> PostgresJournal::cursors() {
  return locked("reading cursors", [&] {
    Result r = db_->exec(
        "SELECT source, since, since_ns, since_offset FROM cursors ORDER BY source COLLATE \"C\"");
    std::vector<std::pair<std::string, Cursor>> out;
    for (int i = 0; i < r.rows(); ++i)
      out.emplace_back(r.text(i, 0), Cursor{r.text(i, 1), r.integer(i, 2), r.integer(i, 3)});
    return out;
  });
}

std::vector<JournalEvent> PostgresJournal::readAfter(int64_t after,
                                                     const std::vector<std::string>& sources,
                                                     size_t limit) {
  return reading("reading events after " + std::to_string(after), [&] {
    std::vector<JournalEvent> out;
    if (limit == 0) return out;
    Params p;
    p.integer(after).integer(clampLimit(limit));
    std::string sql = std::string("SELECT ") + kEventColumns + " FROM events WHERE sequence > $1";
    if (!sources.empty()) {
      sql += " AND source = ANY($3::text[])";
      p.textArray(std::vector<std::string_view>(sources.begin(), sources.end()));
    }
    Result r = reader_->exec(sql + " ORDER BY sequence LIMIT $2", p);
    out.reserve(static_cast<size_t>(r.rows()));
    for (int i = 0; i < r.rows(); ++i) out.push_back(toEvent(r, i));
    return out;
  });
}

int64_t PostgresJournal::lastSequence() {
  return locked("reading the last sequence",
                [&] { return db_->exec("SELECT last FROM event_sequence").integer(0, 0); });
}

int64_t PostgresJournal::countAfter(int64_t after, const std::vector<std::string>& sources) {
  return locked("counting events after " + std::to_string(after), [&] {
    Params p;
    p.integer(after);
    std::string sql = "SELECT count(*) FROM events WHERE sequence > $1";
    if (!sources.empty()) {
      sql += " AND source = ANY($2::text[])";
      p.textArray(std::vector<std::string_view>(sources.begin(), sources.end()));
    }
    return db_->exec(sql, p).integer(0, 0);
  });
}

int64_t PostgresJournal::purge(int64_t up_to_sequence, int64_t fetched_before_ms) {
  // latest_versions holds every key's version already: purging deletes events and nothing else.
  int64_t total = 0;
  while (true) {
    const int64_t deleted =
        write("purging events up to " + std::to_string(up_to_sequence), "", [&]() -> int64_t {
          // The oldest events, up to the first one too recent to go (also when the clock went
          // back: events are only ever deleted oldest first).
          Result r = db_->exec(
              "SELECT sequence, fetched_at_ms FROM events WHERE sequence <= $1 "
              "ORDER BY sequence LIMIT $2",
              Params().integer(up_to_sequence).integer(kPurgeChunk));
          int64_t count = 0, last = 0;
          for (int i = 0; i < r.rows() && r.integer(i, 1) < fetched_before_ms; ++i, ++count)
            last = r.integer(i, 0);
          if (count > 0)
            db_->exec("DELETE FROM events WHERE sequence <= $1", Params().integer(last));
          return count;
        });
    total += deleted;
    if (deleted < kPurgeChunk) return total;
  }
}

std::vector<JournalEvent> PostgresJournal::eventsOfKey(const std::string& key) {
  return locked("reading the events of key '" + key + "'", [&] {
    Result r = db_->exec(
        std::string("SELECT ") + kEventColumns + " FROM events WHERE key = $1 ORDER BY sequence",
        Params().text(key));
    std::vector<JournalEvent> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back(toEvent(r, i));
    return out;
  });
}

// --- SinkLedger: offsets, deliveries, dead letters, delivered hooks ------------------------------

int64_t PostgresJournal::sinkOffset(const std::string& sink) {
  return locked("reading the offset of sink '" + sink + "'", [&] {
    Result r = db_->exec("SELECT sequence FROM sink_offsets WHERE sink = $1", Params().text(sink));
    return r.rows() == 0 ? int64_t{0} : r.integer(0, 0);
  });
}

std::vector<std::pair<std::string, int64_t>> PostgresJournal::sinkOffsets() {
  return locked("reading sink offsets", [&] {
    Result r = db_->exec("SELECT sink, sequence FROM sink_offsets ORDER BY sink COLLATE \"C\"");
    std::vector<std::pair<std::string, int64_t>> out;
    for (int i = 0; i < r.rows(); ++i) out.emplace_back(r.text(i, 0), r.integer(i, 1));
    return out;
  });
}

namespace {

void upsertSinkOffset(PostgresJournal::Connection& db, const std::string& sink, int64_t offset,
                      int64_t now_ms) {
  db.exec(
      "INSERT INTO sink_offsets (sink, sequence, updated_at_ms) VALUES ($1, $2, $3) "
      "ON CONFLICT (sink) DO UPDATE SET sequence = excluded.sequence, "
      "updated_at_ms = excluded.updated_at_ms",
      Params().text(sink).integer(offset).integer(now_ms));
}

}  // namespace

void PostgresJournal::advanceSink(const std::string& sink, int64_t offset,
                                  const std::optional<DeliveryRange>& delivery,
                                  const std::vector<NewDeadLetter>& dead) {
  const std::string action = "advancing sink '" + sink + "' to " + std::to_string(offset);
  write(action, sink, [&] {
    const int64_t now_ms = nowMs();
    upsertSinkOffset(*db_, sink, offset, now_ms);
    if (delivery) {
      db_->exec(
          "INSERT INTO deliveries (sink, first_sequence, last_sequence, delivered_at_ms, detail) "
          "VALUES ($1, $2, $3, $4, $5)",
          Params()
              .text(sink)
              .integer(delivery->first_sequence)
              .integer(delivery->last_sequence)
              .integer(now_ms)
              .text(delivery->detail));
    }
    // Each dead letter copies its event inside this transaction; a missing event fails it loudly
    // rather than losing the dead letter.
    for (const NewDeadLetter& d : dead) {
      const int64_t copied =
          db_->exec(
                 "INSERT INTO dead_letters (sink, sequence, source, entity, key, version, "
                 "previous, body, echo, fetched_at_ms, reason, failed_at_ms, replay_requested, "
                 "meta) SELECT $1, sequence, source, entity, key, version, previous, body, echo, "
                 "fetched_at_ms, $2, $3, false, meta FROM events WHERE sequence = $4 "
                 "ON CONFLICT (sink, sequence) DO UPDATE SET reason = excluded.reason, "
                 "failed_at_ms = excluded.failed_at_ms, replay_requested = false",
                 Params().text(sink).text(d.reason).integer(now_ms).integer(d.sequence))
              .changed();
      if (copied == 0)
        throw JournalError(
            describe(action, "cannot dead-letter event " + std::to_string(d.sequence) +
                                 ": it is not in the journal (purged, or a sequence that was never "
                                 "assigned); nothing was changed"));
    }
  });
}

std::vector<DeliveryRecord> PostgresJournal::deliveriesOf(int64_t sequence) {
  return locked("reading the deliveries of event " + std::to_string(sequence), [&] {
    Result r = db_->exec(
        "SELECT sink, first_sequence, last_sequence, delivered_at_ms, detail FROM deliveries "
        "WHERE last_sequence >= $1 AND first_sequence <= $1 ORDER BY id",
        Params().integer(sequence));
    std::vector<DeliveryRecord> out;
    for (int i = 0; i < r.rows(); ++i)
      out.push_back(DeliveryRecord{r.text(i, 0), r.integer(i, 1), r.integer(i, 2), r.integer(i, 3),
                                   r.text(i, 4)});
    return out;
  });
}

std::vector<DeadLetter> PostgresJournal::deadLetters(const std::optional<std::string>& sink) {
  return locked("listing dead letters", [&] {
    const std::string select = std::string("SELECT ") + kDeadLetterColumns + " FROM dead_letters";
    Result r = sink ? db_->exec(select + " WHERE sink = $1 ORDER BY id", Params().text(*sink))
                    : db_->exec(select + " ORDER BY id");
    std::vector<DeadLetter> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back(toDeadLetter(r, i));
    return out;
  });
}

int64_t PostgresJournal::requestReplay(const std::string& sink, const std::vector<int64_t>& ids) {
  return write("requesting replay of dead letters of sink '" + sink + "'", sink, [&] {
    // The sink is part of the match: an id of another sink's dead letter is not replayed here.
    if (ids.empty())
      return db_
          ->exec("UPDATE dead_letters SET replay_requested = true WHERE sink = $1",
                 Params().text(sink))
          .changed();
    return db_
        ->exec(
            "UPDATE dead_letters SET replay_requested = true WHERE sink = $1 AND "
            "id = ANY($2::bigint[])",
            Params().text(sink).integerArray(ids))
        .changed();
  });
}

std::vector<DeadLetter> PostgresJournal::pendingReplays(const std::string& sink, size_t limit) {
  return locked("reading pending replays of sink '" + sink + "'", [&] {
    std::vector<DeadLetter> out;
    if (limit == 0) return out;
    Result r = db_->exec(std::string("SELECT ") + kDeadLetterColumns +
                             " FROM dead_letters WHERE sink = $1 AND replay_requested "
                             "ORDER BY id LIMIT $2",
                         Params().text(sink).integer(clampLimit(limit)));
    for (int i = 0; i < r.rows(); ++i) out.push_back(toDeadLetter(r, i));
    return out;
  });
}

void PostgresJournal::settleReplay(int64_t id, const std::optional<std::string>& new_reason) {
  // An id that is already gone was settled before: settling is idempotent. Fenced by the lease
  // of the dead letter's sink, whose runner settles it.
  const std::string action = "settling the replay of dead letter " + std::to_string(id);
  const std::string sink = locked(action, [&] {
    Result r = db_->exec("SELECT sink FROM dead_letters WHERE id = $1", Params().integer(id));
    return r.rows() == 0 ? std::string() : r.text(0, 0);
  });
  if (sink.empty()) return;
  write(action, sink, [&] {
    if (new_reason) {
      db_->exec(
          "UPDATE dead_letters SET reason = $1, failed_at_ms = $2, replay_requested = false "
          "WHERE id = $3",
          Params().text(*new_reason).integer(nowMs()).integer(id));
      return;
    }
    // The replay is a delivery like any other, so that `ferry trace` shows it as one.
    db_->exec(
        "INSERT INTO deliveries (sink, first_sequence, last_sequence, delivered_at_ms, detail) "
        "SELECT sink, sequence, sequence, $1, 'replay of dead letter #' || id FROM dead_letters "
        "WHERE id = $2",
        Params().integer(nowMs()).integer(id));
    db_->exec("DELETE FROM dead_letters WHERE id = $1", Params().integer(id));
  });
}

int64_t PostgresJournal::deliveredUpTo(const std::string& source) {
  return locked("reading delivered progress of '" + source + "'", [&] {
    Result r =
        db_->exec("SELECT sequence FROM delivered_hooks WHERE source = $1", Params().text(source));
    return r.rows() == 0 ? int64_t{0} : r.integer(0, 0);
  });
}

void PostgresJournal::setDeliveredUpTo(const std::string& source, int64_t sequence) {
  write("recording delivered progress of '" + source + "'", source, [&] {
    db_->exec(
        "INSERT INTO delivered_hooks (source, sequence, updated_at_ms) VALUES ($1, $2, $3) "
        "ON CONFLICT (source) DO UPDATE SET sequence = excluded.sequence, "
        "updated_at_ms = excluded.updated_at_ms",
        Params().text(source).integer(sequence).integer(nowMs()));
  });
}

std::vector<std::pair<std::string, int64_t>> PostgresJournal::deliveredProgress() {
  return locked("reading delivered progress", [&] {
    Result r =
        db_->exec("SELECT source, sequence FROM delivered_hooks ORDER BY source COLLATE \"C\"");
    std::vector<std::pair<std::string, int64_t>> out;
    for (int i = 0; i < r.rows(); ++i) out.emplace_back(r.text(i, 0), r.integer(i, 1));
    return out;
  });
}

std::vector<int64_t> PostgresJournal::deadLetteredBetween(int64_t after, int64_t up_to) {
  return locked(
      "reading dead letters between " + std::to_string(after) + " and " + std::to_string(up_to),
      [&] {
        Result r = db_->exec(
            "SELECT DISTINCT sequence FROM dead_letters WHERE sequence > $1 AND sequence <= $2 "
            "ORDER BY sequence",
            Params().integer(after).integer(up_to));
        std::vector<int64_t> out;
        for (int i = 0; i < r.rows(); ++i) out.push_back(r.integer(i, 0));
        return out;
      });
}

// --- InstanceState: plugin state, instance status ------------------------------------------------

std::optional<std::string> PostgresJournal::stateGet(const std::string& instance,
                                                     const std::string& key) {
  return locked(
      "reading state '" + key + "' of '" + instance + "'", [&]() -> std::optional<std::string> {
        // bytea, read in binary: plugin state is bytes and may hold NULs.
        Result r = db_->exec("SELECT value FROM plugin_state WHERE instance = $1 AND key = $2",
                             Params().text(instance).text(key), true);
        if (r.rows() == 0) return std::nullopt;
        return r.text(0, 0);
      });
}

void PostgresJournal::stateSet(const std::string& instance, const std::string& key,
                               const std::optional<std::string>& value) {
  write("writing state '" + key + "' of '" + instance + "'", instance, [&] {
    if (!value) {
      db_->exec("DELETE FROM plugin_state WHERE instance = $1 AND key = $2",
                Params().text(instance).text(key));
      return;
    }
    db_->exec(
        "INSERT INTO plugin_state (instance, key, value, updated_at_ms) VALUES ($1, $2, $3, $4) "
        "ON CONFLICT (instance, key) DO UPDATE SET value = excluded.value, "
        "updated_at_ms = excluded.updated_at_ms",
        Params().text(instance).text(key).bytes(*value).integer(nowMs()));
  });
}

void PostgresJournal::setStatus(const InstanceStatus& s) {
  write("recording the status of '" + s.name + "'", s.name, [&] {
    db_->exec(
        "INSERT INTO instance_status (name, kind, state, message, updated_at_ms, retry_attempt, "
        "next_attempt_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (name) DO UPDATE "
        "SET kind = excluded.kind, state = excluded.state, message = excluded.message, "
        "updated_at_ms = excluded.updated_at_ms, retry_attempt = excluded.retry_attempt, "
        "next_attempt_at_ms = excluded.next_attempt_at_ms",
        Params()
            .text(s.name)
            .text(s.kind)
            .text(s.state)
            .text(s.message)
            .integer(s.updated_at_ms)
            .integer(s.retry_attempt)
            .integer(s.next_attempt_at_ms));
  });
}

std::vector<InstanceStatus> PostgresJournal::statuses() {
  return locked("reading statuses", [&] {
    Result r = db_->exec(
        "SELECT name, kind, state, message, updated_at_ms, retry_attempt, next_attempt_at_ms "
        "FROM instance_status ORDER BY name COLLATE \"C\"");
    std::vector<InstanceStatus> out;
    for (int i = 0; i < r.rows(); ++i)
      out.push_back({r.text(i, 0), r.text(i, 1), r.text(i, 2), r.text(i, 3), r.integer(i, 4),
                     r.integer(i, 5), r.integer(i, 6)});
    return out;
  });
}

// --- Controls: operators' requests, sink pauses, source origins, activity ------------------------

int64_t PostgresJournal::submitCommand(const std::string& action, const std::string& target,
                                       const std::string& argument) {
  return write("storing the request " + action, "", [&] {
    return db_
        ->exec(
            "INSERT INTO commands (action, target, argument, requested_at_ms) "
            "VALUES ($1, $2, $3, $4) RETURNING id",
            Params().text(action).text(target).text(argument).integer(nowMs()))
        .integer(0, 0);
  });
}

namespace {

constexpr const char* kCommandColumns =
    "SELECT id, action, target, argument, state, result, requested_at_ms FROM commands ";

CommandRequest toCommand(const Result& r, int i) {
  return CommandRequest{r.integer(i, 0), r.text(i, 1), r.text(i, 2),   r.text(i, 3),
                        r.text(i, 4),    r.text(i, 5), r.integer(i, 6)};
}

}  // namespace

std::vector<CommandRequest> PostgresJournal::pendingCommands() {
  return locked("reading pending requests", [&] {
    Result r = db_->exec(std::string(kCommandColumns) + "WHERE state = 'pending' ORDER BY id");
    std::vector<CommandRequest> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back(toCommand(r, i));
    return out;
  });
}

std::optional<CommandRequest> PostgresJournal::command(int64_t id) {
  return locked("reading request " + std::to_string(id), [&]() -> std::optional<CommandRequest> {
    Result r = db_->exec(std::string(kCommandColumns) + "WHERE id = $1", Params().integer(id));
    if (r.rows() == 0) return std::nullopt;
    return toCommand(r, 0);
  });
}

void PostgresJournal::finishCommand(int64_t id, bool ok, const std::string& result) {
  write("answering request " + std::to_string(id), "", [&] {
    db_->exec("UPDATE commands SET state = $1, result = $2, finished_at_ms = $3 WHERE id = $4",
              Params().text(ok ? "done" : "failed").text(result).integer(nowMs()).integer(id));
  });
}

bool PostgresJournal::sinkPaused(const std::string& sink) {
  return locked("reading whether sink '" + sink + "' is paused", [&] {
    Result r = db_->exec("SELECT paused FROM sink_controls WHERE sink = $1", Params().text(sink));
    return r.rows() > 0 && r.boolean(0, 0);
  });
}

void PostgresJournal::setSinkPaused(const std::string& sink, bool paused) {
  write(std::string(paused ? "pausing" : "resuming") + " sink '" + sink + "'", sink, [&] {
    db_->exec(
        "INSERT INTO sink_controls (sink, paused, updated_at_ms) VALUES ($1, $2, $3) "
        "ON CONFLICT (sink) DO UPDATE SET paused = excluded.paused, "
        "updated_at_ms = excluded.updated_at_ms",
        Params().text(sink).boolean(paused).integer(nowMs()));
  });
}

std::vector<std::string> PostgresJournal::knownSinks() {
  return locked("listing known sinks", [&] {
    Result r = db_->exec(
        "SELECT sink FROM (SELECT sink FROM sink_offsets UNION SELECT sink FROM sink_controls) s "
        "ORDER BY sink COLLATE \"C\"");
    std::vector<std::string> out;
    for (int i = 0; i < r.rows(); ++i) out.push_back(r.text(i, 0));
    return out;
  });
}

void PostgresJournal::setSinkOffset(const std::string& sink, int64_t offset) {
  write("moving sink '" + sink + "' to " + std::to_string(offset), sink,
        [&] { upsertSinkOffset(*db_, sink, offset, nowMs()); });
}

void PostgresJournal::forgetSink(const std::string& sink) {
  write("forgetting sink '" + sink + "'", "", [&] {
    db_->exec("DELETE FROM sink_offsets WHERE sink = $1", Params().text(sink));
    db_->exec("DELETE FROM sink_controls WHERE sink = $1", Params().text(sink));
    db_->exec("DELETE FROM instance_activity WHERE name = $1 AND kind = 'sink'",
              Params().text(sink));
  });
}

int64_t PostgresJournal::oldestSequence() {
  return locked("reading the oldest retained event", [&] {
    return db_->exec("SELECT coalesce(min(sequence), 0) FROM events").integer(0, 0);
  });
}

int64_t PostgresJournal::firstSequenceFetchedFrom(int64_t fetched_at_ms) {
  return locked("finding the first event fetched from an instant", [&] {
    // In sequence order, stopping at the first match (fetch times grow with sequences).
    Result r =
        db_->exec("SELECT sequence FROM events WHERE fetched_at_ms >= $1 ORDER BY sequence LIMIT 1",
                  Params().integer(fetched_at_ms));
    return r.rows() == 0 ? int64_t{0} : r.integer(0, 0);
  });
}

std::optional<int64_t> PostgresJournal::fetchedAt(int64_t sequence) {
  return locked("reading event " + std::to_string(sequence), [&]() -> std::optional<int64_t> {
    Result r = db_->exec("SELECT fetched_at_ms FROM events WHERE sequence = $1",
                         Params().integer(sequence));
    if (r.rows() == 0) return std::nullopt;
    return r.integer(0, 0);
  });
}

int64_t PostgresJournal::dropDeadLetters(const std::vector<int64_t>& ids) {
  return write("dropping dead letters", "", [&] {
    return db_
        ->exec("DELETE FROM dead_letters WHERE id = ANY($1::bigint[])", Params().integerArray(ids))
        .changed();
  });
}

std::optional<std::string> PostgresJournal::sourceOrigin(const std::string& source) {
  return locked("reading the origin of source '" + source + "'",
                [&]() -> std::optional<std::string> {
                  Result r = db_->exec("SELECT start_from FROM source_origins WHERE source = $1",
                                       Params().text(source));
                  if (r.rows() == 0) return std::nullopt;
                  return r.text(0, 0);
                });
}

void PostgresJournal::setSourceOrigin(const std::string& source, const std::string& start_from) {
  setSourceOrigins({{source, start_from}});
}

void PostgresJournal::setSourceOrigins(
    const std::vector<std::pair<std::string, std::string>>& origins) {
  if (origins.empty()) return;
  const std::string what =
      origins.size() == 1
          ? "recording the origin of source '" + origins[0].first + "'"
          : "recording the origins of " + std::to_string(origins.size()) + " sources";
  write(what, "", [&] {
    const int64_t at = nowMs();
    for (const auto& [source, start_from] : origins)
      db_->exec(
          "INSERT INTO source_origins (source, start_from, updated_at_ms) VALUES ($1, $2, $3) "
          "ON CONFLICT (source) DO UPDATE SET start_from = excluded.start_from, "
          "updated_at_ms = excluded.updated_at_ms",
          Params().text(source).text(start_from).integer(at));
  });
}

void PostgresJournal::recordActivity(const InstanceActivity& a) {
  write("recording the activity of '" + a.name + "'", a.name, [&] {
    db_->exec(
        "INSERT INTO instance_activity (name, kind, last_attempt_ms, last_success_ms, "
        "events_total, progress, updated_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7) "
        "ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, "
        "last_attempt_ms = excluded.last_attempt_ms, last_success_ms = excluded.last_success_ms, "
        "events_total = excluded.events_total, progress = excluded.progress, "
        "updated_at_ms = excluded.updated_at_ms",
        Params()
            .text(a.name)
            .text(a.kind)
            .integer(a.last_attempt_ms)
            .integer(a.last_success_ms)
            .integer(a.events_total)
            .text(a.progress)
            .integer(nowMs()));
  });
}

std::vector<InstanceActivity> PostgresJournal::activities() {
  return locked("reading activity", [&] {
    Result r = db_->exec(
        "SELECT name, kind, last_attempt_ms, last_success_ms, events_total, progress "
        "FROM instance_activity ORDER BY name COLLATE \"C\"");
    std::vector<InstanceActivity> out;
    for (int i = 0; i < r.rows(); ++i)
      out.push_back({r.text(i, 0), r.text(i, 1), r.integer(i, 2), r.integer(i, 3), r.integer(i, 4),
                     r.text(i, 5)});
    return out;
  });
}

}  // namespace ferry::core
