// What differs between SQLite, PostgreSQL and MySQL/MariaDB for sink_sql: identifier quoting,
// placeholders, column types, the upsert with a version guard, and which errors are transient.
#pragma once

#include <Poco/Exception.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ferry::sql {

enum class Connector { kSqlite, kPostgres, kMySql };

// How the database failed, which decides the sink's answer.
enum class Failure {
  kTransient,  // connection lost, deadlock, serialization failure, lock timeout: RETRY, reconnect
  kData,       // the database refused a row (constraint, type, length): FATAL for that event
  kAuth,       // credentials refused: the sink stops
  kOther,      // anything else (missing table, permissions): RETRY with the message
};

struct DbError {
  Failure failure = Failure::kOther;
  std::string state;  // SQLSTATE when known
  std::string message;
};

// The type of a column the sink creates.
enum class ColType { kKeyText, kParentText, kText, kJson, kBigInt, kFlag };

class Dialect {
 public:
  explicit Dialect(Connector c) : c_(c) {}
  Connector connector() const { return c_; }
  const char* name() const;

  // Checks that `name` can be quoted safely as one identifier (or schema.table when
  // `qualified`); returns an error text naming the problem, or "" when it is fine.
  std::string refuse(std::string_view name, bool qualified) const;
  // The quoted identifier ("a""b" style is never needed: names with quote characters are refused).
  std::string quote(std::string_view name) const;
  // schema.table quoted part by part.
  std::string quoteQualified(std::string_view name) const;

  // The n-th placeholder (1-based).
  std::string placeholder(size_t n) const;
  std::string type(ColType t) const;
  // Trailing clause of CREATE TABLE (MySQL: engine and binary collation).
  std::string tableOptions() const;
  std::string begin() const;

  // The most values bound to one statement. PostgreSQL's protocol allows 65535, but libpq 15
  // (Debian 12) takes a ParameterDescription message over 30,000 bytes (4 bytes a parameter) for
  // lost synchronization, so a statement of more than 7,498 parameters can never run there.
  // MySQL/MariaDB allow 65535 placeholders; SQLite 32766 (SQLITE_MAX_VARIABLE_NUMBER since 3.32;
  // Debian builds 250000).
  size_t maxParams() const { return c_ == Connector::kPostgres ? 7000 : 30000; }
  // The most bytes of values bound to one statement when the server sets no smaller limit
  // (MySQL's max_allowed_packet, read at connect): bounds a statement's memory.
  static constexpr size_t kMaxStatementBytes = 64u << 20;

  DbError classify(const Poco::Exception& e) const;

 private:
  Connector c_;
};

// A SQL statement under construction with its bound values (NULL for an empty optional).
struct Value {
  bool null = false;
  std::string text;
};

// INSERT … VALUES (…), (…) … with an upsert clause. `guard` is the column whose value must grow
// for a row to be replaced (an older or equal version changes nothing); empty: insert only,
// existing rows stay as they are.
struct UpsertSpec {
  std::string table;                // quoted, maybe schema-qualified
  std::vector<std::string> columns;  // quoted
  std::vector<std::string> casts;   // PostgreSQL: the type each value is cast to ("" for none)
  std::vector<size_t> keys;         // indexes into columns
  std::string guard;                // quoted column, or ""
};

// The SQL of an upsert of `rows` rows.
std::string upsertSql(const Dialect& d, const UpsertSpec& spec, size_t rows);

// A database's message about a failed statement, fit for `ferry status`, logs and dead letters:
// the statement's text (which drivers append, thousands of placeholders long) is replaced by
// `what`, a short description such as `INSERT INTO "orders" … (19 columns × 368 rows)`, and the
// rest is cut to its beginning and end when it is still long (a row's values in a DETAIL).
std::string statementError(const std::string& message, const std::string& sql,
                           const std::string& what);

}  // namespace ferry::sql
