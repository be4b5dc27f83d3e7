// sink_sql end to end: the real `ferry` executable runs test_source (DuckHub-shaped orders from a
// JSON Lines file) into the real sink_sql.so, against a SQLite file, the real PostgreSQL server
// and the real MariaDB server that scripts/test starts (FERRY_TEST_PG, FERRY_TEST_MYSQL). The
// tables are read back with each database's own command-line client (sqlite3, psql, mariadb), an
// independent reader, and compared as text.
//
// Without FERRY_TEST_PG / FERRY_TEST_MYSQL, or with the server unreachable, the tests of that
// database FAIL: CI runs scripts/test, which starts both.
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Stringifier.h>
#include <Poco/String.h>
#include <signal.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "FerryTest.h"

namespace ferry::it {
namespace {

namespace fs = std::filesystem;

std::string randomName(const std::string& prefix) {
  static std::mt19937_64 gen(std::random_device{}());
  static const char* digits = "abcdefghijklmnopqrstuvwxyz0123456789";
  std::string out = prefix;
  for (int i = 0; i < 10; ++i) out += digits[gen() % 36];
  return out;
}

// One database the tests write to, with its command-line client.
class Db {
 public:
  // "sqlite", "postgresql" or "mysql"; `scratch` holds the SQLite file and the clients' output.
  Db(std::string connector, std::string scratch)
      : connector_(std::move(connector)), scratch_(std::move(scratch)) {}

  // Prepares a private database (PostgreSQL: a schema, MySQL: a database); false with a test
  // failure when the environment or the server is missing.
  bool open() {
    if (connector_ == "sqlite") {
      connection_ = scratch_ + "/target.db";
      return true;
    }
    const char* var = connector_ == "postgresql" ? "FERRY_TEST_PG" : "FERRY_TEST_MYSQL";
    const char* base = std::getenv(var);
    if (base == nullptr || *base == '\0') {
      ADD_FAILURE() << var << " is not set: run the tests with scripts/test, which starts a "
                    << connector_ << " server and sets it";
      return false;
    }
    name_ = randomName("t_");
    if (connector_ == "postgresql") {
      admin_ = base;
      RunResult r = runCommand({"psql", admin_, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c",
                                "CREATE SCHEMA " + name_},
                               scratch_, 60s);
      if (r.exit_code != 0) {
        ADD_FAILURE() << "PostgreSQL at '" << admin_ << "' is unreachable: " << describe(r);
        return false;
      }
      connection_ = admin_ + " options='-csearch_path=" + name_ + "' application_name=" + name_;
      return true;
    }
    // host=…;port=…;user=…;password=…;db=…
    std::map<std::string, std::string> parts;
    std::stringstream in(base);
    std::string item;
    while (std::getline(in, item, ';')) {
      auto eq = item.find('=');
      if (eq != std::string::npos) parts[item.substr(0, eq)] = item.substr(eq + 1);
    }
    my_args_ = {"mariadb", "--no-defaults", "-h", parts["host"], "-P", parts["port"],
                "-u",      parts["user"],   "-p" + parts["password"]};
    auto args = my_args_;
    args.insert(args.end(), {"-e", "CREATE DATABASE " + name_ +
                                       " CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"});
    RunResult r = runCommand(args, scratch_, 60s);
    if (r.exit_code != 0) {
      ADD_FAILURE() << "MariaDB at '" << parts["host"] << ":" << parts["port"]
                    << "' is unreachable: " << describe(r);
      return false;
    }
    connection_ = "host=" + parts["host"] + ";port=" + parts["port"] + ";user=" + parts["user"] +
                  ";password=" + parts["password"] + ";db=" + name_;
    my_args_.push_back(name_);
    return true;
  }

  const std::string& connector() const { return connector_; }
  const std::string& connection() const { return connection_; }

  // Runs SQL with the database's client; the rows as tab-separated lines. Fails the test on an
  // error unless `expect_ok` is false.
  std::string query(const std::string& sql, bool expect_ok = true) {
    std::vector<std::string> cmd;
    if (connector_ == "sqlite") {
      cmd = {"sqlite3", "-batch", "-bail", "-separator", "\t", connection_, sql};
    } else if (connector_ == "postgresql") {
      cmd = {"psql", connection_, "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1",
             "-c", sql};
    } else {
      cmd = my_args_;
      cmd.insert(cmd.end(), {"--batch", "--raw", "--skip-column-names",
                             "--default-character-set=utf8mb4", "-e", sql});
    }
    RunResult r = runCommand(cmd, scratch_, 60s);
    if (expect_ok && r.exit_code != 0) ADD_FAILURE() << "query failed: " << sql << "\n" << describe(r);
    last_error_ = r.err;
    return r.out;
  }
  int64_t count(const std::string& table, const std::string& where = "", bool expect_ok = true) {
    std::string out =
        query("SELECT COUNT(*) FROM " + table + (where.empty() ? "" : " WHERE " + where), expect_ok);
    return out.empty() ? -1 : std::stoll(out);
  }
  const std::string& name() const { return name_; }
  // Every row of `table` ordered by all its columns: the table's content as text.
  std::string dump(const std::string& table, int columns) {
    std::string order;
    for (int i = 1; i <= columns; ++i) order += (i > 1 ? ", " : "") + std::to_string(i);
    return query("SELECT * FROM " + table + " ORDER BY " + order);
  }
  std::string quote(const std::string& name) const {
    return connector_ == "mysql" ? "`" + name + "`" : "\"" + name + "\"";
  }
  // The type of a short text column in DDL the tests run.
  std::string varchar(int n) const { return "VARCHAR(" + std::to_string(n) + ")"; }

 private:
  std::string connector_;
  std::string scratch_;
  std::string name_;
  std::string admin_;
  std::string connection_;
  std::vector<std::string> my_args_;
  std::string last_error_;
};

struct Line {
  std::string product;
  int quantity;
  int64_t unit_price;
};

struct Order {
  std::string id;
  int64_t version_ms;  // updatedAt = versionAt(version_ms)
  std::string customer = "Ada";
  bool has_customer = true;
  std::string note;  // a free text of the order; left out of the body when empty
  std::vector<Line> lines = {{"Pizza", 2, 850}, {"Cola", 1, 250}};
};

std::string orderLine(const Order& o) {
  Poco::JSON::Object body;
  body.set("id", o.id);
  body.set("orderNumber", "N-" + o.id);
  body.set("status", "confirmed");
  body.set("type", "delivery");
  if (o.has_customer) body.set("customerName", o.customer);
  if (!o.note.empty()) body.set("note", o.note);
  body.set("currency", "EUR");
  int64_t subtotal = 0;
  Poco::JSON::Array items;
  for (const auto& l : o.lines) {
    Poco::JSON::Object item;
    item.set("productExternalId", "p-" + l.product);
    item.set("productName", l.product);
    item.set("quantity", l.quantity);
    item.set("unitPrice", l.unit_price);
    item.set("totalPrice", l.unit_price * l.quantity);
    items.add(item);
    subtotal += l.unit_price * l.quantity;
  }
  body.set("subtotalAmount", subtotal);
  body.set("deliveryFee", 250);
  body.set("discountAmount", 0);
  body.set("totalAmount", subtotal + 250);
  body.set("createdAt", "2025-01-01T00:00:00.000Z");
  body.set("updatedAt", versionAt(o.version_ms));
  body.set("items", items);
  Poco::JSON::Object line;
  line.set("entity", "order");
  line.set("key", o.id);
  line.set("version", versionAt(o.version_ms));
  line.set("body", body);
  std::ostringstream s;
  Poco::JSON::Stringifier::stringify(line, s, 0);
  return s.str() + "\n";
}

std::string orderLines(const std::vector<Order>& orders) {
  std::string text;
  for (const auto& o : orders) text += orderLine(o);
  return text;
}

void copyJournal(const std::string& from_dir, const std::string& to_dir) {
  fs::create_directories(to_dir);
  for (const char* suffix : {"", "-wal", "-shm"}) {
    const fs::path f = fs::path(from_dir) / (std::string("journal.db") + suffix);
    const fs::path t = fs::path(to_dir) / (std::string("journal.db") + suffix);
    fs::remove(t);
    if (fs::exists(f)) fs::copy_file(f, t);
  }
}

class SqlSinkTest : public FerryTest, public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    fs::create_directories(plugins_);
    fs::copy_file(TEST_SOURCE_PLUGIN, plugins_ + "/test_source.so");
    fs::copy_file(SINK_SQL_PLUGIN, plugins_ + "/sink_sql.so");
    ASSERT_TRUE(db_.open());
  }

  // The config: [host], the source over data_, and one sink_sql `db` with `extra` lines.
  void writeSqlConfig(const std::string& extra, const std::string& journal_dir = "") {
    const std::string jdir = journal_dir.empty() ? dir_.path() : journal_dir;
    writeFile(config_, "[host]\njournal = " + jdir + "/journal.db\nplugin_dir = " + plugins_ +
                           "\nlog_level = info\nretry_initial = 50ms\nretry_max = 300ms\n\n" +
                           sourceSection("duck", data_, "page_size = 100\n") +
                           section("sink.db",
                                   {{"plugin", "sink_sql"},
                                    {"connector", db_.connector()},
                                    {"connection", db_.connection()},
                                    {"batch_size", "50"},
                                    {"batch_delay", "50ms"}},
                                   extra));
  }

  static std::string mappedTables() {
    return "table = orders\nrows_table = order_lines\nhistory = true\n";
  }

  // `run --once`, which must exit 0, or 2 when the run left new dead letters.
  void runOk(int expected_exit = 0) {
    RunResult r = runOnce();
    ASSERT_EQ(r.exit_code, expected_exit) << describe(r);
  }

  // What a user compares: every table the sink writes, as text.
  std::string dumpAll(bool with_bookkeeping = true) {
    std::string out = "## ferry_changes\n" + db_.dump("ferry_changes", 10) + "## ferry_history\n" +
                      db_.dump("ferry_history", 10) + "## orders\n" + db_.dump("orders", 3) +
                      "## order_lines\n" + db_.dump("order_lines", 3) + "## ferry_versions\n" +
                      db_.dump("ferry_versions", 2);
    if (with_bookkeeping)
      out += "## ferry_offsets\n" + db_.dump("ferry_offsets", 1) + "## ferry_refused\n" +
             db_.dump("ferry_refused", 2);
    return out;
  }

  std::string plugins_ = dir_.file("plugins");
  std::string data_ = dir_.file("orders.jsonl");
  Db db_{GetParam(), dir_.path()};
};

std::vector<Order> someOrders(int n, int64_t version_ms = 1000) {
  std::vector<Order> out;
  for (int i = 1; i <= n; ++i) {
    Order o;
    o.id = "o-" + std::to_string(i);
    o.version_ms = version_ms + i;
    if (i % 3 == 0) o.lines.push_back({"Tiramisu", 1, 550});
    out.push_back(o);
  }
  return out;
}

// ------------------------------------------------------------------------------------------------

// The tables hold the latest version of every order, its lines, and every version once.
TEST_P(SqlSinkTest, WritesChangesMappedTablesAndHistory) {
  auto orders = someOrders(30);
  writeFile(data_, orderLines(orders));
  writeSqlConfig(mappedTables());
  runOk();
  // A second version of o-3 with one line fewer, and a new order.
  Order changed = orders[2];
  changed.version_ms = 50000;
  changed.lines.pop_back();
  Order added;
  added.id = "o-new";
  added.version_ms = 50001;
  appendFile(data_, orderLine(changed) + orderLine(added));
  runOk();

  EXPECT_EQ(db_.count("ferry_changes"), 31);
  EXPECT_EQ(db_.count("ferry_history"), 32);
  EXPECT_EQ(db_.count("orders"), 31);
  EXPECT_EQ(db_.query("SELECT " + db_.quote("version") + ", previous, echo FROM ferry_changes WHERE " +
                      db_.quote("key") + " = 'o-3'"),
            versionAt(50000) + "\t" + versionAt(1003) + "\t0\n");
  EXPECT_EQ(db_.query("SELECT line, product_name, quantity, unit_price, line_total FROM "
                      "order_lines WHERE order_id = 'o-3' ORDER BY line"),
            "1\tPizza\t2\t8.50\t17.00\n2\tCola\t1\t2.50\t2.50\n");
  EXPECT_EQ(db_.query("SELECT total, item_count, previous_version FROM orders WHERE order_id = 'o-3'"),
            "22.00\t2\t" + versionAt(1003) + "\n");
  // 30 orders with 2 lines, 10 of them with a third; o-3 lost its third; o-new has 2.
  EXPECT_EQ(db_.count("order_lines"), 30 * 2 + 10 - 1 + 2);
  // The journal offset committed with the rows equals the host's own.
  auto s = status();
  ASSERT_FALSE(s.isNull());
  auto sink = instance(s, "sinks", "db");
  ASSERT_FALSE(sink.isNull());
  EXPECT_EQ(db_.query("SELECT " + db_.quote("sequence") + " FROM ferry_offsets"),
            std::to_string(num(sink, "offset")) + "\n");
  EXPECT_EQ(num(sink, "dead_letters"), 0);
}

// Replaying a journal range leaves every table byte for byte as it was: first through the
// target's offset (the events are skipped), then with that offset removed (the version guard
// alone keeps every row as it is).
TEST_P(SqlSinkTest, ANewJournalDeliversAgainInsteadOfSkippingBelowTheOldOffset) {
  auto orders = someOrders(10);
  writeFile(data_, orderLines(orders));
  writeSqlConfig(mappedTables());
  runOk();
  EXPECT_EQ(db_.count("ferry_offsets"), 1);
  // The journal is lost; the database has the old journal's offset 10. Meanwhile o-3 changed:
  // the new journal hands it over as sequence 3, below that offset, and it must not be skipped.
  for (const char* suffix : {"", "-wal", "-shm"})
    fs::remove(dir_.file(std::string("journal.db") + suffix));
  Order changed = orders[2];
  changed.version_ms = 50000;
  changed.lines.pop_back();
  orders[2] = changed;
  writeFile(data_, orderLines(orders));
  runOk();
  EXPECT_EQ(db_.count("ferry_offsets"), 2) << "one row per journal";
  EXPECT_EQ(db_.count("ferry_changes"), 10);
  EXPECT_EQ(db_.query("SELECT " + db_.quote("version") + " FROM ferry_changes WHERE " +
                      db_.quote("key") + " = 'o-3'"),
            versionAt(50000) + "\n");
  EXPECT_EQ(db_.query("SELECT COUNT(*) FROM order_lines WHERE order_id = 'o-3'"), "2\n");
}

TEST_P(SqlSinkTest, ReplayOfAJournalRangeChangesNothing) {
  auto orders = someOrders(120);
  writeFile(data_, orderLines(orders));
  writeSqlConfig(mappedTables());
  runOk();
  const std::string snapshot = dir_.file("snapshot");
  copyJournal(dir_.path(), snapshot);

  // Newer versions of 40 orders (some lose a line), and 20 new ones.
  std::string more;
  for (int i = 0; i < 40; ++i) {
    Order o = orders[static_cast<size_t>(i * 3)];
    o.version_ms = 100000 + i;
    o.customer = "Bob";
    if (i % 2 == 0) o.lines.pop_back();
    more += orderLine(o);
  }
  for (int i = 0; i < 20; ++i) {
    Order o;
    o.id = "late-" + std::to_string(i);
    o.version_ms = 200000 + i;
    more += orderLine(o);
  }
  appendFile(data_, more);
  runOk();
  const std::string before = dumpAll();
  ASSERT_NE(before.find("late-19"), std::string::npos);

  // The host's journal goes back: the same range is delivered again.
  copyJournal(snapshot, dir_.path());
  RunResult r = runOnce();
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.err.find("already has"), std::string::npos)
      << "the sink should have skipped events through ferry_offsets: " << describe(r);
  EXPECT_EQ(dumpAll(), before);

  // Again without the target's offset: only the version guard is left to keep the bytes.
  copyJournal(snapshot, dir_.path());
  db_.query("DELETE FROM ferry_offsets");
  runOk();
  EXPECT_EQ(dumpAll(false), [&] {
    std::string b = before;
    return b.substr(0, b.find("## ferry_offsets"));
  }());
}

// Older versions that arrive after newer ones change nothing (another journal, as after a
// restore or a second host): no row goes back, no removed line comes back.
TEST_P(SqlSinkTest, OlderVersionAfterNewerChangesNothing) {
  std::vector<Order> newer = someOrders(20, 500000);
  for (auto& o : newer) o.lines.resize(1);
  writeFile(data_, orderLines(newer));
  writeSqlConfig(mappedTables());
  runOk();
  const std::string before = dumpAll(false);

  // A fresh journal whose source serves the older versions (three lines each).
  std::vector<Order> older = someOrders(20, 1000);
  for (auto& o : older) o.customer = "Old";
  writeFile(data_, orderLines(older));
  const std::string other = dir_.file("other-journal");
  fs::create_directories(other);
  writeSqlConfig(mappedTables(), other);
  runOk();

  std::string after = dumpAll(false);
  // History keeps every version once: the older ones are added there, and only there.
  auto strip = [](const std::string& d) {
    const size_t a = d.find("## ferry_history"), b = d.find("## orders");
    return d.substr(0, a) + d.substr(b);
  };
  EXPECT_EQ(strip(after), strip(before));
  EXPECT_EQ(db_.count("ferry_history"), 40);
  EXPECT_EQ(db_.count("orders", "customer_name = 'Old'"), 0);
  EXPECT_EQ(db_.count("order_lines"), 20);
}

// kill -9 at random moments (also between the sink's commit and the host's offset commit), then
// restart: every order lands with its latest version and lines, nothing twice, nothing missing,
// and the target's offset equals the host's.
TEST_P(SqlSinkTest, KillNineAtRandomMomentsNoDuplicateNoGap) {
  std::mt19937 rng(std::random_device{}());
  std::map<std::string, Order> latest;
  std::vector<Order> orders = someOrders(1500);
  for (const auto& o : orders) latest[o.id] = o;
  writeFile(data_, orderLines(orders));
  writeSqlConfig(mappedTables() + "batch_size = 10\n");

  bool saw_skip = false;
  for (int round = 0; round < 6; ++round) {
    {
      FerryProcess p({"run", "--config", config_}, dir_.path());
      std::this_thread::sleep_for(std::chrono::milliseconds(40 + rng() % 400));
      p.kill9();
      saw_skip = saw_skip || p.err().find("already has") != std::string::npos;
    }
    // The remote changes meanwhile: 100 orders get a newer version, some lose a line.
    std::string more;
    for (int i = 0; i < 100; ++i) {
      Order o = latest["o-" + std::to_string(1 + static_cast<int>(rng() % 1500))];
      o.version_ms = 1000000 + round * 1000 + i;
      if (o.lines.size() > 1 && rng() % 2) o.lines.pop_back();
      latest[o.id] = o;
      more += orderLine(o);
    }
    appendFile(data_, more);
  }
  RunResult r = runOnce();
  ASSERT_EQ(r.exit_code, 0) << describe(r);

  // Expected content, computed from the model of the remote.
  std::string changes, lines;
  int64_t line_count = 0;
  for (const auto& [id, o] : latest) line_count += static_cast<int64_t>(o.lines.size());
  EXPECT_EQ(db_.count("ferry_changes"), 1500);
  EXPECT_EQ(db_.count("orders"), 1500);
  EXPECT_EQ(db_.count("order_lines"), line_count);
  std::string got = db_.query("SELECT " + db_.quote("key") + ", " + db_.quote("version") +
                              " FROM ferry_changes");
  std::set<std::string> got_rows;
  std::stringstream in(got);
  for (std::string l; std::getline(in, l);) got_rows.insert(l);
  std::set<std::string> want_rows;
  for (const auto& [id, o] : latest) want_rows.insert(id + "\t" + versionAt(o.version_ms));
  EXPECT_EQ(got_rows, want_rows);
  // Lines of each order belong to its latest version only.
  EXPECT_EQ(db_.count("order_lines l JOIN orders o ON o.order_id = l.order_id",
                      "l.ferry_version <> o.ferry_version"),
            0);
  // History: each version at most once (its primary key), the latest of each among them.
  EXPECT_EQ(db_.count("ferry_history h JOIN ferry_changes c ON c." + db_.quote("key") + " = h." +
                          db_.quote("key") + " AND c." + db_.quote("version") + " = h." +
                          db_.quote("version")),
            1500);
  auto s = status();
  ASSERT_FALSE(s.isNull());
  auto sink = instance(s, "sinks", "db");
  ASSERT_FALSE(sink.isNull());
  EXPECT_EQ(num(sink, "dead_letters"), 0);
  EXPECT_EQ(db_.query("SELECT " + db_.quote("sequence") + " FROM ferry_offsets"),
            std::to_string(num(sink, "offset")) + "\n");
  if (!saw_skip) std::cerr << "[ note     ] no kill fell between the two commits this time\n";
}

// A row the database refuses goes to the dead letters alone; the orders around it land. Once
// the table is fixed, `ferry dead-letters replay` brings it in although its sequence is below
// the target's offset.
TEST_P(SqlSinkTest, PoisonRowIsDeadLetteredAloneAndReplayable) {
  const bool typed = db_.connector() != "sqlite";  // SQLite does not enforce VARCHAR(n)
  db_.query("CREATE TABLE orders (order_id " + db_.varchar(40) + " PRIMARY KEY, customer " +
            db_.varchar(10) + " NOT NULL, total NUMERIC(12,2), ferry_version " + db_.varchar(64) +
            " NOT NULL, ferry_version_ns BIGINT NOT NULL, ferry_sequence BIGINT NOT NULL)");
  auto orders = someOrders(100);
  orders[36].customer = "Bartholomew Longname-Featherstonehaugh";  // o-37: too long
  orders[70].has_customer = false;                                  // o-71: NULL
  writeFile(data_, orderLines(orders));
  writeSqlConfig(
      "table = orders\ntable_columns = order_id=/id; customer=/customerName; "
      "total=amount(/totalAmount)\n");
  runOk(2);  // done, with new dead letters

  auto dead = deadLetters("db");
  ASSERT_FALSE(dead.isNull());
  std::set<std::string> dead_keys;
  for (size_t i = 0; i < dead->size(); ++i) {
    auto d = dead->getObject(static_cast<unsigned>(i));
    dead_keys.insert(str(d, "key"));
    if (str(d, "key") == "o-71") {
      EXPECT_NE(Poco::toLower(str(d, "reason")).find("null"), std::string::npos) << str(d, "reason");
    }
  }
  if (typed) {
    EXPECT_EQ(dead_keys, (std::set<std::string>{"o-37", "o-71"}));
  } else {
    EXPECT_EQ(dead_keys, (std::set<std::string>{"o-71"}));
  }
  EXPECT_EQ(db_.count("orders"), typed ? 98 : 99);
  // The changes table is written in the same transaction: the refused event is not there either.
  EXPECT_EQ(db_.count("ferry_changes"), typed ? 98 : 99);
  EXPECT_EQ(db_.count("ferry_refused"), typed ? 2 : 1);
  if (!typed) return;

  // The operator widens the column and replays: o-37 lands, o-71 is refused again.
  db_.query(db_.connector() == "mysql" ? "ALTER TABLE orders MODIFY customer VARCHAR(100) NOT NULL"
                                       : "ALTER TABLE orders ALTER COLUMN customer TYPE VARCHAR(100)");
  RunResult rr = ferry({"dead-letters", "replay", "--config", config_, "--sink", "db"});
  ASSERT_EQ(rr.exit_code, 0) << describe(rr);
  runOk(2);  // o-71 is refused again in this run
  EXPECT_EQ(db_.query("SELECT customer FROM orders WHERE order_id = 'o-37'"),
            "Bartholomew Longname-Featherstonehaugh\n");
  EXPECT_EQ(db_.count("orders"), 99);
  EXPECT_EQ(db_.count("ferry_refused"), 1);
}

// Quotes, semicolons, comments and unicode in keys, values, table and column names are stored
// literally; names that cannot be quoted safely are refused with the option named.
TEST_P(SqlSinkTest, HostileKeysValuesAndNamesAreDataNotSql) {
  const std::string evil = "x'); DROP TABLE ferry_offsets; -- \"`\\ ü€😀";
  Order o;
  o.id = "o-" + evil;
  o.version_ms = 1000;
  o.customer = evil;
  o.lines = {{evil, 1, 100}};
  writeFile(data_, orderLine(o));
  const std::string table = "Bestellungen; -- ü";
  // `\;` is a ';' inside a column name in the mapping language.
  writeSqlConfig("table = " + table +
                 "\ntable_columns = id=/id; kunde\\;name=/customerName; preis -- "
                 "eur=amount(/totalAmount)\nrows_table = Positionen€\nrows = /items\nrows_columns = id=^/id; "
                 "pos=$row; artikel=/productName\nrows_keys = id,pos\n");
  RunResult r0 = runOnce();
  ASSERT_EQ(r0.exit_code, 0) << describe(r0);
  EXPECT_EQ(db_.count("ferry_offsets"), 1);
  EXPECT_EQ(db_.query("SELECT " + db_.quote("key") + " FROM ferry_changes"), "o-" + evil + "\n");
  EXPECT_EQ(db_.query("SELECT " + db_.quote("kunde;name") + ", " + db_.quote("preis -- eur") +
                      " FROM " + db_.quote(table)),
            evil + "\t3.50\n");
  EXPECT_EQ(db_.query("SELECT artikel FROM " + db_.quote("Positionen€")), evil + "\n");

  // Names that cannot be quoted safely: the sink refuses to start, naming option and reason.
  struct Case {
    std::string extra, expect;
  };
  const std::vector<Case> refused = {
      {"table = orders\"; DROP TABLE ferry_offsets; --\n", "table: table name"},
      {"changes_table = a`b\n", "changes_table: table name"},
      {"table = orders\ntable_columns = id=/id; bad\"col=/customerName\n", "column 'bad\"col'"},
      {"table = orders\ntable_columns = id=/id; ferry_version=/x\n", "ferry_"},
  };
  for (const auto& c : refused) {
    writeSqlConfig(c.extra);
    RunResult r = runOnce();
    EXPECT_EQ(r.exit_code, 78) << c.extra << describe(r);
    EXPECT_NE(r.err.find(c.expect), std::string::npos) << c.extra << describe(r);
  }
  EXPECT_EQ(db_.count("ferry_offsets"), 1);  // still there
}

// Existing tables are checked: a missing table (create_tables = false) or column stops the sink
// with a message naming the table and column.
TEST_P(SqlSinkTest, SchemaCheckNamesTableAndColumn) {
  writeFile(data_, orderLines(someOrders(3)));
  writeSqlConfig("create_tables = false\n");
  RunResult r = runOnce();
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("table 'ferry_changes' does not exist"), std::string::npos) << describe(r);

  db_.query("CREATE TABLE ferry_changes (source " + db_.varchar(100) + ", entity " +
            db_.varchar(100) + ", " + db_.quote("key") + " " + db_.varchar(100) + ")");
  writeSqlConfig("");
  r = runOnce();
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("table 'ferry_changes' has no column 'version'"), std::string::npos)
      << describe(r);
}

// ------------------------------------------------------------------------------------------------
// Large batches. `batch_size` has no upper bound in the config: one batch holds whatever the
// journal has (here the whole backlog), and every table the sink writes is split into statements
// that each database (and its client library) accepts, in the one transaction of the batch.

// `ferry run --once` that must finish: a sink that keeps retrying is killed after the deadline.
#define EXPECT_RUN_DELIVERS(r) \
  EXPECT_TRUE((r).exit_code == 0 && !(r).timed_out) << describe(r)

// The sink's state and offset in `ferry status`, and the offset committed in ferry_offsets.
#define EXPECT_SINK_AT(offset)                                                             \
  do {                                                                                     \
    auto s_ = status();                                                                    \
    ASSERT_FALSE(s_.isNull());                                                             \
    auto sink_ = instance(s_, "sinks", "db");                                              \
    ASSERT_FALSE(sink_.isNull());                                                          \
    EXPECT_EQ(num(sink_, "offset"), (offset)) << str(sink_, "message");                    \
    EXPECT_EQ(num(sink_, "dead_letters"), 0);                                              \
    EXPECT_EQ(db_.query("SELECT " + db_.quote("sequence") + " FROM ferry_offsets"),        \
              std::to_string(offset) + "\n");                                              \
  } while (0)

// The backfill: thousands of orders in one batch into orders, order_lines and the
// history (the built-in duckhub_order layouts: 19 and 21 columns), then a newer version of every
// order, a third of them with a line fewer (the removed lines are deleted in the same batch).
TEST_P(SqlSinkTest, BackfillOfThousandsOfOrdersInOneBatch) {
  auto orders = someOrders(3000);
  writeFile(data_, orderLines(orders));
  writeSqlConfig(mappedTables() + "batch_size = 1000000\nbatch_delay = 60s\n");
  RunResult r = ferry({"run", "--config", config_, "--once"}, 90s);
  EXPECT_RUN_DELIVERS(r);
  EXPECT_EQ(db_.count("ferry_changes"), 3000);
  EXPECT_EQ(db_.count("ferry_history"), 3000);
  EXPECT_EQ(db_.count("orders"), 3000);
  EXPECT_EQ(db_.count("order_lines"), 3000 * 2 + 1000);
  EXPECT_EQ(db_.count("ferry_versions"), 3000);
  EXPECT_EQ(db_.query("SELECT customer_name, total, item_count FROM orders WHERE order_id = 'o-2997'"),
            "Ada\t27.50\t3\n");
  EXPECT_SINK_AT(3000);

  std::string more;
  for (auto& o : orders) {
    o.version_ms += 1000000;
    o.customer = "Bob";
    if (o.lines.size() == 3) o.lines.pop_back();
    more += orderLine(o);
  }
  appendFile(data_, more);
  r = ferry({"run", "--config", config_, "--once"}, 90s);
  EXPECT_RUN_DELIVERS(r);
  EXPECT_EQ(db_.count("orders", "customer_name = 'Bob'"), 3000);
  EXPECT_EQ(db_.count("ferry_history"), 6000);
  EXPECT_EQ(db_.count("order_lines"), 3000 * 2);
  EXPECT_EQ(db_.count("order_lines l JOIN orders o ON o.order_id = l.order_id",
                      "l.ferry_version <> o.ferry_version"),
            0);
  EXPECT_SINK_AT(6000);
}

// A wide mapped table (123 columns) and a wide rows table (83 columns) in one batch of 2000
// orders.
TEST_P(SqlSinkTest, WideMappedTablesInOneLargeBatch) {
  const char* head_fields[] = {"/id", "/orderNumber", "/status", "/customerName", "/updatedAt"};
  const char* row_fields[] = {"/productName", "/productExternalId", "/quantity", "/unitPrice"};
  std::string head = "c000=/id", rows = "order_id=^/id; line=$row";
  for (int c = 1; c < 120; ++c) head += "; c" + std::to_string(1000 + c).substr(1) + "=" + head_fields[c % 5];
  for (int c = 0; c < 77; ++c) rows += "; r" + std::to_string(1000 + c).substr(1) + "=" + row_fields[c % 4];
  auto orders = someOrders(2000);
  writeFile(data_, orderLines(orders));
  writeSqlConfig("changes = false\ntable = wide\ntable_columns = " + head +
                 "\nrows_table = wide_lines\nrows = /items\nrows_columns = " + rows +
                 "\nrows_keys = order_id,line\nbatch_size = 1000000\nbatch_delay = 60s\n");
  RunResult r = ferry({"run", "--config", config_, "--once"}, 90s);
  EXPECT_RUN_DELIVERS(r);
  EXPECT_EQ(db_.count("wide"), 2000);
  EXPECT_EQ(db_.count("wide_lines"), 2000 * 2 + 666);
  EXPECT_EQ(db_.query("SELECT c000, c001, c003, c119 FROM wide WHERE c000 = 'o-1234'"),
            "o-1234\tN-o-1234\tAda\t" + versionAt(1000 + 1234) + "\n");
  EXPECT_EQ(db_.query("SELECT r000, r002, r076 FROM wide_lines WHERE order_id = 'o-1998' AND "
                      "line = '3'"),
            "Tiramisu\t1\tTiramisu\n");
  EXPECT_SINK_AT(2000);
}

// Large bodies: 400 orders of 50 KB each (20 MB) in one batch, in the changes and history tables.
TEST_P(SqlSinkTest, LargeBodiesInOneBatch) {
  auto orders = someOrders(400);
  for (auto& o : orders) o.note = std::string(50000, 'n') + "-end-of-" + o.id;
  writeFile(data_, orderLines(orders));
  writeSqlConfig("history = true\nbatch_size = 1000000\nbatch_delay = 60s\n");
  RunResult r = ferry({"run", "--config", config_, "--once"}, 90s);
  EXPECT_RUN_DELIVERS(r);
  EXPECT_EQ(db_.count("ferry_changes"), 400);
  EXPECT_EQ(db_.count("ferry_history"), 400);
  const std::string body = db_.connector() == "postgresql" ? "body::text" : "body";
  EXPECT_EQ(db_.count("ferry_changes", body + " LIKE '%nnnnnnnnnn-end-of-o-377\"%'"), 1);
  EXPECT_EQ(db_.count("ferry_history", body + " LIKE '%nnnnnnnnnn-end-of-o-400\"%'"), 1);
  EXPECT_SINK_AT(400);
}

// removed_rows = flag: a line a newer version no longer has stays, with ferry_removed = 1; the
// lines of other orders are untouched.
TEST_P(SqlSinkTest, RemovedRowsAreFlagged) {
  auto orders = someOrders(6);
  writeFile(data_, orderLines(orders));
  writeSqlConfig(mappedTables() + "removed_rows = flag\n");
  runOk();
  std::string more;
  for (auto& o : orders) {
    o.version_ms += 100000;
    if (o.lines.size() == 3) o.lines.pop_back();
    more += orderLine(o);
  }
  appendFile(data_, more);
  runOk();
  EXPECT_EQ(db_.count("order_lines"), 6 * 2 + 2);
  EXPECT_EQ(db_.query("SELECT order_id, line, product_name FROM order_lines WHERE ferry_removed = 1 "
                      "ORDER BY order_id"),
            "o-3\t3\tTiramisu\no-6\t3\tTiramisu\n");
}

// A statement the database refuses for a reason that does not go away (here a trigger on the
// table that writes to a table that does not exist): the sink retries, and `ferry status` and the
// log carry a short message naming the table and the size of the statement, with the database's
// own message — never the statement with its thousands of placeholders.
TEST_P(SqlSinkTest, FailingStatementIsReportedShortlyWithItsTable) {
  writeFile(data_, orderLines(someOrders(2)));
  writeSqlConfig(mappedTables());
  runOk();
  if (db_.connector() == "postgresql") {
    db_.query("CREATE FUNCTION orders_audit() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
              "INSERT INTO missing_audit VALUES (1); RETURN NEW; END $$; CREATE TRIGGER audit "
              "BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION orders_audit()");
  } else if (db_.connector() == "mysql") {
    db_.query("CREATE TRIGGER audit BEFORE INSERT ON orders FOR EACH ROW INSERT INTO "
              "missing_audit VALUES (1)");
  } else {
    db_.query("CREATE TRIGGER audit BEFORE INSERT ON orders BEGIN INSERT INTO missing_audit "
              "VALUES (1); END");
  }
  appendFile(data_, orderLines(someOrders(2000, 900000)));
  // `ferry run` waits for the batch to fill: one batch of all 2000.
  writeSqlConfig(mappedTables() + "batch_size = 2000\nbatch_delay = 60s\n");
  std::string message;
  {
    FerryProcess p({"run", "--config", config_}, dir_.path());
    EXPECT_TRUE(waitUntil(
        [&] {
          auto sink = instance(tryStatus(), "sinks", "db");
          if (sink.isNull() || str(sink, "state") != "retrying") return false;
          message = str(sink, "message");
          return true;
        },
        60s))
        << p.err();
    p.signal(SIGTERM);
    EXPECT_EQ(p.wait(), 0) << p.err();
    // Every line of the log is short, and the retry is logged with the same message.
    std::stringstream log(p.err());
    size_t longest = 0;
    for (std::string line; std::getline(log, line);) longest = std::max(longest, line.size());
    EXPECT_LT(longest, 1000u) << p.err().substr(0, 3000);
    EXPECT_NE(p.err().find(message), std::string::npos) << p.err().substr(0, 3000);
  }
  EXPECT_LT(message.size(), 700u) << message.substr(0, 3000);
  EXPECT_NE(message.find("INSERT INTO " + db_.quote("orders") + " … (19 columns × "),
            std::string::npos)
      << message.substr(0, 3000);
  EXPECT_NE(message.find("missing_audit"), std::string::npos) << message.substr(0, 3000);
  // Nothing of the batch was written: the offset stays where the first run left it.
  EXPECT_EQ(db_.count("ferry_changes"), 2);
  EXPECT_EQ(db_.query("SELECT " + db_.quote("sequence") + " FROM ferry_offsets"), "2\n");
}

INSTANTIATE_TEST_SUITE_P(Db, SqlSinkTest, ::testing::Values("sqlite", "postgresql", "mysql"),
                         [](const auto& info) { return info.param; });

// ------------------------------------------------------------------------------------------------

class SqlSinkPgTest : public SqlSinkTest {};

// A lost connection is retried with a new one; nothing is lost or dead-lettered.
TEST_P(SqlSinkPgTest, LostConnectionIsRetried) {
  writeFile(data_, orderLines(someOrders(200)));
  writeSqlConfig(mappedTables());
  FerryProcess p({"run", "--config", config_}, dir_.path());
  ASSERT_TRUE(waitUntil([&] { return db_.count("ferry_changes", "", false) == 200; }, 60s))
      << p.err();
  // The server terminates the sink's connection, then more orders arrive.
  EXPECT_EQ(db_.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                      "application_name = '" + db_.name() + "' AND pid <> pg_backend_pid()"),
            "t\n");
  std::vector<Order> more = someOrders(300, 900000);
  appendFile(data_, orderLines(more));
  ASSERT_TRUE(waitUntil(
      [&] { return db_.count("ferry_changes", db_.quote("version") + " > '2025-01-01T00:14'") == 300; },
      60s))
      << p.err();
  p.signal(SIGTERM);
  EXPECT_EQ(p.wait(), 0) << p.err();
  EXPECT_NE(p.err().find("retry"), std::string::npos) << p.err();
  auto s = status();
  ASSERT_FALSE(s.isNull());
  EXPECT_EQ(num(instance(s, "sinks", "db"), "dead_letters"), 0);
}

INSTANTIATE_TEST_SUITE_P(Db, SqlSinkPgTest, ::testing::Values("postgresql"),
                         [](const auto& info) { return info.param; });

// ------------------------------------------------------------------------------------------------

// Each config/sql-*.ini example passes `ferry check`.
TEST(SqlSinkConfigs, ExamplesPassFerryCheck) {
  TempDir dir;
  ::setenv("DUCKHUB_URL", "http://127.0.0.1:1", 1);
  ::setenv("DUCKHUB_KEY", "duckhub-api-key", 1);
  ::setenv("FERRY_STATE_DIR", dir.path().c_str(), 1);
  ::setenv("ERP_DB_PASSWORD", "erp-db-password", 1);
  for (const char* name : {"sql-sqlite.ini", "sql-postgresql.ini", "sql-mysql.ini"}) {
    const std::string file = std::string(FERRY_SOURCE_DIR) + "/config/" + name;
    RunResult r = runFerry({"check", "--config", file, "--plugin-dir", FERRY_PLUGIN_DIR},
                           dir.path(), 60s);
    EXPECT_EQ(r.exit_code, 0) << name << "\n" << describe(r);
    EXPECT_NE(r.out.find("plugin sink_sql"), std::string::npos) << name << "\n" << describe(r);
  }
}

}  // namespace
}  // namespace ferry::it
