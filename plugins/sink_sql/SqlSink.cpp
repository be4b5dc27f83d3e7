// sink_sql's write path. Why it is shaped this way:
//
// - Effectively-once at the target: the rows of a batch and the sink's journal offset
//   (ferry_offsets) commit in ONE transaction, and events at or below that offset are skipped.
//   A crash between our commit and the host's own offset commit re-delivers events the target
//   already has; they change nothing. Events the sink refused (FATAL, dead-lettered by the host)
//   are remembered in ferry_refused so that `ferry dead-letters replay` can still bring them in
//   although their sequence is below the offset.
// - Version guard: every upsert replaces a row only when the incoming version is newer as an
//   instant (version_ns, nanoseconds since the epoch, stored next to the exact version text).
//   An equal version changes nothing either, so a replay leaves every byte as it was.
// - Rows tables (one row per order line) need the guard per record, not per row: an older
//   version must not bring back a line a newer one removed. ferry_versions keeps the newest
//   version written per record; only events newer than it touch the rows table.
// - Speed: one transaction per batch, multi-row VALUES (Poco's bulk binding is ODBC only), split
//   into statements that stay within each database's limits (Dialect::maxParams(), MySQL's
//   max_allowed_packet), so that any batch_size works; all of them in the batch's transaction.
// - One bad row must not dead-letter the batch around it: after a data error the batch is
//   bisected with rolled-back trial transactions to find the first event the database refuses;
//   the events before it commit, it is answered FATAL, and the host goes on after it.
#include "SqlSink.h"

// FERRY_SQL_SQLITE_ONLY (the Windows build): SQLite only, no PostgreSQL or MySQL connector.
#ifndef FERRY_SQL_SQLITE_ONLY
#include <Poco/Data/MySQL/SessionImpl.h>
#include <Poco/Data/PostgreSQL/SessionImpl.h>
#endif
#include <Poco/Data/SQLite/SessionImpl.h>
#include <Poco/Data/Session.h>
#include <Poco/Data/Statement.h>
#include <Poco/Nullable.h>
#include <ferry/instant.hpp>
#include <ferry/mapping.hpp>

#include <algorithm>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <unordered_map>

#include "Dialect.h"

namespace ferry::sql {

namespace {

using Poco::Data::Session;
using Poco::Data::Statement;
using Poco::Data::Keywords::bind;
using Poco::Data::Keywords::into;
using Poco::Data::Keywords::now;
using ferry::mapping::CellKind;
using ferry::mapping::Mapper;
using ferry::mapping::Mapping;
using ferry::mapping::Rows;

// Thrown inside a transaction; carries the classified database error out of it.
struct DbFailure {
  DbError error;
};

// A configuration problem found at the database (a table without a needed column): the sink
// cannot go on until an operator acts.
struct SchemaProblem {
  std::string message;
};

bool optBool(const ferry::Options& o, const char* name, bool fallback) {
  return o.has(name) ? o.string(name) == "true" : fallback;
}

Connector connectorFrom(const std::string& name) {
  if (name == "sqlite" || name.empty()) return Connector::kSqlite;
#ifdef FERRY_SQL_SQLITE_ONLY
  if (name == "postgresql" || name == "mysql")
    throw ferry::Fatal("connector: '" + name + "' is not in this build of sink_sql (the Windows "
                       "build has sqlite only)");
#endif
  if (name == "postgresql") return Connector::kPostgres;
  if (name == "mysql") return Connector::kMySql;
  throw ferry::Fatal("connector: '" + name + "' is not one of sqlite, postgresql, mysql");
}

// A column of a table the sink writes: its name, the type it is created with, and whether the
// sink fills it from the mapping (user) or itself (meta).
struct ColumnDef {
  std::string name;
  ColType type;
  bool not_null = false;
};

struct TableDef {
  std::string option;  // the option that named it, for messages
  std::string name;    // as configured
  std::vector<ColumnDef> columns;
  std::vector<size_t> keys;
  std::string index_column;  // a secondary index to create ("" for none)
  // Filled when the schema is checked: the quoted name, the quoted columns and (PostgreSQL) the
  // type of each column for the casts of a multi-row VALUES list.
  UpsertSpec upsert;
};

// An event of the batch the sink writes, with what was mapped from it.
struct Prepared {
  size_t index;  // in the batch
  ferry::Event e;
  int64_t ns;
  std::string parent;  // source/entity/key
  size_t head_begin = 0, head_end = 0;
  size_t rows_begin = 0, rows_end = 0;
};

Mapping mappingFrom(const std::string& option, const std::string& spec, const std::string& rows) {
  try {
    if (spec.rfind("layout:", 0) == 0) return Mapping::layout(spec.substr(7));
    return Mapping::parse(spec, rows);
  } catch (const ferry::mapping::MappingError& e) {
    throw ferry::Fatal(option + ": " + e.what());
  }
}

std::string hex16() {
  std::random_device rd;
  std::mt19937_64 gen((static_cast<uint64_t>(rd()) << 32) ^ rd());
  static const char* digits = "0123456789abcdef";
  std::string out;
  uint64_t v = gen();
  for (int i = 0; i < 16; ++i) out += digits[(v >> (i * 4)) & 15];
  return out;
}

}  // namespace

struct SqlSink::Impl {
  ferry::Host host;
  Dialect dialect;
  std::string connection;
  bool changes = true;
  bool history = false;
  bool flag_removed = false;
  bool create_tables = true;

  TableDef changes_table, history_table, head_table, rows_table;
  TableDef offsets_table, refused_table, versions_table;
  std::optional<Mapper> head_mapper, rows_mapper;
  Rows head_cells, rows_cells;
  size_t head_user_cols = 0, rows_user_cols = 0;

  std::optional<Session> session;
  std::string sink_id;
  // The most bytes of values in one statement (MySQL: within the server's max_allowed_packet).
  size_t statement_bytes = Dialect::kMaxStatementBytes;

  Impl(ferry::Host h, const ferry::Options& o)
      : host(h),
        dialect(connectorFrom(o.string("connector", "sqlite"))),
        connection(o.string("connection")) {
    if (connection.empty())
      throw ferry::Fatal(std::string("connection: empty; set it to ") +
                         (dialect.connector() == Connector::kSqlite
                              ? "the database file"
                              : "the database's connection string"));
    changes = optBool(o, "changes", true);
    history = optBool(o, "history", false);
    create_tables = optBool(o, "create_tables", true);
    flag_removed = o.string("removed_rows", "delete") == "flag";

    const std::string head = o.string("table"), rows = o.string("rows_table");
    if (!changes && !history && head.empty() && rows.empty())
      throw ferry::Fatal(
          "nothing to write: set changes = true, history = true, table or rows_table");

    const ColType key = ColType::kKeyText;
    if (changes) {
      changes_table = TableDef{"changes_table", o.string("changes_table", "ferry_changes"),
                               {{"source", key, true},
                                {"entity", key, true},
                                {"key", key, true},
                                {"version", ColType::kText, true},
                                {"version_ns", ColType::kBigInt, true},
                                {"previous", ColType::kText, false},
                                {"echo", ColType::kFlag, true},
                                {"body", ColType::kJson, false},
                                {"sequence", ColType::kBigInt, true},
                                {"written_at", ColType::kText, true}},
                               {0, 1, 2},
                               "",
                               {}};
      changes_table.upsert.guard = "version_ns";
    }
    if (history) {
      history_table = TableDef{"history_table", o.string("history_table", "ferry_history"),
                               {{"source", key, true},
                                {"entity", key, true},
                                {"key", key, true},
                                {"version", key, true},
                                {"version_ns", ColType::kBigInt, true},
                                {"previous", ColType::kText, false},
                                {"echo", ColType::kFlag, true},
                                {"body", ColType::kJson, false},
                                {"sequence", ColType::kBigInt, true},
                                {"written_at", ColType::kText, true}},
                               {0, 1, 2, 3},
                               "",
                               {}};
    }
    if (!head.empty()) {
      head_mapper.emplace(mappingFrom("table_columns", o.string("table_columns", "layout:duckhub_order"), ""));
      if (head_mapper->mapping().perElement())
        throw ferry::Fatal("table_columns: the header table has one row per record; use "
                           "rows_table for a layout with rows");
      head_table = userTable("table", head, head_mapper->mapping(), o.list("table_keys"), {});
      head_user_cols = head_mapper->mapping().columnCount();
      head_cells = Rows(head_user_cols);
      for (const char* m : {"ferry_version", "ferry_version_ns", "ferry_sequence"})
        head_table.columns.push_back({m, std::string(m) == "ferry_version" ? ColType::kText
                                                                            : ColType::kBigInt,
                                      true});
      head_table.upsert.guard = "ferry_version_ns";
    }
    if (!rows.empty()) {
      const std::string spec = o.string("rows_columns", "layout:duckhub_order_lines");
      if (spec.rfind("layout:", 0) == 0 && !o.string("rows").empty())
        throw ferry::Fatal("rows: only used when rows_columns is a mapping, not " + spec);
      rows_mapper.emplace(mappingFrom("rows_columns", spec, o.string("rows")));
      std::vector<std::string> keys = o.list("rows_keys");
      if (keys.empty() && spec == "layout:duckhub_order_lines") keys = {"order_id", "line"};
      if (keys.empty())
        throw ferry::Fatal("rows_keys: required for rows_table '" + rows +
                           "': the columns that identify a row, e.g. order_id,line");
      rows_table = userTable("rows_table", rows, rows_mapper->mapping(), keys, {});
      rows_user_cols = rows_mapper->mapping().columnCount();
      rows_cells = Rows(rows_user_cols);
      rows_table.columns.push_back({"ferry_parent", ColType::kParentText, true});
      rows_table.columns.push_back({"ferry_version", ColType::kText, true});
      rows_table.columns.push_back({"ferry_version_ns", ColType::kBigInt, true});
      rows_table.columns.push_back({"ferry_sequence", ColType::kBigInt, true});
      if (flag_removed) rows_table.columns.push_back({"ferry_removed", ColType::kFlag, true});
      rows_table.index_column = "ferry_parent";
      rows_table.upsert.guard = "ferry_version_ns";
      versions_table = TableDef{"rows_table",
                                "ferry_versions",
                                {{"tbl", key, true},
                                 {"parent", ColType::kParentText, true},
                                 {"version", ColType::kText, true},
                                 {"version_ns", ColType::kBigInt, true},
                                 {"sequence", ColType::kBigInt, true}},
                                {0, 1},
                                "",
                                {}};
      versions_table.upsert.guard = "version_ns";
    }
    offsets_table = TableDef{"", "ferry_offsets",
                             {{"sink", key, true},
                              {"sequence", ColType::kBigInt, true},
                              {"updated_at", ColType::kText, true}},
                             {0}, "", {}};
    offsets_table.upsert.guard = "sequence";
    refused_table = TableDef{"", "ferry_refused",
                             {{"sink", key, true},
                              {"sequence", ColType::kBigInt, true},
                              {"reason", ColType::kText, false},
                              {"refused_at", ColType::kText, true}},
                             {0, 1}, "", {}};
    refused_table.upsert.guard = "";  // set per use: a second refusal keeps the first reason

    // Names from the config: refuse what cannot be quoted safely, before anything runs.
    std::set<std::string> seen;
    for (TableDef* t : tables()) {
      if (t->name.empty()) continue;
      const std::string why = dialect.refuse(t->name, true);
      if (!why.empty())
        throw ferry::Fatal(t->option + ": table name '" + t->name + "' " + why +
                           "; use letters, digits and '_' (names are quoted, so other characters "
                           "work too, but not quotes, dots or control characters)");
      if (!seen.insert(t->name).second)
        throw ferry::Fatal(t->option + ": table '" + t->name +
                           "' is also used for another purpose of this sink");
    }
  }

  std::vector<TableDef*> tables() {
    std::vector<TableDef*> out;
    if (changes) out.push_back(&changes_table);
    if (history) out.push_back(&history_table);
    if (head_mapper) out.push_back(&head_table);
    if (rows_mapper) {
      out.push_back(&rows_table);
      out.push_back(&versions_table);
    }
    out.push_back(&offsets_table);
    out.push_back(&refused_table);
    return out;
  }

  TableDef userTable(const std::string& option, const std::string& name, const Mapping& m,
                     std::vector<std::string> keys, std::vector<ColumnDef> extra) {
    TableDef t{option, name, {}, {}, "", {}};
    const auto& headers = m.headers();
    for (size_t c = 0; c < headers.size(); ++c) {
      const std::string why = dialect.refuse(headers[c], false);
      if (!why.empty())
        throw ferry::Fatal(option + ": column '" + headers[c] + "' " + why +
                           "; rename it in the mapping");
      if (headers[c].rfind("ferry_", 0) == 0)
        throw ferry::Fatal(option + ": column '" + headers[c] +
                           "': names starting with ferry_ are the sink's own columns");
      t.columns.push_back({headers[c], ColType::kText, false});
    }
    if (keys.empty()) keys = {headers.at(0)};
    for (const auto& k : keys) {
      auto it = std::find(headers.begin(), headers.end(), k);
      if (it == headers.end())
        throw ferry::Fatal(option + ": key column '" + k + "' is not one of the columns of '" +
                           name + "'");
      const size_t idx = static_cast<size_t>(it - headers.begin());
      t.keys.push_back(idx);
      t.columns[idx].type = ColType::kKeyText;
      t.columns[idx].not_null = true;
    }
    for (auto& e : extra) t.columns.push_back(std::move(e));
    return t;
  }

  // --------------------------------------------------------------------------------------------
  // Connection and schema
  // --------------------------------------------------------------------------------------------

  void exec(const std::string& sql) { *session << sql, now; }

  void connect() {
    try {
      switch (dialect.connector()) {
        case Connector::kSqlite:
          session.emplace(Poco::AutoPtr<Poco::Data::SessionImpl>(
              new Poco::Data::SQLite::SessionImpl(connection, 10)));
          exec("PRAGMA busy_timeout = 10000");
          exec("PRAGMA journal_mode = WAL");
          exec("PRAGMA synchronous = FULL");
          break;
#ifdef FERRY_SQL_SQLITE_ONLY
        case Connector::kPostgres:
        case Connector::kMySql:
          break;  // refused by connectorFrom()
#else
        case Connector::kPostgres:
          session.emplace(Poco::AutoPtr<Poco::Data::SessionImpl>(
              new Poco::Data::PostgreSQL::SessionImpl(connection, 10)));
          exec("SET client_encoding = 'UTF8'");
          break;
        case Connector::kMySql:
          session.emplace(Poco::AutoPtr<Poco::Data::SessionImpl>(
              new Poco::Data::MySQL::SessionImpl(connection, 10)));
          exec("SET NAMES utf8mb4 COLLATE utf8mb4_bin");
          // Strict: a value that does not fit is an error (dead letter), never cut or zeroed.
          exec("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,"
               "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION'");
          exec("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED");
          {
            // A statement whose values exceed max_allowed_packet makes the server drop the
            // connection ("server has gone away"); a quarter is left for the packet's own bytes.
            Poco::Int64 packet = 0;
            *session << "SELECT CAST(@@max_allowed_packet AS SIGNED)", into(packet), now;
            statement_bytes = std::min<size_t>(Dialect::kMaxStatementBytes,
                                               static_cast<size_t>(packet) / 4 * 3);
          }
          break;
#endif
      }
      checkSchema();
    } catch (const Poco::Exception& e) {
      session.reset();
      throw DbFailure{dialect.classify(e)};
    } catch (...) {
      session.reset();
      throw;
    }
  }

  // The columns a table has: name → type as the database spells it (PostgreSQL: without length,
  // for casts). Empty when the table does not exist.
  std::map<std::string, std::string> existingColumns(const TableDef& t) {
    std::map<std::string, std::string> out;
    std::vector<std::string> names, types;
    const size_t dot = t.name.find('.');
    switch (dialect.connector()) {
      case Connector::kSqlite: {
        Statement st(*session);
        st << "SELECT name, type FROM pragma_table_info(?)", into(names), into(types),
            bind(t.name);
        st.execute();
        break;
      }
      case Connector::kPostgres: {
        Statement st(*session);
        st << "SELECT a.attname::text, format_type(a.atttypid, NULL) FROM pg_attribute a "
              "WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped",
            into(names), into(types), bind(dialect.quoteQualified(t.name));
        st.execute();
        break;
      }
      case Connector::kMySql: {
        Statement st(*session);
        st << "SELECT CAST(COLUMN_NAME AS CHAR(64)), CAST(DATA_TYPE AS CHAR(64)) FROM "
              "information_schema.COLUMNS WHERE TABLE_SCHEMA = COALESCE(NULLIF(?, ''), "
              "DATABASE()) AND TABLE_NAME = ?",
            into(names), into(types),
            bind(dot == std::string::npos ? std::string() : t.name.substr(0, dot)),
            bind(dot == std::string::npos ? t.name : t.name.substr(dot + 1));
        st.execute();
        break;
      }
    }
    for (size_t i = 0; i < names.size(); ++i) out[names[i]] = i < types.size() ? types[i] : "";
    return out;
  }

  void createTable(const TableDef& t) {
    std::string sql = "CREATE TABLE IF NOT EXISTS " + dialect.quoteQualified(t.name) + " (";
    for (size_t c = 0; c < t.columns.size(); ++c) {
      const auto& col = t.columns[c];
      sql += (c ? ", " : "") + dialect.quote(col.name) + " " + dialect.type(col.type) +
             (col.not_null ? " NOT NULL" : "");
    }
    sql += ", PRIMARY KEY (";
    for (size_t i = 0; i < t.keys.size(); ++i)
      sql += (i ? ", " : "") + dialect.quote(t.columns[t.keys[i]].name);
    sql += ")";
    if (!t.index_column.empty() && dialect.connector() == Connector::kMySql)
      sql += ", INDEX (" + dialect.quote(t.index_column) + ")";
    sql += ")" + dialect.tableOptions();
    exec(sql);
    if (!t.index_column.empty() && dialect.connector() != Connector::kMySql) {
      const size_t dot = t.name.find('.');
      const std::string bare = dot == std::string::npos ? t.name : t.name.substr(dot + 1);
      std::string index = bare.substr(0, 63 - 13) + "_ferry_parent";
      exec("CREATE INDEX IF NOT EXISTS " + dialect.quote(index) + " ON " +
           dialect.quoteQualified(t.name) + " (" + dialect.quote(t.index_column) + ")");
    }
  }

  void checkSchema() {
    for (TableDef* t : tables()) {
      auto cols = existingColumns(*t);
      if (cols.empty()) {
        if (!create_tables)
          throw SchemaProblem{"table '" + t->name + "' does not exist in the " +
                              dialect.name() + " database, and create_tables = false"};
        createTable(*t);
        host.info("created table " + t->name);
        cols = existingColumns(*t);
      }
      for (const auto& c : t->columns)
        if (!cols.count(c.name))
          throw SchemaProblem{"table '" + t->name + "' has no column '" + c.name +
                              "'; add it (" + dialect.type(c.type) +
                              ") or let the sink create the table"};
      UpsertSpec& u = t->upsert;
      const std::string guard_name = u.guard.empty() ? "" : u.guard;
      u.table = dialect.quoteQualified(t->name);
      u.columns.clear();
      u.casts.clear();
      for (const auto& c : t->columns) {
        u.columns.push_back(dialect.quote(c.name));
        std::string cast = cols[c.name];
        // Text needs no cast (and a domain or enum name would need quoting).
        if (dialect.connector() != Connector::kPostgres || cast == "text") cast.clear();
        u.casts.push_back(cast);
      }
      u.keys = t->keys;
      if (!guard_name.empty() && guard_name.front() != '"' && guard_name.front() != '`')
        u.guard = dialect.quote(guard_name);
    }
  }

  void ensureSession() {
    if (session) return;
    connect();
    if (sink_id.empty()) {
      auto id = host.state("sql_sink_id");
      if (id && !id->empty()) {
        sink_id = *id;
      } else {
        sink_id = "sink-" + hex16();
        host.setState("sql_sink_id", sink_id);
      }
    }
  }

  // --------------------------------------------------------------------------------------------
  // Writing
  // --------------------------------------------------------------------------------------------

  static Value text(std::string_view s) { return Value{false, std::string(s)}; }
  static Value number(int64_t v) { return Value{false, std::to_string(v)}; }

  // What each bound value adds to a statement besides its bytes (type, length, placeholder).
  static constexpr size_t kValueOverhead = 16;

  // Calls run(first, n) for consecutive ranges of the rows in `values` (`per_row` values each,
  // row-major) such that a statement of `fixed` + n * per_row values stays within the dialect's
  // parameter limit and `statement_bytes`. A row above the byte limit goes alone.
  template <class Run>
  void inChunks(const std::vector<Value>& values, size_t per_row, size_t fixed, Run run) {
    const size_t rows = values.size() / per_row;
    const size_t max_rows = std::max<size_t>(1, (dialect.maxParams() - fixed) / per_row);
    size_t first = 0, n = 0, bytes = 0;
    for (size_t r = 0; r < rows; ++r) {
      size_t row_bytes = 0;
      for (size_t i = r * per_row; i < (r + 1) * per_row; ++i)
        row_bytes += values[i].text.size() + kValueOverhead;
      if (n > 0 && (n == max_rows || bytes + row_bytes > statement_bytes)) {
        run(first, n);
        first = r;
        n = 0;
        bytes = 0;
      }
      ++n;
      bytes += row_bytes;
    }
    if (n > 0) run(first, n);
  }

  static void bindValues(Statement& st, const Value* values, size_t count) {
    for (size_t i = 0; i < count; ++i) {
      if (values[i].null)
        st, bind(Poco::Nullable<std::string>());
      else
        st, bind(values[i].text);
    }
  }

  // Runs `st`, whose SQL is `sql`. A failure is thrown as DbFailure with the database's message
  // about `what` (a short description of the statement), never the statement itself.
  void run(Statement& st, const std::string& sql, const std::string& what) {
    try {
      st.execute();
    } catch (const Poco::Exception& e) {
      DbError error = dialect.classify(e);
      error.message = statementError(error.message, sql, what);
      throw DbFailure{error};
    }
  }

  void run(const std::string& sql, const Value* values, size_t count, const std::string& what) {
    Statement st(*session);
    st << sql;
    bindValues(st, values, count);
    run(st, sql, what);
  }

  static std::string rowsText(size_t n, const char* what) {
    return "(" + std::to_string(n) + " " + what + (n == 1 ? ")" : "s)");
  }

  // Upserts the rows in `values` (row-major, spec.columns.size() values each) in statements
  // within the dialect's limits, all in the open transaction.
  void upsert(const UpsertSpec& spec, const std::vector<Value>& values) {
    const size_t cols = spec.columns.size();
    inChunks(values, cols, 0, [&](size_t first, size_t n) {
      run(upsertSql(dialect, spec, n), values.data() + first * cols, n * cols,
          "INSERT INTO " + spec.table + " … (" + std::to_string(cols) + " columns × " +
              std::to_string(n) + (n == 1 ? " row)" : " rows)"));
    });
  }

  std::string ph(size_t n) const { return dialect.placeholder(n); }

  int64_t readOffset() {
    int64_t seq = 0;
    Statement st(*session);
    st << "SELECT " + dialect.quote("sequence") + " FROM " + offsets_table.upsert.table +
              " WHERE " + dialect.quote("sink") + " = " + ph(1),
        into(seq), bind(sink_id);
    st.execute();
    return seq;
  }

  std::set<int64_t> readRefused(int64_t up_to) {
    std::vector<int64_t> seqs;
    Statement st(*session);
    st << "SELECT " + dialect.quote("sequence") + " FROM " + refused_table.upsert.table +
              " WHERE " + dialect.quote("sink") + " = " + ph(1) + " AND " +
              dialect.quote("sequence") + " <= " + ph(2),
        into(seqs), bind(sink_id), bind(up_to);
    st.execute();
    return {seqs.begin(), seqs.end()};
  }

  // The newest version written to the rows table of each parent in `parents`.
  std::unordered_map<std::string, int64_t> readVersions(const std::vector<std::string>& parents) {
    std::unordered_map<std::string, int64_t> out;
    std::vector<Value> keys;
    for (const auto& p : parents) keys.push_back(text(p));
    inChunks(keys, 1, 1, [&](size_t first, size_t n) {
      std::vector<std::string> names;
      std::vector<int64_t> ns;
      std::string sql = "SELECT " + dialect.quote("parent") + ", " + dialect.quote("version_ns") +
                        " FROM " + versions_table.upsert.table + " WHERE " +
                        dialect.quote("tbl") + " = " + ph(1) + " AND " +
                        dialect.quote("parent") + " IN (";
      for (size_t i = 0; i < n; ++i) sql += (i ? ", " : "") + ph(i + 2);
      sql += ")";
      Statement st(*session);
      st << sql, into(names), into(ns), bind(rows_table.name);
      bindValues(st, keys.data() + first, n);
      run(st, sql, "SELECT … FROM " + versions_table.upsert.table + " … " + rowsText(n, "record"));
      for (size_t i = 0; i < names.size() && i < ns.size(); ++i) out[names[i]] = ns[i];
    });
    return out;
  }

  void appendCells(std::vector<Value>& out, const Rows& cells, size_t row) {
    for (size_t c = 0; c < cells.columns(); ++c) {
      const auto& cell = cells.at(row, c);
      if (cell.kind == CellKind::kEmpty)
        out.push_back(Value{true, {}});
      else
        out.push_back(text(cell.text));
    }
  }

  // Writes `events` (already filtered and mapped) in the open transaction.
  void writeEvents(const std::vector<Prepared>& events, const std::string& written_at) {
    if (events.empty()) return;
    // The newest event per record: one statement must not touch a row twice (PostgreSQL refuses
    // that), and an older event of the same batch would lose to it anyway.
    std::unordered_map<std::string, size_t> newest;
    for (size_t i = 0; i < events.size(); ++i) {
      auto [it, inserted] = newest.emplace(events[i].parent, i);
      if (!inserted && events[i].ns > events[it->second].ns) it->second = i;
    }
    std::vector<size_t> winners;
    for (size_t i = 0; i < events.size(); ++i)
      if (newest[events[i].parent] == i) winners.push_back(i);

    std::vector<Value> v;
    auto eventValues = [&](const Prepared& p) {
      const ferry::Event& e = p.e;
      v.push_back(text(e.source()));
      v.push_back(text(e.entity()));
      v.push_back(text(e.key()));
      v.push_back(text(e.version()));
      v.push_back(number(p.ns));
      v.push_back(!e.previous().empty() ? text(e.previous()) : Value{true, {}});
      v.push_back(number(e.echo() ? 1 : 0));
      v.push_back(text(e.body()));
      v.push_back(number(e.sequence()));
      v.push_back(text(written_at));
    };
    if (changes) {
      v.clear();
      for (size_t i : winners) eventValues(events[i]);
      upsert(changes_table.upsert, v);
    }
    if (history) {
      v.clear();
      std::set<std::pair<std::string, int64_t>> once;
      for (const auto& p : events)
        if (once.emplace(p.parent, p.ns).second) eventValues(p);
      upsert(history_table.upsert, v);
    }
    if (head_mapper) {
      v.clear();
      for (size_t i : winners) {
        const Prepared& p = events[i];
        for (size_t r = p.head_begin; r < p.head_end; ++r) {
          appendCells(v, head_cells, r);
          v.push_back(text(p.e.version()));
          v.push_back(number(p.ns));
          v.push_back(number(p.e.sequence()));
        }
      }
      upsert(head_table.upsert, v);
    }
    if (rows_mapper) writeRows(events, winners);
  }

  void writeRows(const std::vector<Prepared>& events, const std::vector<size_t>& candidates) {
    std::vector<std::string> parents;
    for (size_t i : candidates) parents.push_back(events[i].parent);
    auto stored = readVersions(parents);
    std::vector<size_t> winners;
    for (size_t i : candidates) {
      auto it = stored.find(events[i].parent);
      if (it == stored.end() || events[i].ns > it->second) winners.push_back(i);
    }
    if (winners.empty()) return;

    std::vector<Value> v;
    for (size_t i : winners) {
      const Prepared& p = events[i];
      v.push_back(text(rows_table.name));
      v.push_back(text(p.parent));
      v.push_back(text(p.e.version()));
      v.push_back(number(p.ns));
      v.push_back(number(p.e.sequence()));
    }
    upsert(versions_table.upsert, v);

    v.clear();
    for (size_t i : winners) {
      const Prepared& p = events[i];
      for (size_t r = p.rows_begin; r < p.rows_end; ++r) {
        appendCells(v, rows_cells, r);
        v.push_back(text(p.parent));
        v.push_back(text(p.e.version()));
        v.push_back(number(p.ns));
        v.push_back(number(p.e.sequence()));
        if (flag_removed) v.push_back(number(0));
      }
    }
    upsert(rows_table.upsert, v);

    // Rows of these records that the new version no longer has are older than it. ferry_versions
    // now holds each one's new version: compare with it, so that a statement needs one value per
    // record and finds the rows through the ferry_parent index (an OR of (parent, version) pairs
    // made PostgreSQL plan and scan for every pair).
    const std::string parent = dialect.quote("ferry_parent");
    const std::string& versions = versions_table.upsert.table;
    const std::string newest = "(SELECT v." + dialect.quote("version_ns") + " FROM " + versions +
                               " v WHERE v." + dialect.quote("tbl") + " = " + ph(1) + " AND v." +
                               dialect.quote("parent") + " = " + rows_table.upsert.table + "." +
                               parent + ")";
    v.clear();
    for (size_t i : winners) v.push_back(text(events[i].parent));
    const std::string verb =
        flag_removed ? "UPDATE " + rows_table.upsert.table : "DELETE FROM " + rows_table.upsert.table;
    inChunks(v, 1, 1, [&](size_t first, size_t n) {
      std::string sql = verb;
      if (flag_removed) {
        const std::string removed = dialect.quote("ferry_removed");
        sql += " SET " + removed + " = 1 WHERE " + removed + " = 0 AND ";
      } else {
        sql += " WHERE ";
      }
      sql += dialect.quote("ferry_version_ns") + " < " + newest + " AND " + parent + " IN (";
      for (size_t i = 0; i < n; ++i) sql += (i ? ", " : "") + ph(i + 2);
      sql += ")";
      std::vector<Value> args{text(rows_table.name)};
      args.insert(args.end(), v.begin() + static_cast<long>(first),
                  v.begin() + static_cast<long>(first + n));
      run(sql, args.data(), args.size(), verb + " … " + rowsText(n, "record"));
    });
  }

  void writeBookkeeping(int64_t offset, const std::vector<int64_t>& replayed,
                        std::optional<std::pair<int64_t, std::string>> refused,
                        const std::string& now_text) {
    upsert(offsets_table.upsert, {text(sink_id), number(offset), text(now_text)});
    std::vector<Value> seqs;
    for (int64_t s : replayed) seqs.push_back(number(s));
    inChunks(seqs, 1, 1, [&](size_t first, size_t n) {
      std::string sql = "DELETE FROM " + refused_table.upsert.table + " WHERE " +
                        dialect.quote("sink") + " = " + ph(1) + " AND " +
                        dialect.quote("sequence") + " IN (";
      for (size_t i = 0; i < n; ++i) sql += (i ? ", " : "") + ph(i + 2);
      std::vector<Value> args{text(sink_id)};
      args.insert(args.end(), seqs.begin() + static_cast<long>(first),
                  seqs.begin() + static_cast<long>(first + n));
      run(sql + ")", args.data(), args.size(),
          "DELETE FROM " + refused_table.upsert.table + " … " + rowsText(n, "event"));
    });
    if (refused) {
      std::string reason = refused->second.substr(0, 1000);
      upsert(refused_table.upsert,
             {text(sink_id), number(refused->first), text(reason), text(now_text)});
    }
  }

  // One transaction: `events`, the offset, the refusal. Commits, or rolls back when `trial`.
  // Throws DbFailure.
  void transaction(const std::vector<Prepared>& events, int64_t offset,
                   const std::vector<int64_t>& replayed,
                   std::optional<std::pair<int64_t, std::string>> refused, bool trial) {
    const std::string now_text = ferry::instant::nowText();
    // A refused row can cost the connection (MySQL drops it after a too large packet): the trial
    // transactions of isolate() then start on a new one.
    ensureSession();
    auto rollback = [&] {
      try {
        exec("ROLLBACK");
      } catch (const Poco::Exception&) {
        session.reset();  // the connection is unusable: start over with a new one
      }
    };
    try {
      exec(dialect.begin());
      try {
        writeEvents(events, now_text);
        if (!trial) writeBookkeeping(offset, replayed, refused, now_text);
        exec(trial ? "ROLLBACK" : "COMMIT");
      } catch (const Poco::Exception&) {
        rollback();
        throw;
      } catch (const DbFailure& f) {
        rollback();
        if (f.error.failure != Failure::kData) session.reset();
        throw;
      }
    } catch (const Poco::Exception& e) {
      DbError err = dialect.classify(e);
      if (err.failure != Failure::kData) session.reset();
      throw DbFailure{err};
    }
  }

  ferry::WriteOutcome write(const ferry::Batch& batch) {
    try {
      return writeOrThrow(batch);
    } catch (const DbFailure& f) {
      session.reset();
      const std::string m = std::string(dialect.name()) + ": " + f.error.message;
      if (f.error.failure == Failure::kAuth) return ferry::WriteOutcome::auth(m);
      return ferry::WriteOutcome::retry(0, m);
    } catch (const SchemaProblem& p) {
      session.reset();
      return ferry::WriteOutcome::stop(p.message);
    } catch (const Poco::Exception& e) {
      session.reset();
      return ferry::WriteOutcome::retry(0, std::string(dialect.name()) + ": " + e.displayText());
    }
  }

  ferry::WriteOutcome writeOrThrow(const ferry::Batch& batch) {
    ensureSession();
    int64_t offset = 0;
    std::set<int64_t> refused;
    try {
      offset = readOffset();
      if (!batch.empty() && batch.front().sequence() <= offset) refused = readRefused(offset);
    } catch (const Poco::Exception& e) {
      session.reset();
      throw DbFailure{dialect.classify(e)};
    }

    // Map what is new to the target; the first event that cannot be mapped ends the batch.
    std::vector<Prepared> events;
    std::vector<int64_t> replayed;
    head_cells.clear();
    rows_cells.clear();
    size_t cut = batch.size();
    std::string cut_reason;
    int64_t last = offset;
    size_t skipped = 0;
    for (size_t i = 0; i < batch.size(); ++i) {
      const ferry::Event e = batch[i];
      const bool again = e.sequence() <= offset;
      if (again && !refused.count(e.sequence())) {
        ++skipped;
        continue;
      }
      Prepared p{i, e, 0, {}, 0, 0, 0, 0};
      auto ns = ferry::instant::parseNs(e.version());
      std::string error;
      if (!ns) {
        error = "version '" + std::string(e.version()) + "' is not an instant";
      } else {
        p.ns = *ns;
        p.parent = std::string(e.source()) + "/" + std::string(e.entity()) + "/" + std::string(e.key());
        p.head_begin = head_cells.size();
        if (head_mapper && !head_mapper->map(e, head_cells, error)) error = "table: " + error;
        p.head_end = head_cells.size();
        p.rows_begin = rows_cells.size();
        if (error.empty() && rows_mapper && !rows_mapper->map(e, rows_cells, error))
          error = "rows_table: " + error;
        p.rows_end = rows_cells.size();
      }
      if (!error.empty()) {
        cut = i;
        cut_reason = "event " + std::string(e.idempotencyKey()) + " (sequence " +
                     std::to_string(e.sequence()) + "): " + error;
        break;
      }
      if (again) replayed.push_back(e.sequence());
      last = std::max(last, e.sequence());
      events.push_back(std::move(p));
    }
    if (skipped > 0) {
      host.info("skipped " + std::to_string(skipped) +
                " event(s) the database already has (journal offset " + std::to_string(offset) +
                " in ferry_offsets)");
      host.count("events_skipped_total", static_cast<double>(skipped));
    }

    std::optional<std::pair<int64_t, std::string>> refusal;
    if (cut < batch.size()) refusal = std::make_pair(batch[cut].sequence(), cut_reason);
    if (events.empty() && !refusal) return ferry::WriteOutcome::ok();

    try {
      transaction(events, last, replayed, refusal, false);
    } catch (const DbFailure& f) {
      if (f.error.failure != Failure::kData) throw;
      return isolate(batch, events, offset, replayed, f.error);
    }
    host.count("events_written_total", static_cast<double>(events.size()));
    if (refusal) return ferry::WriteOutcome::refuse(cut, cut_reason);
    return ferry::WriteOutcome::ok();
  }

  // The batch failed on a row the database refuses: find the first event whose row it refuses
  // (binary search over prefixes, each tried in a transaction that is rolled back), commit the
  // events before it, and answer FATAL for it.
  ferry::WriteOutcome isolate(const ferry::Batch& batch,
                              const std::vector<Prepared>& events, int64_t offset,
                              const std::vector<int64_t>& replayed, DbError error) {
    size_t good = 0, bad = events.size();  // a prefix of `good` events works, of `bad` fails
    while (bad - good > 1) {
      const size_t mid = good + (bad - good) / 2;
      std::vector<Prepared> prefix(events.begin(), events.begin() + static_cast<long>(mid));
      try {
        transaction(prefix, 0, {}, std::nullopt, true);
        good = mid;
      } catch (const DbFailure& f) {
        if (f.error.failure != Failure::kData) throw;
        bad = mid;
        error = f.error;
      }
    }
    if (bad == events.size() && bad > 1) {
      // The full batch failed but no shorter prefix was tried to fail: make sure the message is
      // the refused event's own.
      try {
        std::vector<Prepared> one(events.begin() + static_cast<long>(bad - 1),
                                  events.begin() + static_cast<long>(bad));
        transaction(one, 0, {}, std::nullopt, true);
      } catch (const DbFailure& f) {
        if (f.error.failure == Failure::kData) error = f.error;
      }
    }
    const Prepared& refused = events[bad - 1];
    const std::string reason = "event " + std::string(refused.e.idempotencyKey()) +
                               " (sequence " + std::to_string(refused.e.sequence()) +
                               ") refused by the database: " + error.message;
    std::vector<Prepared> prefix(events.begin(), events.begin() + static_cast<long>(bad - 1));
    int64_t last = offset;
    std::vector<int64_t> replayed_prefix;
    for (const auto& p : prefix) {
      last = std::max(last, p.e.sequence());
      if (std::find(replayed.begin(), replayed.end(), p.e.sequence()) != replayed.end())
        replayed_prefix.push_back(p.e.sequence());
    }
    transaction(prefix, last, replayed_prefix, std::make_pair(refused.e.sequence(), reason), false);
    host.count("events_written_total", static_cast<double>(prefix.size()));
    host.count("events_refused_total");
    (void)batch;
    return ferry::WriteOutcome::refuse(refused.index, reason);
  }
};

SqlSink::SqlSink(ferry::Host host, const ferry::Options& options)
    : ferry::Sink(host), impl_(std::make_unique<Impl>(host, options)) {}

SqlSink::~SqlSink() = default;

ferry::WriteOutcome SqlSink::write(const ferry::Batch& batch) {
  return impl_->write(batch);
}

void SqlSink::check() {
  try {
    impl_->session.reset();
    impl_->ensureSession();
  } catch (const DbFailure& f) {
    if (f.error.failure == Failure::kAuth) throw ferry::AuthError(f.error.message);
    throw ferry::Retry(std::string(impl_->dialect.name()) + ": " + f.error.message);
  } catch (const SchemaProblem& p) {
    throw ferry::Fatal(p.message);
  }
}

}  // namespace ferry::sql
