// sink_erp_csv end to end: the real `ferry` executable runs test_source (DuckHub-shaped orders
// from a JSON Lines file) into the real sink_erp_csv.so, and the files in the drop folder are read
// back with an independent reader, Python's csv module (read_csv.py).
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Stringifier.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "FerryTest.h"

namespace ferry::it {
namespace {

namespace fs = std::filesystem;

struct Line {
  std::string product;
  int quantity;
  int64_t unit_price;
};

struct Order {
  std::string id;
  std::string number;
  int minute;  // updatedAt = 2026-07-05T12:<minute>:00.000Z
  std::string customer;
  std::string currency = "EUR";
  int64_t total = 0;
  int64_t discount = 0;
  std::vector<Line> lines;
  std::string created_at = "2026-07-05T11:59:30.000Z";
};

std::string updatedAt(int minute) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "2026-07-05T12:%02d:00.000Z", minute);
  return buf;
}

// One test_source line: a DuckHub order as the API returns it.
std::string orderLine(const Order& o) {
  Poco::JSON::Object body;
  body.set("id", o.id);
  body.set("orderNumber", o.number);
  body.set("status", "confirmed");
  body.set("type", "delivery");
  body.set("customerName", o.customer);
  body.set("currency", o.currency);
  int64_t subtotal = 0;
  Poco::JSON::Array items;
  for (const auto& l : o.lines) {
    Poco::JSON::Object item;
    item.set("productExternalId", "p-" + l.product.substr(0, 3));
    item.set("productName", l.product);
    item.set("quantity", l.quantity);
    item.set("unitPrice", l.unit_price);
    item.set("totalPrice", l.unit_price * l.quantity);
    item.set("modifiers", Poco::JSON::Array());
    items.add(item);
    subtotal += l.unit_price * l.quantity;
  }
  body.set("subtotalAmount", subtotal);
  body.set("deliveryFee", 250);
  body.set("discountAmount", o.discount);
  body.set("totalAmount", o.total != 0 ? o.total : subtotal + 250 + o.discount);
  body.set("createdAt", o.created_at);
  body.set("updatedAt", updatedAt(o.minute));
  body.set("confirmedAt", updatedAt(o.minute));
  body.set("completedAt", Poco::Dynamic::Var());
  body.set("items", items);
  Poco::JSON::Object line;
  line.set("entity", "order");
  line.set("key", o.id);
  line.set("version", updatedAt(o.minute));
  line.set("body", body);
  std::ostringstream s;
  Poco::JSON::Stringifier::stringify(line, s, 0);
  return s.str() + "\n";
}

// What read_csv.py saw in a file.
struct CsvFile {
  bool bom = false;
  int64_t crlf = 0;
  int64_t bare_lf = 0;
  std::vector<std::vector<std::string>> rows;
};

CsvFile readCsv(const std::string& path, const std::string& delimiter, const std::string& scratch) {
  const std::string out = scratch + "/read_csv.json", err = scratch + "/read_csv.err";
  const std::string command = std::string("'") + PYTHON3 + "' '" + READ_CSV_SCRIPT + "' '" + path +
                              "' '" + delimiter + "' > '" + out + "' 2> '" + err + "'";
  const int rc = std::system(command.c_str());
  CsvFile f;
  if (rc != 0) {
    ADD_FAILURE() << "read_csv.py failed on " << path << ": " << readFile(err);
    return f;
  }
  auto o = parseObject(readFile(out));
  f.bom = o->getValue<bool>("bom");
  f.crlf = o->getValue<int64_t>("crlf");
  f.bare_lf = o->getValue<int64_t>("bare_lf");
  auto rows = o->getArray("rows");
  for (size_t r = 0; r < rows->size(); ++r) {
    auto row = rows->getArray(static_cast<unsigned>(r));
    f.rows.emplace_back();
    for (size_t c = 0; c < row->size(); ++c)
      f.rows.back().push_back(row->getElement<std::string>(static_cast<unsigned>(c)));
  }
  return f;
}

// Sorted names of the entries in a folder (hidden ones included).
std::vector<std::string> listDir(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

// The value of `header` in `row`, by the header row of `file`.
std::string cell(const CsvFile& file, size_t row, const std::string& header) {
  const auto& h = file.rows.at(0);
  auto it = std::find(h.begin(), h.end(), header);
  if (it == h.end()) {
    ADD_FAILURE() << "no column " << header;
    return "";
  }
  return file.rows.at(row).at(static_cast<size_t>(it - h.begin()));
}

class ErpCsvTest : public FerryTest {
 protected:
  void SetUp() override {
    // A plugin folder holding exactly the two plugins this test needs.
    fs::create_directories(plugins_);
    fs::copy_file(TEST_SOURCE_PLUGIN, plugins_ + "/test_source.so");
    fs::copy_file(SINK_ERP_CSV_PLUGIN, plugins_ + "/sink_erp_csv.so");
  }

  // The name sink_erp_csv gives a file of sequences [first, last] from this test's journal:
  // <name>-<journal's creation time>-<6 hex digits of its identity>-<first>-<last>.csv.
  std::string csvName(const std::string& name, int first, int last) {
    RunResult r = runCommand({"sqlite3", dir_.file("journal.db"), "SELECT id FROM journal_identity"},
                             dir_.path());
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const std::string id = r.out.substr(0, r.out.find_first_of("\r\n"));
    std::string time;
    for (char c : id.substr(0, id.find('-')))
      if (std::isdigit(static_cast<unsigned char>(c))) time += c;
    char seqs[32];
    std::snprintf(seqs, sizeof seqs, "%012d-%012d", first, last);
    return name + "-" + time + "-" + id.substr(id.find('-') + 1, 6) + "-" + seqs + ".csv";
  }

  void writeOrders(const std::vector<Order>& orders) {
    std::string text;
    for (const auto& o : orders) text += orderLine(o);
    writeFile(data_, text);
  }

  // The config: [host] with our plugin folder, the source over data_, then `sinks`.
  void writeCsvConfig(const std::string& sinks) {
    writeFile(config_, "[host]\njournal = " + dir_.file("journal.db") +
                           "\nplugin_dir = " + plugins_ +
                           "\nlog_level = info\nretry_initial = 50ms\nretry_max = 300ms\n\n" +
                           sourceSection("duck", data_, "page_size = 100\n") + sinks);
  }

  static std::string csvSink(const std::string& name, const std::string& dir,
                             const std::string& extra = "") {
    return section("sink." + name,
                   {{"plugin", "sink_erp_csv"}, {"dir", dir}, {"batch_delay", "100ms"}}, extra);
  }

  std::string makeDir(const std::string& name) {
    std::string d = dir_.file(name);
    fs::create_directories(d);
    return d;
  }

  // `run --once`, which must exit 0, or 2 when the run left new dead letters.
  void runOk(int expected_exit = 0) {
    RunResult r = runOnce();
    ASSERT_EQ(r.exit_code, expected_exit) << describe(r);
  }

  // Every entry of `dir` is a finished file of ours: no .tmp, nothing else.
  static void expectOnlyFinishedFiles(const std::string& dir, const std::string& name = "ferry") {
    const std::regex finished(name + "-[0-9]{14}-[0-9a-f]{6}-[0-9]{12}-[0-9]{12}\\.csv");
    for (const auto& n : listDir(dir))
      EXPECT_TRUE(std::regex_match(n, finished)) << "unexpected entry in " << dir << ": " << n;
  }

  std::string plugins_ = dir_.file("plugins");
  std::string data_ = dir_.file("orders.jsonl");
};

const std::vector<std::string> kOrderHeaders = {
    "order_id",      "order_number", "status",       "type",
    "customer_name", "currency",     "subtotal",     "delivery_fee",
    "discount",      "total",        "created_date", "updated_at",
    "confirmed_at",  "completed_at", "item_count",   "previous_version"};

TEST_F(ErpCsvTest, OrderLayoutQuotesEscapesAndFormatsDecimals) {
  const std::string out = makeDir("erp");
  writeOrders({
      {"o1", "1001", 1, "Smith, \"Duck\" Jr.\nBack door", "EUR", 0, -150, {{"Duck", 2, 1250}}},
      {"o2", "1002", 2, "=HYPERLINK(\"http://x\")", "JPY", 0, 0, {{"Tea", 3, 500}}},
      {"o3", "1003", 3, "Zoë Ünal", "EUR", 0, 0, {}},
  });
  writeCsvConfig(csvSink("erp", out));
  runOk();

  EXPECT_EQ(listDir(out), std::vector<std::string>{csvName("ferry", 1, 3)});
  const std::string path = out + "/" + csvName("ferry", 1, 3);
  CsvFile f = readCsv(path, ",", dir_.path());
  ASSERT_EQ(f.rows.size(), 4u);
  EXPECT_FALSE(f.bom);
  EXPECT_EQ(f.crlf, 4);  // one CRLF per record: the default is RFC 4180's
  EXPECT_EQ(f.bare_lf, 0);
  EXPECT_EQ(f.rows[0], kOrderHeaders);

  EXPECT_EQ(cell(f, 1, "order_id"), "o1");
  EXPECT_EQ(cell(f, 1, "customer_name"), "Smith, \"Duck\" Jr.\nBack door");
  EXPECT_EQ(cell(f, 1, "subtotal"), "25.00");
  EXPECT_EQ(cell(f, 1, "delivery_fee"), "2.50");
  EXPECT_EQ(cell(f, 1, "discount"), "-1.50");  // a number: never neutralised
  EXPECT_EQ(cell(f, 1, "total"), "26.00");
  EXPECT_EQ(cell(f, 1, "created_date"), "2026-07-05");
  EXPECT_EQ(cell(f, 1, "updated_at"), "2026-07-05T12:01:00.000Z");
  EXPECT_EQ(cell(f, 1, "completed_at"), "");
  EXPECT_EQ(cell(f, 1, "item_count"), "1");
  EXPECT_EQ(cell(f, 1, "previous_version"), "");

  // A text cell that a spreadsheet would run as a formula gets a leading quote.
  EXPECT_EQ(cell(f, 2, "customer_name"), "'=HYPERLINK(\"http://x\")");
  EXPECT_EQ(cell(f, 2, "subtotal"), "1500");  // JPY has no minor digits
  EXPECT_EQ(cell(f, 2, "delivery_fee"), "250");
  EXPECT_EQ(cell(f, 3, "customer_name"), "Zoë Ünal");
  EXPECT_EQ(cell(f, 3, "item_count"), "0");

  // The bytes themselves: quotes doubled inside a quoted cell, the newline kept inside it.
  const std::string bytes = readFile(path);
  EXPECT_NE(bytes.find(",\"Smith, \"\"Duck\"\" Jr.\nBack door\","), std::string::npos) << bytes;
  EXPECT_NE(bytes.find(",-1.50,"), std::string::npos) << bytes;
  expectOnlyFinishedFiles(out);
}

TEST_F(ErpCsvTest, LinesLayoutWithSemicolonBomAndLf) {
  const std::string out = makeDir("erp");
  writeOrders({
      {"o1", "1001", 1, "Ada", "EUR", 0, 0, {{"Duck; large", 2, 1250}, {"Pond, small", 1, 999}}},
      {"o2", "1002", 2, "Bob", "EUR", 0, 0, {{"Bread", 1, 300}}},
  });
  writeCsvConfig(csvSink("erp", out,
                         "layout = duckhub_order_lines\ndelimiter = ;\nbom = true\n"
                         "line_ending = lf\n"));
  runOk();

  EXPECT_EQ(listDir(out), std::vector<std::string>{csvName("ferry", 1, 2)});
  const std::string path = out + "/" + csvName("ferry", 1, 2);
  CsvFile f = readCsv(path, ";", dir_.path());
  EXPECT_TRUE(f.bom);
  EXPECT_EQ(f.crlf, 0);
  EXPECT_EQ(f.bare_lf, 4);
  ASSERT_EQ(f.rows.size(), 4u);  // header + 3 items
  EXPECT_EQ(f.rows[0].front(), "order_id");
  // One row per item, the order's fields repeated on each.
  EXPECT_EQ(cell(f, 1, "order_number"), "1001");
  EXPECT_EQ(cell(f, 2, "order_number"), "1001");
  EXPECT_EQ(cell(f, 3, "order_number"), "1002");
  EXPECT_EQ(cell(f, 1, "customer_name"), "Ada");
  EXPECT_EQ(cell(f, 2, "customer_name"), "Ada");
  EXPECT_EQ(cell(f, 1, "order_total"), "37.49");
  EXPECT_EQ(cell(f, 2, "order_total"), "37.49");
  EXPECT_EQ(cell(f, 1, "line"), "1");
  EXPECT_EQ(cell(f, 2, "line"), "2");
  EXPECT_EQ(cell(f, 1, "product_name"), "Duck; large");
  EXPECT_EQ(cell(f, 2, "product_name"), "Pond, small");
  EXPECT_EQ(cell(f, 1, "unit_price"), "12.50");
  EXPECT_EQ(cell(f, 1, "line_total"), "25.00");
  EXPECT_EQ(cell(f, 2, "unit_price"), "9.99");
  EXPECT_EQ(cell(f, 1, "quantity"), "2");

  const std::string bytes = readFile(path);
  EXPECT_EQ(bytes.rfind("\xEF\xBB\xBF"
                        "order_id;order_number;",
                        0),
            0u)
      << bytes.substr(0, 40);
  EXPECT_NE(bytes.find(";\"Duck; large\";"), std::string::npos);  // the delimiter is quoted
  EXPECT_NE(bytes.find(";Pond, small;"), std::string::npos);      // a comma is not, with ';'
  expectOnlyFinishedFiles(out);
}

TEST_F(ErpCsvTest, CustomColumnsFormulaNeutralisationAndRaw) {
  const std::string out = makeDir("erp");
  const std::string plain = makeDir("plain");
  writeOrders({
      {"o1", "=1+2", 1, "+49 170 1234567", "EUR", 0, -500, {{"@SUM(A1)", 1, -5}}},
      {"o2", "-7", 2, "\tTabbed", "EUR", 0, 0, {{"Safe", 1, 100}}},
  });
  const std::string columns =
      "columns = number=^/orderNumber; number_raw=raw(^/orderNumber); customer=^/customerName; "
      "product=/productName; price=amount(/unitPrice); discount=amount(^/discountAmount); "
      "src=fixed(duck\\, hub); seq=$sequence; key=$key\n";
  writeCsvConfig(
      csvSink("erp", out, "layout = custom\nrows = /items\nheader = false\n" + columns) +
      csvSink("plain", plain,
              "layout = custom\nrows = /items\nneutralise_formulas = false\n" + columns));
  runOk();

  CsvFile f = readCsv(out + "/" + csvName("ferry", 1, 2), ",", dir_.path());
  ASSERT_EQ(f.rows.size(), 2u) << "header = false: data rows only";
  EXPECT_EQ(f.rows[0], (std::vector<std::string>{"'=1+2", "=1+2", "'+49 170 1234567", "'@SUM(A1)",
                                                 "-0.05", "-5.00", "duck, hub", "1", "o1"}));
  EXPECT_EQ(f.rows[1], (std::vector<std::string>{"'-7", "-7", "'\tTabbed", "Safe", "1.00", "0.00",
                                                 "duck, hub", "2", "o2"}));

  CsvFile p = readCsv(plain + "/" + csvName("ferry", 1, 2), ",", dir_.path());
  ASSERT_EQ(p.rows.size(), 3u);
  EXPECT_EQ(p.rows[0], (std::vector<std::string>{"number", "number_raw", "customer", "product",
                                                 "price", "discount", "src", "seq", "key"}));
  EXPECT_EQ(p.rows[1][0], "=1+2");
  EXPECT_EQ(p.rows[1][2], "+49 170 1234567");
  EXPECT_EQ(p.rows[2][2], "\tTabbed");
}

TEST_F(ErpCsvTest, MaxRowsSplitsABatchIntoFilesAtEventBoundaries) {
  const std::string out = makeDir("erp");
  std::vector<Order> orders;
  const int lines[] = {2, 2, 2, 1, 5};
  for (int i = 0; i < 5; ++i) {
    Order o{"o" + std::to_string(i + 1), std::to_string(2001 + i), i + 1, "C", "EUR", 0, 0, {}};
    for (int l = 0; l < lines[i]; ++l) o.lines.push_back({"P" + std::to_string(l), 1, 100});
    orders.push_back(o);
  }
  writeOrders(orders);
  writeCsvConfig(csvSink("erp", out,
                         "layout = duckhub_order_lines\nmax_rows = 4\nname = shop1\n"
                         "batch_delay = 2s\n"));
  runOk();

  // Greedy: events 1-2 (4 rows), 3-4 (3 rows), 5 alone (5 rows: more than max_rows, its own file).
  EXPECT_EQ(listDir(out), (std::vector<std::string>{csvName("shop1", 1, 2),
                                                    csvName("shop1", 3, 4),
                                                    csvName("shop1", 5, 5)}));
  const size_t expected_rows[] = {4, 3, 5};
  const char* first_numbers[] = {"2001", "2003", "2005"};
  const auto names = listDir(out);
  for (size_t i = 0; i < names.size() && i < 3; ++i) {
    CsvFile f = readCsv(out + "/" + names[i], ",", dir_.path());
    ASSERT_EQ(f.rows.size(), expected_rows[i] + 1) << names[i];
    EXPECT_EQ(f.rows[0].front(), "order_id") << "every file has its header";
    EXPECT_EQ(cell(f, 1, "order_number"), first_numbers[i]) << names[i];
  }
  expectOnlyFinishedFiles(out, "shop1");
}

TEST_F(ErpCsvTest, ANewJournalNeverWritesOverTheFilesOfAnOldOne) {
  const std::string out = makeDir("erp");
  writeOrders({{"o1", "1", 1, "A", "EUR", 0, 0, {}}, {"o2", "2", 2, "B", "EUR", 0, 0, {}}});
  writeCsvConfig(csvSink("erp", out));
  runOk();
  const std::string old_file = csvName("ferry", 1, 2);
  const std::string old_text = readFile(out + "/" + old_file);
  // The journal is lost (deleted by hand): the new one starts its sequences at 1 again, and the
  // ERP has not imported the old file yet.
  fs::remove(dir_.file("journal.db"));
  fs::remove(dir_.file("journal.db-wal"));
  fs::remove(dir_.file("journal.db-shm"));
  writeOrders({{"o3", "3", 3, "C", "EUR", 0, 0, {}}});
  runOk();
  const std::string new_file = csvName("ferry", 1, 1);
  ASSERT_NE(new_file, old_file);
  std::vector<std::string> both{old_file, new_file};
  std::sort(both.begin(), both.end());
  EXPECT_EQ(listDir(out), both);
  EXPECT_EQ(readFile(out + "/" + old_file), old_text) << "the old file is untouched";
  CsvFile f = readCsv(out + "/" + new_file, ",", dir_.path());
  ASSERT_EQ(f.rows.size(), 2u);
  EXPECT_EQ(cell(f, 1, "order_id"), "o3");
}

TEST_F(ErpCsvTest, RedeliveryReplacesTheOlderFileOfTheSameFirstSequence) {
  const std::string out = makeDir("erp");
  // What a crash could leave: a file of a shorter batch that began at sequence 1 (written, but
  // the offset never committed), and a temporary file of an interrupted write.
  // The journal exists from a first run that had nothing to deliver; the crash came later.
  writeFile(data_, "");
  writeCsvConfig(csvSink("erp", out));
  runOk();
  writeFile(out + "/" + csvName("ferry", 1, 1), "order_id\r\nstale\r\n");
  writeFile(out + "/." + csvName("ferry", 1, 7).substr(0, csvName("ferry", 1, 7).size() - 4) +
                ".tmp",
            "order_id\r\nhalf");
  // Another writer's files are left alone.
  writeFile(out + "/other-000000000001-000000000001.csv", "x\r\n");
  writeOrders({{"o1", "1", 1, "A", "EUR", 0, 0, {}},
               {"o2", "2", 2, "B", "EUR", 0, 0, {}},
               {"o3", "3", 3, "C", "EUR", 0, 0, {}}});
  writeCsvConfig(csvSink("erp", out));
  runOk();

  EXPECT_EQ(listDir(out), (std::vector<std::string>{csvName("ferry", 1, 3),
                                                    "other-000000000001-000000000001.csv"}));
  CsvFile f = readCsv(out + "/" + csvName("ferry", 1, 3), ",", dir_.path());
  ASSERT_EQ(f.rows.size(), 4u);
  EXPECT_EQ(cell(f, 3, "order_id"), "o3");
}

TEST_F(ErpCsvTest, UnmappableEventIsDeadLetteredAfterTheEventsBeforeIt) {
  const std::string out = makeDir("erp");
  std::string text = orderLine({"o1", "1", 1, "A", "EUR", 0, 0, {}});
  // o2's total is not an amount in minor units: amount() cannot map it.
  std::string bad = orderLine({"o2", "2", 2, "B", "EUR", 0, 0, {}});
  const std::string from = "\"totalAmount\":250";
  ASSERT_NE(bad.find(from), std::string::npos) << bad;
  bad.replace(bad.find(from), from.size(), "\"totalAmount\":\"twelve\"");
  text += bad + orderLine({"o3", "3", 3, "C", "EUR", 0, 0, {}});
  writeFile(data_, text);
  writeCsvConfig(csvSink("erp", out, "batch_size = 100\n"));
  runOk(2);  // done, with a new dead letter

  // o1 was written before o2 was refused; o3 after it, in a batch of its own.
  EXPECT_EQ(listDir(out), (std::vector<std::string>{csvName("ferry", 1, 1),
                                                    csvName("ferry", 3, 3)}));
  auto dead = deadLetters("erp");
  ASSERT_FALSE(dead.isNull());
  ASSERT_EQ(dead->size(), 1u);
  auto d = dead->getObject(0);
  EXPECT_EQ(str(d, "key"), "o2");
  EXPECT_NE(str(d, "reason").find("column 'total' (amount(/totalAmount))"), std::string::npos)
      << str(d, "reason");
  EXPECT_NE(str(d, "reason").find("not an integer amount"), std::string::npos);
  expectOnlyFinishedFiles(out);
}

TEST_F(ErpCsvTest, MappingMistakesStopFerryAtStartWithColumnAndPosition) {
  const std::string out = makeDir("erp");
  writeOrders({{"o1", "1", 1, "A", "EUR", 0, 0, {}}});
  writeCsvConfig(
      csvSink("erp", out, "layout = custom\ncolumns = id=/id; total=amout(/totalAmount)\n"));
  RunResult r = runOnce();
  EXPECT_EQ(r.exit_code, 78) << describe(r);  // EX_CONFIG
  EXPECT_NE(r.err.find("columns, column 2 ('total'), position 15: unknown function 'amout'"),
            std::string::npos)
      << describe(r);

  writeCsvConfig(csvSink("erp", out, "layout = custom\n"));
  r = runOnce();
  EXPECT_EQ(r.exit_code, 78) << describe(r);
  EXPECT_NE(r.err.find("columns: required with layout = custom"), std::string::npos) << describe(r);
  EXPECT_TRUE(listDir(out).empty());
}

TEST_F(ErpCsvTest, MissingFolderRetriesWithTheFolderNamedAndCatchesUpOnceItExists) {
  const std::string out = dir_.file("not-yet-mounted");
  writeOrders({{"o1", "1", 1, "A", "EUR", 0, 0, {}}, {"o2", "2", 2, "B", "EUR", 0, 0, {}}});
  writeCsvConfig(csvSink("erp", out));
  FerryProcess ferry_run({"run", "--config", config_}, dir_.path());

  std::string message;
  bool retrying = waitUntil([&] {
    auto s = instance(tryStatus(), "sinks", "erp");
    if (s.isNull()) return false;
    message = str(s, "message");
    return str(s, "state") == "retrying";
  });
  ASSERT_TRUE(retrying) << "sink never reported retrying; last message: " << message
                        << "\nferry stderr:\n"
                        << ferry_run.err();
  EXPECT_NE(message.find("'" + out + "'"), std::string::npos) << message;
  EXPECT_NE(message.find("No such file or directory"), std::string::npos) << message;
  EXPECT_TRUE(ferry_run.running());

  fs::create_directories(out);
  bool caught_up = waitUntil([&] {
    auto s = tryStatus();
    auto sink = instance(s, "sinks", "erp");
    return !sink.isNull() && num(sink, "backlog") == 0 && num(s, "last_sequence") == 2 &&
           num(sink, "offset") == 2;
  });
  EXPECT_TRUE(caught_up) << ferry_run.err();
  ferry_run.signal(SIGTERM);
  EXPECT_EQ(ferry_run.wait(), 0) << ferry_run.err();

  EXPECT_EQ(listDir(out), std::vector<std::string>{csvName("ferry", 1, 2)});
  CsvFile f = readCsv(out + "/" + csvName("ferry", 1, 2), ",", dir_.path());
  ASSERT_EQ(f.rows.size(), 3u);
  EXPECT_EQ(cell(f, 1, "order_id"), "o1");
  EXPECT_EQ(cell(f, 2, "order_id"), "o2");
}

TEST_F(ErpCsvTest, RepeatedRunsLeaveOnlyWholeFilesAndEveryChangeOnce) {
  const std::string out = makeDir("erp");
  std::string text;
  // Three runs, each bringing new orders and a new version of an old one.
  for (int run = 0; run < 3; ++run) {
    for (int i = 0; i < 4; ++i) {
      const int n = run * 4 + i;
      text += orderLine({"o" + std::to_string(n),
                         std::to_string(3000 + n),
                         run * 10 + i + 1,
                         "C",
                         "EUR",
                         0,
                         0,
                         {{"X", 1, 100}}});
    }
    // Changed after this run's new orders (versions only move forward, like a real remote).
    text += orderLine({"o0",
                       "3000",
                       run * 10 + 5,
                       "C (changed " + std::to_string(run) + ")",
                       "EUR",
                       0,
                       0,
                       {{"X", 1, 100}}});
    writeFile(data_, text);
    writeCsvConfig(csvSink("erp", out, "max_rows = 3\n"));
    runOk();
  }
  auto status = this->status();
  ASSERT_FALSE(status.isNull());
  const int64_t last = num(status, "last_sequence");

  // Every file is whole (parses, header + rows), and the files' ranges cover every sequence once.
  expectOnlyFinishedFiles(out);
  std::vector<int64_t> seen;
  int64_t rows = 0;
  for (const auto& n : listDir(out)) {
    // ferry-<14 digits>-<6 hex>-<first>-<last>.csv
    const int64_t a = std::stoll(n.substr(28, 12)), b = std::stoll(n.substr(41, 12));
    for (int64_t s = a; s <= b; ++s) seen.push_back(s);
    CsvFile f = readCsv(out + "/" + n, ",", dir_.path());
    ASSERT_GE(f.rows.size(), 2u) << n;
    EXPECT_EQ(f.rows[0], kOrderHeaders) << n;
    EXPECT_EQ(static_cast<int64_t>(f.rows.size()) - 1, b - a + 1) << n << ": one row per event";
    for (size_t r = 1; r < f.rows.size(); ++r) EXPECT_EQ(f.rows[r].size(), kOrderHeaders.size());
    rows += static_cast<int64_t>(f.rows.size()) - 1;
  }
  std::vector<int64_t> expected;
  for (int64_t s = 1; s <= last; ++s) expected.push_back(s);
  EXPECT_EQ(seen, expected);
  // The remote's last line of a key wins: o0 is seen at versions :05, :15 and :25 only, so 11
  // other orders + 3 versions of o0, each exactly once.
  EXPECT_EQ(last, 14);
  EXPECT_EQ(rows, 14);
}

// One test_source line: a Tradecloud shipment with one line and no planned dates yet (no
// departure.etdDate, no destinations).
std::string shipmentLine(int n) {
  const std::string at = updatedAt(n), id = "shp-" + std::to_string(n);
  const std::string meta = R"({"lastUpdatedAt":")" + at + R"("})";
  return R"({"entity":"shipment","key":")" + id + R"(","version":")" + at + R"(","body":{"id":")" +
         id + R"(","supplierShipment":{"shipmentNumber":"SHP-)" + std::to_string(n) +
         R"("},"lines":[{"purchaseOrderNumber":"45000012)" + std::to_string(n) +
         R"(","purchaseOrderLinePosition":"10","item":{"number":"ART-1","name":"Bolt"},)"
         R"("supplierLine":{"despatchAdviceNumber":"DA-1","despatchQuantity":40},"meta":)" +
         meta +
         R"(}],"locations":{"departure":{"location":{"code":"WH-01"}},"destinations":[]},)"
         R"("status":{"processStatus":"Issued","processStatusReason":null},"meta":)" +
         meta + "}}\n";
}

// A built-in layout's column that is empty in every row of a file says so in the log, once per
// sink and column: the ERP gets files with empty ETA/ETD cells, the operator gets told why.
TEST_F(ErpCsvTest, ABuiltInLayoutColumnEmptyInEveryRowIsLoggedOncePerSinkAndColumn) {
  const std::string one_per_file = makeDir("erp");
  const std::string all_in_one = makeDir("erp2");
  const std::string custom = makeDir("custom");
  writeFile(data_, shipmentLine(1) + shipmentLine(2) + shipmentLine(3));
  writeCsvConfig(
      csvSink("erp", one_per_file, "layout = tradecloud_shipment_lines\nmax_rows = 1\n") +
      csvSink("erp2", all_in_one, "layout = tradecloud_shipment_lines\n") +
      csvSink("custom", custom,
              "layout = custom\nrows = /lines\ncolumns = a=/nothing; b=/item/number\n"));
  RunResult r = runOnce();
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  ASSERT_EQ(listDir(one_per_file).size(), 3u) << "precondition: one file per shipment";
  CsvFile f = readCsv(all_in_one + "/" + listDir(all_in_one).at(0), ",", dir_.path());
  ASSERT_EQ(f.rows.size(), 4u);
  EXPECT_EQ(cell(f, 1, "eta"), "");
  EXPECT_EQ(cell(f, 1, "item_number"), "ART-1");

  std::vector<std::string> lines;
  std::istringstream in(r.err);
  for (std::string line; std::getline(in, line);)
    if (line.find("was empty in every row") != std::string::npos) lines.push_back(line);
  auto count = [&](const std::string& part) {
    return std::count_if(lines.begin(), lines.end(),
                         [&](const std::string& l) { return l.find(part) != std::string::npos; });
  };
  // Per sink and column, once, naming the first file and the field the layout reads.
  EXPECT_EQ(count("erp: column 'etd' of layout tradecloud_shipment_lines was empty in every row "
                  "of " + csvName("ferry", 1, 1) + "; the source may not send "
                  "^/locations/departure/etdDate"),
            1)
      << r.err;
  EXPECT_EQ(count("erp: column 'eta' of layout tradecloud_shipment_lines was empty in every row "
                  "of " + csvName("ferry", 1, 1) + "; the source may not send "
                  "^/locations/destinations/0/etaStartDate"),
            1)
      << r.err;
  EXPECT_EQ(count("erp2: column 'etd' of layout tradecloud_shipment_lines was empty in every row "
                  "of " + csvName("ferry", 1, 3)),
            1)
      << r.err;
  EXPECT_EQ(count("erp2: column 'eta' of layout tradecloud_shipment_lines"), 1) << r.err;
  // Nothing else: not the filled columns, not the ones that are often empty (status_reason, the
  // ETA window's times and end), not event fields (previous_version), not custom columns.
  EXPECT_EQ(lines.size(), 4u) << r.err;
}

}  // namespace
}  // namespace ferry::it
