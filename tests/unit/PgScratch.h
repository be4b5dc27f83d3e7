// A private schema in the throwaway PostgreSQL that scripts/test starts (tests/plugins/sql/
// servers.sh sets FERRY_TEST_PG to its libpq keyword string): each test gets an empty schema and
// the journal URL that points into it, and the schema is dropped afterwards. Without
// FERRY_TEST_PG, or with the server unreachable, the test FAILS (never skips): run it with
// scripts/test, or start the servers as tests/plugins/sql/servers.sh describes.
#pragma once

#include <libpq-fe.h>

#include <map>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace ferry::test {

class PgScratch {
 public:
  // Throws std::runtime_error with the fix when the server is not there.
  PgScratch() {
    const char* base = std::getenv("FERRY_TEST_PG");
    if (base == nullptr || *base == '\0')
      throw std::runtime_error(
          "FERRY_TEST_PG is not set: run the tests with scripts/test, which starts a PostgreSQL "
          "server and sets it (or tests/plugins/sql/servers.sh start DIR; . DIR/env)");
    admin_ = base;
    std::map<std::string, std::string> parts;
    std::istringstream in(admin_);
    std::string item;
    while (in >> item) {
      const auto eq = item.find('=');
      if (eq != std::string::npos) parts[item.substr(0, eq)] = item.substr(eq + 1);
    }
    static std::mt19937_64 gen(std::random_device{}());
    schema_ = "j_";
    for (int i = 0; i < 12; ++i) schema_ += "abcdefghijklmnopqrstuvwxyz0123456789"[gen() % 36];
    server_ = "postgresql://" + parts["user"] + "@" + parts["host"] + ":" + parts["port"] + "/" +
              parts["dbname"];
    url_ = server_ + "?options=-csearch_path%3D" + schema_;
    exec("CREATE SCHEMA " + schema_);
  }
  ~PgScratch() {
    try {
      exec("DROP SCHEMA " + schema_ + " CASCADE");
    } catch (...) {
    }
  }
  PgScratch(const PgScratch&) = delete;
  PgScratch& operator=(const PgScratch&) = delete;

  // The journal URL: the server, with the schema as search_path.
  const std::string& url() const { return url_; }
  // The server's URL without the schema (the database's default schema).
  const std::string& server() const { return server_; }
  const std::string& schema() const { return schema_; }

  // Runs `sql` in the schema on a connection of its own; the rows as text.
  std::vector<std::vector<std::string>> exec(const std::string& sql) const {
    PGconn* conn = PQconnectdb(
        (admin_ + " options='-csearch_path=" + schema_ + " -cclient_min_messages=warning'")
            .c_str());
    if (PQstatus(conn) != CONNECTION_OK) {
      const std::string error = PQerrorMessage(conn);
      PQfinish(conn);
      throw std::runtime_error("PostgreSQL at '" + admin_ + "' is unreachable: " + error);
    }
    PGresult* r = PQexec(conn, sql.c_str());
    const ExecStatusType status = PQresultStatus(r);
    std::vector<std::vector<std::string>> rows;
    std::string error;
    if (status == PGRES_TUPLES_OK || status == PGRES_COMMAND_OK) {
      for (int i = 0; i < PQntuples(r); ++i) {
        rows.emplace_back();
        for (int c = 0; c < PQnfields(r); ++c) rows.back().push_back(PQgetvalue(r, i, c));
      }
    } else {
      error = PQresultErrorMessage(r);
    }
    PQclear(r);
    PQfinish(conn);
    if (!error.empty()) throw std::runtime_error(sql + ": " + error);
    return rows;
  }

 private:
  std::string admin_, schema_, server_, url_;
};

}  // namespace ferry::test
