#include "Dialect.h"

#include <cctype>

namespace ferry::sql {

const char* Dialect::name() const {
  switch (c_) {
    case Connector::kSqlite: return "sqlite";
    case Connector::kPostgres: return "postgresql";
    case Connector::kMySql: return "mysql";
  }
  return "?";
}

std::string Dialect::refuse(std::string_view name, bool qualified) const {
  if (qualified) {
    const size_t dot = name.find('.');
    if (dot != std::string_view::npos) {
      if (c_ == Connector::kSqlite)
        return "contains '.': on sqlite a table name cannot name a schema";
      std::string e = refuse(name.substr(0, dot), false);
      if (e.empty()) e = refuse(name.substr(dot + 1), false);
      return e;
    }
  }
  if (name.empty()) return "is empty";
  // PostgreSQL truncates longer names silently (NAMEDATALEN 64), MySQL refuses past 64.
  if (name.size() > 63) return "is longer than 63 bytes";
  if (name.front() == ' ' || name.back() == ' ') return "starts or ends with a blank";
  for (unsigned char ch : name) {
    if (ch < 0x20 || ch == 0x7f) return "contains a control character";
    if (ch == '"' || ch == '`')
      return std::string("contains the quote character ") + static_cast<char>(ch);
    if (ch == '.' ) return "contains '.'";
  }
  return "";
}

std::string Dialect::quote(std::string_view name) const {
  const char q = c_ == Connector::kMySql ? '`' : '"';
  std::string out;
  out.reserve(name.size() + 2);
  out += q;
  out += name;  // refuse() rejected quote characters: nothing to double
  out += q;
  return out;
}

std::string Dialect::quoteQualified(std::string_view name) const {
  const size_t dot = name.find('.');
  if (dot == std::string_view::npos || c_ == Connector::kSqlite) return quote(name);
  return quote(name.substr(0, dot)) + "." + quote(name.substr(dot + 1));
}

std::string Dialect::placeholder(size_t n) const {
  return c_ == Connector::kPostgres ? "$" + std::to_string(n) : "?";
}

std::string Dialect::type(ColType t) const {
  switch (c_) {
    case Connector::kSqlite:
      switch (t) {
        case ColType::kBigInt:
        case ColType::kFlag: return "INTEGER";
        default: return "TEXT";
      }
    case Connector::kPostgres:
      switch (t) {
        case ColType::kJson: return "JSONB";
        case ColType::kBigInt: return "BIGINT";
        case ColType::kFlag: return "SMALLINT";
        default: return "TEXT";
      }
    case Connector::kMySql:
      // Keys are VARCHAR: InnoDB indexes at most 3072 bytes (768 utf8mb4 characters) per key.
      switch (t) {
        case ColType::kKeyText: return "VARCHAR(191)";
        case ColType::kParentText: return "VARCHAR(512)";
        case ColType::kJson: return "JSON";
        case ColType::kBigInt: return "BIGINT";
        case ColType::kFlag: return "SMALLINT";
        default: return "LONGTEXT";
      }
  }
  return "TEXT";
}

std::string Dialect::tableOptions() const {
  // Binary, no-pad collation: keys compare byte for byte, as in the other two databases.
  return c_ == Connector::kMySql
             ? " ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin"
             : "";
}

std::string Dialect::begin() const {
  // SQLite: take the write lock at once, so that a second writer waits (busy_timeout) at BEGIN
  // instead of failing half-way through the batch.
  switch (c_) {
    case Connector::kSqlite: return "BEGIN IMMEDIATE";
    case Connector::kPostgres: return "BEGIN";
    case Connector::kMySql: return "START TRANSACTION";
  }
  return "BEGIN";
}

namespace {

// The text after `marker` up to the next blank or tab, e.g. "State: 22001" → "22001".
std::string after(const std::string& text, std::string_view marker, size_t max_len) {
  const size_t at = text.find(marker);
  if (at == std::string::npos) return "";
  size_t pos = at + marker.size();
  while (pos < text.size() && text[pos] == ' ') ++pos;
  std::string out;
  while (pos < text.size() && out.size() < max_len && std::isalnum(static_cast<unsigned char>(text[pos])))
    out += text[pos++];
  return out;
}

bool contains(const std::string& text, std::string_view what) {
  return text.find(what) != std::string::npos;
}

Failure fromSqlState(const std::string& s) {
  if (s.size() != 5) return Failure::kOther;
  const std::string cls = s.substr(0, 2);
  if (cls == "08" || cls == "40" || cls == "53" || cls == "57" || cls == "58" || s == "55P03" ||
      s == "HYT00" || s == "HYT01")
    return Failure::kTransient;
  if (cls == "22" || cls == "23" || cls == "21") return Failure::kData;
  if (cls == "28") return Failure::kAuth;
  return Failure::kOther;
}

}  // namespace

DbError Dialect::classify(const Poco::Exception& e) const {
  DbError out;
  out.message = e.displayText();
  const std::string cls = e.className();
  switch (c_) {
    case Connector::kSqlite:
      if (contains(cls, "ConstraintViolation") || contains(cls, "DataTypeMismatch") ||
          contains(cls, "RowTooBig"))
        out.failure = Failure::kData;
      else if (contains(cls, "Locked") || contains(cls, "Busy") || contains(cls, "IOError") ||
               contains(cls, "CantOpen") || contains(cls, "DBAccessDenied") ||
               contains(cls, "NoMemory") || contains(cls, "Interrupt"))
        out.failure = Failure::kTransient;
      else
        out.failure = Failure::kOther;
      return out;
    case Connector::kPostgres: {
      out.state = after(out.message, "State:", 5);
      out.failure = fromSqlState(out.state);
      if (out.state.empty()) {
        // No SQLSTATE: libpq lost the connection or never made one.
        if (contains(out.message, "authentication failed") ||
            (contains(out.message, "role \"") && contains(out.message, "does not exist")))
          out.failure = Failure::kAuth;
        else
          out.failure = Failure::kTransient;
      }
      return out;
    }
    case Connector::kMySql: {
      out.state = after(out.message, "sqlstate]:", 5);
      std::string no = after(out.message, "errno]:", 6);
      out.failure = fromSqlState(out.state);
      const int code = no.empty() ? 0 : std::stoi(no);
      switch (code) {
        case 1213:  // deadlock
        case 1205:  // lock wait timeout
        case 2002:
        case 2003:
        case 2006:  // server has gone away
        case 2013:  // lost connection
        case 1053:  // server shutdown
        case 1927:  // connection killed
          out.failure = Failure::kTransient;
          break;
        case 1045:  // access denied
        case 1044:
          out.failure = Failure::kAuth;
          break;
        case 1048:  // column cannot be null
        case 1062:  // duplicate entry
        case 1264:  // out of range
        case 1265:  // data truncated
        case 1292:  // incorrect value
        case 1366:  // incorrect integer/string value
        case 1406:  // data too long
        case 3140:  // invalid JSON
        case 4025:  // CHECK constraint (MariaDB's JSON is LONGTEXT CHECK (json_valid(…)))
        case 1452:  // foreign key
        case 1451:
          out.failure = Failure::kData;
          break;
        default:
          break;
      }
      if (code == 0 && out.state.empty()) {
        if (contains(out.message, "Access denied"))
          out.failure = Failure::kAuth;
        else if (contains(cls, "Connection") || contains(out.message, "connect") ||
                 contains(out.message, "gone away") || contains(out.message, "Lost connection"))
          out.failure = Failure::kTransient;
      }
      return out;
    }
  }
  return out;
}

std::string upsertSql(const Dialect& d, const UpsertSpec& spec, size_t rows) {
  const bool pg = d.connector() == Connector::kPostgres;
  const bool my = d.connector() == Connector::kMySql;
  std::string sql = "INSERT INTO " + spec.table + (my ? "" : " AS cur") + " (";
  for (size_t c = 0; c < spec.columns.size(); ++c) sql += (c ? ", " : "") + spec.columns[c];
  sql += ") VALUES ";
  size_t n = 0;
  for (size_t r = 0; r < rows; ++r) {
    sql += r ? ", (" : "(";
    for (size_t c = 0; c < spec.columns.size(); ++c) {
      if (c) sql += ", ";
      sql += d.placeholder(++n);
      // A multi-row VALUES list types an untyped parameter as text, which then does not fit a
      // BIGINT or JSONB column: cast to the column's type (without length: a VARCHAR(n) cast
      // would cut a long value silently instead of refusing it).
      if (pg && !spec.casts[c].empty()) sql += "::" + spec.casts[c];
    }
    sql += ")";
  }
  auto isKey = [&](size_t c) {
    for (size_t k : spec.keys)
      if (k == c) return true;
    return false;
  };
  if (my) {
    sql += " ON DUPLICATE KEY UPDATE ";
    if (spec.guard.empty()) {
      const std::string& k = spec.columns[spec.keys.front()];
      return sql + k + " = " + k;
    }
    // Assignments run left to right and see the columns already assigned: the guard column
    // goes last, so that every IF() compares with the stored version.
    const std::string cond = "VALUES(" + spec.guard + ") > " + spec.guard;
    bool first = true;
    for (size_t c = 0; c < spec.columns.size(); ++c) {
      if (isKey(c) || spec.columns[c] == spec.guard) continue;
      sql += (first ? "" : ", ") + spec.columns[c] + " = IF(" + cond + ", VALUES(" +
             spec.columns[c] + "), " + spec.columns[c] + ")";
      first = false;
    }
    sql += (first ? "" : ", ") + spec.guard + " = IF(" + cond + ", VALUES(" + spec.guard + "), " +
           spec.guard + ")";
    return sql;
  }
  sql += " ON CONFLICT (";
  for (size_t i = 0; i < spec.keys.size(); ++i) sql += (i ? ", " : "") + spec.columns[spec.keys[i]];
  sql += ")";
  if (spec.guard.empty()) return sql + " DO NOTHING";
  sql += " DO UPDATE SET ";
  bool first = true;
  for (size_t c = 0; c < spec.columns.size(); ++c) {
    if (isKey(c)) continue;
    sql += (first ? "" : ", ") + spec.columns[c] + " = excluded." + spec.columns[c];
    first = false;
  }
  return sql + " WHERE cur." + spec.guard + " < excluded." + spec.guard;
}

std::string statementError(const std::string& message, const std::string& sql,
                           const std::string& what) {
  std::string rest = message;
  // The statement is in the message whole, or (some drivers) cut: remove from its beginning up to
  // its length.
  const std::string head = sql.substr(0, 40);
  for (size_t at; !head.empty() && (at = rest.find(head)) != std::string::npos;)
    rest.erase(at, std::min(sql.size(), rest.size() - at));
  for (char& ch : rest)
    if (ch == '\n' || ch == '\r' || ch == '\t') ch = ' ';
  while (!rest.empty() && (rest.back() == ' ' || rest.back() == ':')) rest.pop_back();
  // Cut at character boundaries: the message goes into JSON.
  auto boundary = [&](size_t at) {
    while (at > 0 && at < rest.size() && (static_cast<unsigned char>(rest[at]) & 0xc0) == 0x80)
      --at;
    return at;
  };
  const size_t keep_front = 400, keep_back = 150;
  if (rest.size() > keep_front + keep_back + 10)
    rest = rest.substr(0, boundary(keep_front)) + " … " +
           rest.substr(boundary(rest.size() - keep_back));
  return what + ": " + rest;
}

}  // namespace ferry::sql
