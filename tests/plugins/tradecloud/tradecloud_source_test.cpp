// source_tradecloud_orders and source_tradecloud_shipments end to end: the real `ferry` executable
// loads the real plugins (with sink_erp_csv, and test_sink where a recording sink helps) from a
// temporary plugin folder and polls the Tradecloud simulator program (tradecloud-sim), started as
// a child process on an ephemeral port. The tests compare what the simulator holds (/_sim/state)
// and saw (/_sim/requests) with the CSV files, read back by Python's csv module
// (collect_lines.py), and with `ferry status --json`. The echo rules shared with sink_erp_csv are
// also checked in-process on order JSON.
#include <Poco/Base64Encoder.h>
#include <Poco/JSON/Object.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/StreamCopier.h>
#include <fcntl.h>
#include <ferry/mapping.hpp>
#include <ferry/testing/fake_host.hpp>
#include <ferry/common/Tradecloud.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
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

// Before the simulator's generated hour (it ends at 2025-04-23T10:00:00Z).
constexpr const char* kStartFrom = "2025-04-23T08:00:00Z";
constexpr const char* kEmail = "integration@example.test";
constexpr const char* kPassword = "s3cret-Pa55word";

// ---------------------------------------------------------------------------------------------
// The simulator as a child process
// ---------------------------------------------------------------------------------------------

class Sim {
 public:
  Sim(const std::string& dir, const std::vector<std::string>& args) {
    std::vector<std::string> command{TRADECLOUD_SIM_BINARY, "--port",   "0",
                                     "--port-file",         dir + "/sim.port", "--email",
                                     kEmail,                "--password", kPassword,
                                     "--quiet"};
    command.insert(command.end(), args.begin(), args.end());
    log_ = dir + "/sim.log";
    pid_ = ::fork();
    if (pid_ == 0) {
      int out = ::open((dir + "/sim.out").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      int err = ::open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(out, 1);
      ::dup2(err, 2);
      std::vector<char*> argv;
      for (auto& a : command) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    const bool up = waitUntil(
        [&] {
          std::string text = readFile(dir + "/sim.port");
          if (text.empty() || text.back() != '\n') return false;
          port_ = std::stoi(text);
          return true;
        },
        30s);
    if (!up) throw std::runtime_error("tradecloud-sim did not start: " + readFile(log_));
    company_ = control("GET", "/_sim/state")->getValue<std::string>("company_id");
  }
  ~Sim() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    for (int i = 0; i < 100 && ::waitpid(pid_, &status, WNOHANG) == 0; ++i)
      std::this_thread::sleep_for(50ms);
    if (::waitpid(pid_, &status, WNOHANG) == 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
    }
  }
  Sim(const Sim&) = delete;
  Sim& operator=(const Sim&) = delete;

  std::string baseUrl() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v2"; }
  const std::string& company() const { return company_; }

  Poco::JSON::Object::Ptr control(const std::string& method, const std::string& path,
                                  const std::string& body = "") {
    Poco::Net::HTTPClientSession session("127.0.0.1", static_cast<Poco::UInt16>(port_));
    session.setTimeout(Poco::Timespan(30, 0));
    Poco::Net::HTTPRequest q(method, path, Poco::Net::HTTPMessage::HTTP_1_1);
    if (!body.empty()) {
      q.setContentType("application/json");
      q.setContentLength(static_cast<std::streamsize>(body.size()));
    }
    session.sendRequest(q) << body;
    Poco::Net::HTTPResponse r;
    std::istream& in = session.receiveResponse(r);
    std::string text;
    Poco::StreamCopier::copyToString(in, text);
    if (r.getStatus() != 200)
      throw std::runtime_error(method + " " + path + " -> " + std::to_string(r.getStatus()) +
                               ": " + text);
    return parseObject(text);
  }
  void fault(const std::string& kind, int count = 1) {
    control("POST", "/_sim/faults",
            "{\"kind\":\"" + kind + "\",\"count\":" + std::to_string(count) + "}");
  }
  void change(int count, const std::string& kind = "any") {
    control("POST", "/_sim/change",
            "{\"count\":" + std::to_string(count) + ",\"kind\":\"" + kind + "\"}");
  }
  void config(const std::string& json) { control("POST", "/_sim/config", json); }
  Poco::JSON::Object::Ptr requests() { return control("GET", "/_sim/requests"); }

  // Every document the API serves on `path` (e.g. /v2/shipment/poll) from kStartFrom, as a client
  // with Basic credentials sees it.
  std::vector<Poco::JSON::Object::Ptr> poll(const std::string& path) {
    std::ostringstream credentials;
    Poco::Base64Encoder encoder(credentials);
    encoder.rdbuf()->setLineLength(0);
    encoder << kEmail << ':' << kPassword;
    encoder.close();
    std::vector<Poco::JSON::Object::Ptr> out;
    for (int offset = 0;; offset += 100) {
      Poco::Net::HTTPClientSession session("127.0.0.1", static_cast<Poco::UInt16>(port_));
      session.setTimeout(Poco::Timespan(30, 0));
      Poco::Net::HTTPRequest q("POST", path, Poco::Net::HTTPMessage::HTTP_1_1);
      q.set("Authorization", "Basic " + credentials.str());
      const std::string body = std::string("{\"filters\":{\"lastUpdatedAfter\":\"") + kStartFrom +
                               "\"},\"offset\":" + std::to_string(offset) + ",\"limit\":100}";
      q.setContentType("application/json");
      q.setContentLength(static_cast<std::streamsize>(body.size()));
      session.sendRequest(q) << body;
      Poco::Net::HTTPResponse r;
      std::string text;
      Poco::StreamCopier::copyToString(session.receiveResponse(r), text);
      if (r.getStatus() != 200)
        throw std::runtime_error("POST " + path + " -> " + std::to_string(r.getStatus()) + ": " +
                                 text);
      auto data = parseObject(text)->getArray("data");
      for (size_t i = 0; i < data->size(); ++i)
        out.push_back(data->getObject(static_cast<unsigned>(i)));
      if (data->size() < 100) return out;
    }
  }

  // One line of an order, or of a shipment (id = shipment id|PO number|position).
  struct Line {
    std::string id, updated_at, parent_updated_at, process, in_progress;
  };
  struct State {
    std::map<std::string, Line> order_lines, shipment_lines;
    std::map<std::string, std::string> orders;  // id -> lastUpdatedAt
    std::map<std::string, std::string> order_company;
  };
  State state() {
    State s;
    auto root = control("GET", "/_sim/state");
    auto orders = root->getArray("orders");
    for (size_t i = 0; i < orders->size(); ++i) {
      auto o = orders->getObject(static_cast<unsigned>(i));
      const std::string id = o->getValue<std::string>("id");
      const std::string at = o->getValue<std::string>("lastUpdatedAt");
      s.orders[id] = at;
      s.order_company[id] = o->getValue<std::string>("companyId");
      auto lines = o->getArray("lines");
      for (size_t j = 0; j < lines->size(); ++j) {
        auto l = lines->getObject(static_cast<unsigned>(j));
        Line line{l->getValue<std::string>("id"), l->getValue<std::string>("lastUpdatedAt"), at,
                  l->optValue<std::string>("processStatus", ""),
                  l->optValue<std::string>("inProgressStatus", "")};
        s.order_lines[line.id] = line;
      }
    }
    auto shipments = root->getArray("shipments");
    for (size_t i = 0; i < shipments->size(); ++i) {
      auto o = shipments->getObject(static_cast<unsigned>(i));
      const std::string id = o->getValue<std::string>("id");
      const std::string at = o->getValue<std::string>("lastUpdatedAt");
      auto lines = o->getArray("lines");
      for (size_t j = 0; j < lines->size(); ++j) {
        auto l = lines->getObject(static_cast<unsigned>(j));
        Line line{id + "|" + l->getValue<std::string>("purchaseOrderNumber") + "|" +
                      l->getValue<std::string>("purchaseOrderLinePosition"),
                  l->getValue<std::string>("lastUpdatedAt"), at, "", ""};
        s.shipment_lines[line.id] = line;
      }
    }
    return s;
  }

 private:
  std::string log_;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string company_;
};

int64_t count(const Poco::JSON::Object::Ptr& o, const std::string& key) {
  return o.isNull() || !o->has(key) ? 0 : o->getValue<int64_t>(key);
}

// ---------------------------------------------------------------------------------------------
// The CSV drop folders, read by Python's csv module
// ---------------------------------------------------------------------------------------------

struct Row {
  std::string id, updated_at, parent_updated_at, previous, file;
  std::map<std::string, std::string> cells;
};

struct DropFolder {
  bool ok = false;
  std::string error;
  std::vector<std::string> files, others;
  std::vector<Row> rows;

  // The newest row of each line id (by the document's version; one text format: compares as
  // text).
  std::map<std::string, Row> newest() const {
    std::map<std::string, Row> out;
    for (const auto& r : rows) {
      auto it = out.find(r.id);
      if (it == out.end() || it->second.parent_updated_at < r.parent_updated_at) out[r.id] = r;
    }
    return out;
  }
  std::vector<std::string> duplicates() const {
    std::map<std::pair<std::string, std::string>, int> seen;
    std::vector<std::string> out;
    for (const auto& r : rows)
      if (++seen[{r.id, r.parent_updated_at}] == 2) out.push_back(r.id + "@" + r.parent_updated_at);
    return out;
  }
  std::vector<Row> at(const std::string& parent_version) const {
    std::vector<Row> out;
    for (const auto& r : rows)
      if (r.parent_updated_at == parent_version) out.push_back(r);
    return out;
  }
};

enum class Kind { kOrders, kShipments };

DropFolder readDropFolder(const std::string& dir, const std::string& scratch, Kind kind) {
  static int n = 0;
  const std::string out = scratch + "/collect" + std::to_string(++n) + ".json";
  const std::string err = scratch + "/collect.err";
  const std::string command = std::string("'") + PYTHON3 + "' '" + COLLECT_LINES_SCRIPT + "' '" +
                              dir + "' > '" + out + "' 2> '" + err + "'";
  DropFolder f;
  if (std::system(command.c_str()) != 0) {
    f.error = readFile(err);
    return f;
  }
  auto o = parseObject(readFile(out));
  removeFile(out);
  auto strings = [](const Poco::JSON::Array::Ptr& a) {
    std::vector<std::string> v;
    for (size_t i = 0; i < a->size(); ++i)
      v.push_back(a->getElement<std::string>(static_cast<unsigned>(i)));
    return v;
  };
  f.files = strings(o->getArray("files"));
  f.others = strings(o->getArray("others"));
  auto rows = o->getArray("rows");
  for (size_t i = 0; i < rows->size(); ++i) {
    auto cells = rows->getObject(static_cast<unsigned>(i));
    Row r;
    for (const auto& [k, v] : *cells) r.cells[k] = v.toString();
    if (kind == Kind::kOrders) {
      r.id = r.cells["line_id"];
      r.parent_updated_at = r.cells["order_updated_at"];
    } else {
      r.id = r.cells["shipment_id"] + "|" + r.cells["purchase_order_number"] + "|" +
             r.cells["line_position"];
      r.parent_updated_at = r.cells["shipment_updated_at"];
    }
    r.updated_at = r.cells["line_updated_at"];
    r.previous = r.cells["previous_version"];
    r.file = r.cells["_file"];
    f.rows.push_back(std::move(r));
  }
  f.ok = true;
  return f;
}

// ---------------------------------------------------------------------------------------------
// The fixture
// ---------------------------------------------------------------------------------------------

class TradecloudSourceTest : public FerryTest {
 protected:
  void SetUp() override {
    fs::create_directories(plugins_);
    fs::copy_file(ORDERS_PLUGIN, plugins_ + "/source_tradecloud_orders.so");
    fs::copy_file(SHIPMENTS_PLUGIN, plugins_ + "/source_tradecloud_shipments.so");
    fs::copy_file(SINK_ERP_CSV_PLUGIN, plugins_ + "/sink_erp_csv.so");
    fs::copy_file(TEST_SINK_PLUGIN, plugins_ + "/test_sink.so");
    use("a");
  }

  Sim& startSim(const std::vector<std::string>& args) {
    sim_ = std::make_unique<Sim>(dir_.path(), args);
    return *sim_;
  }

  // A fresh journal and drop folders under `tag` (several setups in one test).
  void use(const std::string& tag) {
    tag_ = tag;
    fs::create_directories(ordersDir());
    fs::create_directories(shipmentsDir());
  }
  std::string ordersDir() const { return dir_.file(tag_ + "-erp-orders"); }
  std::string shipmentsDir() const { return dir_.file(tag_ + "-erp-shipments"); }

  std::string hostConfig() const {
    return "[host]\njournal = " + dir_.file(tag_ + "-journal.db") + "\nplugin_dir = " + plugins_ +
           "\nlog_level = info\nretry_initial = 50ms\nretry_max = 1s\n\n";
  }
  // A source of `plugin` on the simulator's account; `extra` adds or overrides keys.
  std::string source(const std::string& plugin, const std::string& name,
                     const std::string& extra) const {
    return section("source." + name,
                   {{"plugin", plugin},
                    {"base_url", sim_->baseUrl()},
                    {"email", kEmail},
                    {"password", kPassword},
                    {"interval", "200ms"},
                    {"start_from", kStartFrom},
                    {"timeout", "5s"}},
                   extra);
  }
  std::string orders(const std::string& name = "tc-orders", const std::string& extra = "") const {
    return source("source_tradecloud_orders", name, extra);
  }
  std::string shipments(const std::string& name = "tc-shipments",
                        const std::string& extra = "") const {
    return source("source_tradecloud_shipments", name, extra);
  }
  // The two CSV sinks (orders from tc-orders; shipments from tc-shipments unless `orders_only`).
  std::string csvSinks(const std::string& extra = "", bool orders_only = false) const {
    return section("sink.erp-orders",
                   {{"plugin", "sink_erp_csv"},
                    {"from", "tc-orders"},
                    {"dir", ordersDir()},
                    {"layout", "tradecloud_order_lines"},
                    {"batch_delay", "100ms"}},
                   extra) +
           (orders_only ? "" : section("sink.erp-shipments",
                   {{"plugin", "sink_erp_csv"},
                    {"from", "tc-shipments"},
                    {"dir", shipmentsDir()},
                    {"layout", "tradecloud_shipment_lines"},
                    {"batch_delay", "100ms"}},
                   ""));
  }
  void writeTcConfig(const std::string& sections) { writeFile(config_, hostConfig() + sections); }

  DropFolder csv(Kind kind) {
    return readDropFolder(kind == Kind::kOrders ? ordersDir() : shipmentsDir(), dir_.path(), kind);
  }

  // Every line the simulator holds is in the CSV at its latest version (the newest row of its id
  // carries the document's current version and the line's current change time); nothing is
  // left half-written, every file parses, no line is written twice at one version.
  void expectComplete(const std::map<std::string, Sim::Line>& lines, Kind kind,
                      const std::string& what) {
    DropFolder f = csv(kind);
    ASSERT_TRUE(f.ok) << what << ": a CSV file did not parse: " << f.error;
    EXPECT_TRUE(f.others.empty()) << what << ": unexpected entries, e.g. " << f.others.front();
    auto newest = f.newest();
    int missing = 0, stale = 0;
    std::string example;
    for (const auto& [id, line] : lines) {
      auto it = newest.find(id);
      if (it == newest.end()) {
        if (++missing <= 3) example += " missing " + id + "@" + line.parent_updated_at + ";";
      } else if (it->second.parent_updated_at != line.parent_updated_at ||
                 it->second.updated_at != line.updated_at) {
        if (++stale <= 3)
          example += " stale " + id + ": csv " + it->second.parent_updated_at + "/" +
                     it->second.updated_at + ", sim " + line.parent_updated_at + "/" +
                     line.updated_at + ";";
      }
    }
    EXPECT_EQ(missing, 0) << what << ":" << example;
    EXPECT_EQ(stale, 0) << what << ":" << example;
    size_t foreign = 0;
    for (const auto& [id, row] : newest) foreign += lines.count(id) == 0;
    EXPECT_EQ(foreign, 0u) << what << ": rows for lines the simulator does not hold";
    auto dup = f.duplicates();
    EXPECT_TRUE(dup.empty()) << what << ": written twice: " << (dup.empty() ? "" : dup.front());
  }
  void expectAllComplete(const std::string& what) {
    Sim::State s = sim_->state();
    expectComplete(s.order_lines, Kind::kOrders, what + " (orders)");
    expectComplete(s.shipment_lines, Kind::kShipments, what + " (shipments)");
  }

  // The line-level check of a drop folder of order lines: the newest row of every line the
  // simulator holds carries the line's latest state (its change time and statuses). With
  // `all_lines` false, lines that are the buyer's own open requests right now are not checked:
  // their latest change is our echo, which stays out of the ERP until it is settled. No row may
  // show our own open request where `skip_own` (skip_echo_lines = buyer).
  void expectLinesLatest(const std::string& dir, const Sim::State& s, bool all_lines,
                         bool skip_own, const std::string& what) {
    DropFolder f = readDropFolder(dir, dir_.path(), Kind::kOrders);
    ASSERT_TRUE(f.ok) << what << ": a CSV file did not parse: " << f.error;
    EXPECT_TRUE(f.others.empty()) << what << ": unexpected entries, e.g. " << f.others.front();
    auto newest = f.newest();
    int missing = 0, stale = 0, checked = 0;
    std::string example;
    for (const auto& [id, line] : s.order_lines) {
      if (!all_lines && line.in_progress == "OpenBuyerReopenRequest") continue;
      ++checked;
      auto it = newest.find(id);
      if (it == newest.end()) {
        if (++missing <= 3) example += " missing " + id + "@" + line.updated_at + ";";
        continue;
      }
      const Row& r = it->second;
      if (r.updated_at != line.updated_at || r.cells.at("process_status") != line.process ||
          r.cells.at("in_progress_status") != line.in_progress) {
        if (++stale <= 3)
          example += " stale " + id + ": csv " + r.updated_at + " " +
                     r.cells.at("process_status") + "/" + r.cells.at("in_progress_status") +
                     ", sim " + line.updated_at + " " + line.process + "/" + line.in_progress +
                     ";";
      }
    }
    EXPECT_GT(checked, 0) << what;
    EXPECT_EQ(missing, 0) << what << ":" << example;
    EXPECT_EQ(stale, 0) << what << ":" << example;
    if (skip_own) {
      for (const auto& r : f.rows)
        EXPECT_NE(r.cells.at("in_progress_status"), "OpenBuyerReopenRequest")
            << what << ": our own request reached the ERP: " << r.id;
    }
  }

  void runOk(const std::string& what) {
    RunResult r = runOnce();
    ASSERT_EQ(r.exit_code, 0) << what << ": " << describe(r);
  }

  std::string plugins_ = dir_.file("plugins");
  std::string tag_ = "a";
  std::unique_ptr<Sim> sim_;
};

// Largest number of orders sharing one lastUpdatedAt.
size_t largestTie(const Sim::State& s) {
  std::map<std::string, size_t> by_instant;
  size_t largest = 0;
  for (const auto& [id, at] : s.orders) largest = std::max(largest, ++by_instant[at]);
  return largest;
}

// ---------------------------------------------------------------------------------------------
// 1. Backfill under every window and empty-page setting, ties at page boundaries and larger
//    than a page
// ---------------------------------------------------------------------------------------------

TEST_F(TradecloudSourceTest, BackfillIsCompleteUnderEveryWindowAndEmptyPageSetting) {
  Sim& sim = startSim({"--seed", "21", "--orders", "250", "--shipments", "60",
                       "--rate-limit", "0"});
  ASSERT_GE(largestTie(sim.state()), 105u) << "precondition: a tie group larger than a page";
  struct Setup {
    std::string window, empty, page_size;
  };
  const std::vector<Setup> setups{{"exclusive", "absent", "7"},
                                  {"inclusive", "null", "7"},
                                  {"exclusive", "present", "100"},
                                  {"inclusive", "absent", "100"},
                                  {"exclusive", "null", "100"}};
  int n = 0;
  for (const auto& s : setups) {
    SCOPED_TRACE(s.window + " window, empty page lastUpdatedAt " + s.empty + ", page_size " +
                 s.page_size);
    use("setup" + std::to_string(++n));
    sim.config("{\"window\":\"" + s.window + "\",\"empty_last_updated\":\"" + s.empty + "\"}");
    // tc-future asks from after every document: all its pages are empty.
    const std::string page = "page_size = " + s.page_size + "\n";
    writeTcConfig(orders("tc-orders", page) + shipments("tc-shipments", page) +
                  orders("tc-future", "start_from = 2030-01-01T00:00:00Z\n") + csvSinks());
    runOk("backfill");
    expectAllComplete("after the backfill");

    sim.change(8, "any");
    runOk("after changes");
    expectAllComplete("after changes");

    auto st = status();
    ASSERT_FALSE(st.isNull());
    for (const char* name : {"tc-orders", "tc-shipments", "tc-future"}) {
      auto src = instance(st, "sources", name);
      ASSERT_FALSE(src.isNull()) << name;
      EXPECT_EQ(str(src, "state"), "idle") << name << ": " << str(src, "message");
    }
    auto future = instance(st, "sources", "tc-future")->getObject("cursor");
    if (!future.isNull()) {
      EXPECT_EQ(future->getValue<std::string>("since"), "2030-01-01T00:00:00.000Z")
          << "empty pages leave the cursor where it was";
    }
    auto newest = sim.state();
    std::string last;
    for (const auto& [id, at] : newest.orders) last = std::max(last, at);
    EXPECT_EQ(instance(st, "sources", "tc-orders")->getObject("cursor")->getValue<std::string>(
                  "since"),
              last);
  }
  EXPECT_EQ(count(sim.requests()->getObject("by_status"), "400"), 0) << "every request valid";
}

TEST_F(TradecloudSourceTest, CompanyFilterAndStatusFiltersReachTheApi) {
  Sim& sim = startSim({"--seed", "22", "--orders", "120", "--shipments", "50",
                       "--rate-limit", "0"});
  writeTcConfig(orders("tc-orders", "company_id = " + sim.company() + "\npage_size = 9\n") +
                shipments("tc-shipments", "company_id = " + sim.company() + "\n") +
                orders("tc-confirmed", "process_status = Confirmed, Completed\n") + csvSinks());
  runOk("backfill");
  Sim::State s = sim.state();
  std::map<std::string, Sim::Line> ours;
  size_t foreign = 0;
  for (const auto& [id, line] : s.order_lines) {
    const std::string order = id.substr(0, id.rfind('-'));
    if (s.order_company[order] == sim.company()) ours[id] = line;
    else ++foreign;
  }
  ASSERT_GT(foreign, 0u) << "precondition: another buyer's orders exist";
  expectComplete(ours, Kind::kOrders, "the company's orders");
  EXPECT_EQ(count(sim.requests()->getObject("by_status"), "400"), 0)
      << "the filters are valid request bodies";
  auto st = status();
  EXPECT_EQ(str(instance(st, "sources", "tc-confirmed"), "state"), "idle");
}

// ---------------------------------------------------------------------------------------------
// 2. Orders changing while paging
// ---------------------------------------------------------------------------------------------

TEST_F(TradecloudSourceTest, DocumentsChangingWhilePagingAreNotLost) {
  Sim& sim = startSim({"--seed", "23", "--orders", "300", "--shipments", "120",
                       "--rate-limit", "0"});
  writeTcConfig(orders("tc-orders", "page_size = 10\n") +
                shipments("tc-shipments", "page_size = 10\n") + csvSinks());
  sim.control("POST", "/_sim/change-while-paging",
              "{\"after_requests\":3,\"count\":3,\"where\":\"served\"}");
  runOk("backfill while documents slide across page boundaries");
  auto cwp = sim.requests()->getObject("change_while_paging");
  ASSERT_TRUE(cwp->getValue<bool>("fired")) << "precondition: the changes were applied";
  EXPECT_EQ(cwp->getArray("changed")->size(), 3u);
  // The two sources page concurrently: the changes may land after a source read its last page
  // of the cycle. Stamped after the cursor, they belong to the next cycle; none is lost.
  runOk("the next cycle");
  expectAllComplete("after the first cycles");

  sim.change(30, "any");
  sim.control("POST", "/_sim/change-while-paging",
              "{\"after_requests\":1,\"count\":2,\"where\":\"served\"}");
  runOk("second cycle");
  EXPECT_TRUE(sim.requests()->getObject("change_while_paging")->getValue<bool>("fired"));
  runOk("the next cycle");
  expectAllComplete("after the second cycles");
}

// ---------------------------------------------------------------------------------------------
// 3. Tokens: expiry mid-backfill, single-use refresh, one session and one budget for both
// ---------------------------------------------------------------------------------------------

TEST_F(TradecloudSourceTest, TokensRefreshMidBackfillOnceEachBothSourcesShareSessionAndBudget) {
  Sim& sim = startSim({"--seed", "24", "--orders", "1400", "--shipments", "400",
                       "--access-ttl", "2s"});
  // About 100 requests at under 10 per second: several token lifetimes.
  writeTcConfig(orders("tc-orders", "page_size = 20\n") +
                shipments("tc-shipments", "page_size = 20\n") + csvSinks());
  runOk("backfill");
  expectAllComplete("after the backfill");

  auto q = sim.requests();
  EXPECT_EQ(count(q, "logins"), 1) << "one session for both sources";
  EXPECT_GE(count(q, "refreshes"), 3) << "the 2 s tokens were refreshed during the backfill";
  EXPECT_EQ(count(q, "refresh_reuse_rejected"), 0) << "a refresh token was used twice";
  EXPECT_EQ(count(q->getObject("by_status"), "401"), 0) << "refreshed before expiry";
  EXPECT_LE(count(q->getObject("max_per_second"), kEmail), 10);
  EXPECT_EQ(count(q, "rate_limited"), 0) << "the simulator never had to refuse a request";
  EXPECT_GE(count(q, "bearer_polls"), 90);
}

TEST_F(TradecloudSourceTest, A401LogsInAgainOnceAndTheSourceGoesOn) {
  Sim& sim = startSim({"--seed", "25", "--orders", "80", "--shipments", "30"});
  writeTcConfig(orders() + shipments() + csvSinks());
  FerryProcess ferry({"run", "--config", config_}, dir_.path());
  Sim::State before = sim.state();
  ASSERT_TRUE(waitUntil(
      [&] {
        auto f = csv(Kind::kOrders);
        return f.ok && f.newest().size() == before.order_lines.size();
      },
      60s))
      << ferry.err();
  sim.fault("401");
  sim.change(5, "order");
  Sim::State after = sim.state();
  ASSERT_TRUE(waitUntil(
      [&] {
        auto newest = csv(Kind::kOrders).newest();
        for (const auto& [id, line] : after.order_lines) {
          auto it = newest.find(id);
          if (it == newest.end() || it->second.parent_updated_at != line.parent_updated_at)
            return false;
        }
        return true;
      },
      60s))
      << "the changes after the 401 did not arrive: " << ferry.err();
  auto st = status();
  EXPECT_NE(str(instance(st, "sources", "tc-orders"), "state"), "stopped");
  EXPECT_NE(str(instance(st, "sources", "tc-shipments"), "state"), "stopped");
  ferry.signal(SIGTERM);
  EXPECT_EQ(ferry.wait(), 0) << ferry.err();
  auto q = sim.requests();
  EXPECT_EQ(count(q, "faults_injected"), 1);
  EXPECT_EQ(count(q, "logins"), 2) << "one login, and one more after the 401";
  EXPECT_EQ(count(q, "login_failures"), 0);
  EXPECT_EQ(count(q, "refresh_reuse_rejected"), 0);
  expectAllComplete("after the 401");
}

// A token whose exp is absurdly far away (past int64 milliseconds, or past any integer) is
// believed for the documented hour at most: the source logs in once and polls on with it, instead
// of refreshing before every poll because the lifetime overflowed.
TEST_F(TradecloudSourceTest, AHugeTokenExpiryDoesNotRefreshBeforeEveryPoll) {
  Sim& sim = startSim({"--seed", "30", "--orders", "10", "--shipments", "5"});
  for (const std::string exp : {"9223372036854775807", "99999999999999999999"}) {
    SCOPED_TRACE("exp = " + exp);
    use("exp" + exp);
    sim.config("{\"access_exp\":\"" + exp + "\"}");
    sim.control("POST", "/_sim/reset-stats");
    writeTcConfig(orders() + csvSinks("", true));
    FerryProcess ferry({"run", "--config", config_}, dir_.path());
    // The 200 ms interval: a dozen polls.
    EXPECT_TRUE(waitUntil([&] { return count(sim.requests(), "bearer_polls") >= 12; }, 60s))
        << ferry.err();
    ferry.signal(SIGTERM);
    EXPECT_EQ(ferry.wait(), 0) << ferry.err();
    auto q = sim.requests();
    EXPECT_EQ(count(q, "logins"), 1);
    EXPECT_EQ(count(q, "refreshes"), 0) << "refreshed although the token lives for an hour";
    EXPECT_EQ(count(q->getObject("by_status"), "401"), 0);
  }
}

TEST_F(TradecloudSourceTest, WrongPasswordStopsBothSourcesWithAClearStatusAndNoPassword) {
  Sim& sim = startSim({"--seed", "26", "--orders", "20", "--shipments", "10"});
  const std::string wrong = "Wr0ng-Passw0rd-xyz";
  for (const std::string auth : {"token", "basic"}) {
    SCOPED_TRACE("auth = " + auth);
    use(auth);
    writeTcConfig(orders("tc-orders", "password = " + wrong + "\nauth = " + auth + "\n") +
                  shipments("tc-shipments", "password = " + wrong + "\nauth = " + auth + "\n") +
                  csvSinks());
    RunResult r = runOnce();
    EXPECT_EQ(r.exit_code, 1) << describe(r);
    EXPECT_EQ(r.err.find(wrong), std::string::npos) << "the password was printed";
    EXPECT_EQ(r.out.find(wrong), std::string::npos) << "the password was printed";
    auto st = status();
    ASSERT_FALSE(st.isNull());
    for (const char* name : {"tc-orders", "tc-shipments"}) {
      auto src = instance(st, "sources", name);
      EXPECT_EQ(str(src, "state"), "stopped") << name;
      const std::string message = str(src, "message");
      EXPECT_NE(message.find("authentication refused"), std::string::npos) << message;
      EXPECT_NE(message.find("email and password"), std::string::npos) << message;
      EXPECT_EQ(message.find(wrong), std::string::npos) << message;
      if (auth == "token") {
        EXPECT_NE(message.find("refused the login of " + std::string(kEmail)), std::string::npos)
            << message;
      }
    }
    EXPECT_TRUE(csv(Kind::kOrders).rows.empty());
  }
  auto q = sim.requests();
  EXPECT_LE(count(q, "login_failures"), 2) << "one refused login per source, no hammering";
  EXPECT_LE(count(q->getObject("by_status"), "401"), 4);
  EXPECT_EQ(count(q, "logins"), 0);
}

// ---------------------------------------------------------------------------------------------
// 4. 429s, Basic
// ---------------------------------------------------------------------------------------------

TEST_F(TradecloudSourceTest, TooManyRequestsAreRetriedAndEverythingArrives) {
  Sim& sim = startSim({"--seed", "27", "--orders", "200", "--shipments", "80"});
  writeTcConfig(orders("tc-orders", "page_size = 25\n") +
                shipments("tc-shipments", "page_size = 25\n") + csvSinks());
  sim.fault("429", 2);
  sim.fault("429-retry-after", 2);
  sim.fault("503", 1);
  runOk("backfill through 429s");
  auto q = sim.requests();
  EXPECT_EQ(count(q, "faults_injected"), 5);
  EXPECT_EQ(count(q, "faults_pending"), 0);
  EXPECT_EQ(count(q->getObject("by_status"), "429"), 4)
      << "only the injected 429s: the simulator's own limiter never had to refuse";
  EXPECT_LE(count(q->getObject("max_per_second"), kEmail), 10);
  expectAllComplete("after the 429s");
}

TEST_F(TradecloudSourceTest, BasicAuthSendsCredentialsOnEveryRequestAndWorks) {
  Sim& sim = startSim({"--seed", "28", "--orders", "60", "--shipments", "20",
                       "--basic-delay-ms", "20"});
  writeTcConfig(orders("tc-orders", "auth = basic\npage_size = 20\n") +
                shipments("tc-shipments", "auth = basic\n") + csvSinks());
  runOk("backfill with Basic");
  expectAllComplete("after the backfill");
  auto q = sim.requests();
  EXPECT_EQ(count(q, "logins"), 0);
  EXPECT_EQ(count(q, "bearer_polls"), 0);
  EXPECT_GE(count(q, "basic_polls"), 4);
}

// ---------------------------------------------------------------------------------------------
// 5. Echo
// ---------------------------------------------------------------------------------------------

TEST_F(TradecloudSourceTest, OwnOpenRequestsAreEchoesAndEchoLinesStayOutOfTheCsv) {
  Sim& sim = startSim({"--seed", "29", "--orders", "60", "--shipments", "5",
                       "--rate-limit", "0"});
  const std::string rec = dir_.file("rec.jsonl");
  writeTcConfig(orders() +
                csvSinks("only_changed_lines = true\nskip_echo_lines = buyer\n", true) +
                section("sink.rec",
                        {{"plugin", "test_sink"}, {"from", "tc-orders"}, {"out", rec},
                         {"skip_echo", "false"}, {"batch_delay", "50ms"}},
                        ""));
  runOk("backfill");
  const auto initial_rows = csv(Kind::kOrders).rows.size();

  // Two orders of our company with at least two lines that can take a request.
  Sim::State s = sim.state();
  std::map<std::string, int> eligible;
  for (const auto& [id, line] : s.order_lines) {
    const std::string order = id.substr(0, id.rfind('-'));
    if (s.order_company[order] == sim.company() &&
        (line.process == "Issued" || line.process == "Confirmed"))
      ++eligible[order];
  }
  std::vector<std::string> picks;
  for (const auto& [order, n] : eligible)
    if (n >= 2 && picks.size() < 2) picks.push_back(order);
  ASSERT_EQ(picks.size(), 2u) << "precondition: orders with two open lines";
  const std::string a = picks[0], b = picks[1];

  // A: only our own request (the ERP's update) -> an echo, no row at all.
  auto ea = sim.control("POST", "/_sim/echo",
                        "{\"order_id\":\"" + a + "\",\"role\":\"buyer\",\"lines\":1}");
  // B: the supplier proposes on one line, then our ERP opens a request on another: the change is
  // no echo (the supplier's line is news), but our own line must not reach the ERP.
  auto sb = sim.control("POST", "/_sim/echo",
                        "{\"order_id\":\"" + b + "\",\"role\":\"supplier\",\"lines\":1}");
  auto eb = sim.control("POST", "/_sim/echo",
                        "{\"order_id\":\"" + b + "\",\"role\":\"buyer\",\"lines\":1}");
  const std::string a_version = ea->getValue<std::string>("lastUpdatedAt");
  const std::string b_version = eb->getValue<std::string>("lastUpdatedAt");
  const std::string supplier_line = sb->getArray("line_ids")->getElement<std::string>(0);
  const std::string buyer_line = eb->getArray("line_ids")->getElement<std::string>(0);
  ASSERT_NE(supplier_line, buyer_line);
  runOk("after the requests");

  auto lines = readSinkLines(rec);
  auto find = [&](const std::string& key, const std::string& version) {
    return std::find_if(lines.begin(), lines.end(), [&](const SinkLine& l) {
      return l.key == key && l.version == version;
    });
  };
  ASSERT_NE(find(a, a_version), lines.end()) << "A's change reached the recording sink";
  EXPECT_TRUE(find(a, a_version)->echo) << "only our own open request changed in A";
  ASSERT_NE(find(b, b_version), lines.end());
  EXPECT_FALSE(find(b, b_version)->echo) << "the supplier's proposal in B is not ours";
  for (const auto& l : lines)
    if (l.key != a) {
      EXPECT_FALSE(l.echo) << l.key << "@" << l.version;
    }

  DropFolder f = csv(Kind::kOrders);
  ASSERT_TRUE(f.ok) << f.error;
  EXPECT_TRUE(f.at(a_version).empty()) << "the echo event reached the CSV";
  auto b_rows = f.at(b_version);
  ASSERT_EQ(b_rows.size(), 1u) << "only B's changed line that is not ours";
  EXPECT_EQ(b_rows[0].id, supplier_line);
  EXPECT_EQ(b_rows[0].cells["in_progress_status"], "OpenSupplierProposal");
  EXPECT_EQ(f.rows.size(), initial_rows + 1);
  for (const auto& r : f.rows)
    EXPECT_NE(r.cells.at("in_progress_status"), "OpenBuyerReopenRequest") << r.id;
}

TEST(TradecloudEchoRules, LinesChangedSinceTheDeliveredVersionDecideAndEachRuleHasItsStatuses) {
  namespace tc = ferry::tradecloud;
  simdjson::dom::parser parser;
  auto order = [&](const std::string& a_status, const std::string& a_at,
                   const std::string& b_status, const std::string& b_at) {
    return parser.parse(
        "{\"id\":\"o\",\"lastUpdatedAt\":\"2025-04-23T10:00:00.000Z\",\"lines\":["
        "{\"lastUpdatedAt\":\"" + a_at + "\",\"status\":{\"processStatus\":\"InProgress\","
        "\"inProgressStatus\":\"" + a_status + "\"}},"
        "{\"lastUpdatedAt\":\"" + b_at + "\",\"status\":{\"processStatus\":\"Confirmed\","
        "\"inProgressStatus\":\"" + b_status + "\"}}]}").value();
  };
  const std::string now = "2025-04-23T10:00:00.000Z", old = "2025-04-20T00:00:00.000Z";
  const std::optional<int64_t> delivered = 1745398800000;  // 2025-04-23T09:00:00Z
  using tc::EchoRule;
  using tc::Role;
  // Only the buyer's own request changed since the delivered version: an echo for the buyer,
  // not for the supplier.
  EXPECT_TRUE(tc::isEchoOrder(order("OpenBuyerReopenRequest", now, "", old),
                              EchoRule::kOpenRequests, Role::kBuyer, delivered));
  EXPECT_FALSE(tc::isEchoOrder(order("OpenBuyerReopenRequest", now, "", old),
                               EchoRule::kOpenRequests, Role::kSupplier, delivered));
  EXPECT_TRUE(tc::isEchoOrder(order("OpenSupplierShipmentRescheduleRequest", now, "", old),
                              EchoRule::kOpenRequests, Role::kSupplier, delivered));
  // Never on first sight (no delivered version): the ERP never had the order.
  EXPECT_FALSE(tc::isEchoOrder(order("OpenBuyerReopenRequest", now, "", old),
                               EchoRule::kOpenRequests, Role::kBuyer, std::nullopt));
  // Another line changed after the delivered version, however long before our request: news.
  EXPECT_FALSE(tc::isEchoOrder(order("OpenBuyerReopenRequest", now, "", "2025-04-23T09:00:00.001Z"),
                               EchoRule::kOpenRequests, Role::kBuyer, delivered));
  EXPECT_TRUE(tc::isEchoOrder(order("OpenBuyerReopenRequest", now, "", "2025-04-23T09:00:00.000Z"),
                              EchoRule::kOpenRequests, Role::kBuyer, delivered));
  // in-progress: the changed line is InProgress; the Confirmed one changed too -> not an echo.
  EXPECT_TRUE(tc::isEchoOrder(order("", now, "", old), EchoRule::kInProgress, Role::kBuyer,
                              delivered));
  EXPECT_FALSE(tc::isEchoOrder(order("", now, "", now), EchoRule::kInProgress, Role::kBuyer,
                               delivered));
  EXPECT_FALSE(tc::isEchoOrder(order("OpenBuyerReopenRequest", now, "", old), EchoRule::kOff,
                               Role::kBuyer, delivered));
  // No line changed since the delivered version (an order-level change): not an echo.
  EXPECT_FALSE(tc::isEchoOrder(order("OpenBuyerReopenRequest", old, "", old),
                               EchoRule::kOpenRequests, Role::kBuyer, delivered));
}

// The metadata of an order (ferry_item.meta): its purchase-order numbers, and the positions of
// the lines that are our own open requests by the source's role and echo options. The real
// plugin, driven in-process by the SDK's fake host with canned answers.
ferry::testing::CannedResponse tradecloudAnswer(const ferry::testing::HttpCall& call,
                                                const std::string& page) {
  if (call.url.find("/authentication/login") != std::string::npos) {
    ferry::testing::CannedResponse r = ferry::testing::CannedResponse::json(200, "");
    r.headers.emplace_back("Set-Authorization", "Bearer a.b.c");
    r.headers.emplace_back("Set-Refresh-Token", "r-1");
    return r;
  }
  return ferry::testing::CannedResponse::json(200, R"({"data":[)" + page + R"(],"total":1})");
}

std::vector<ferry::testing::EmittedItem> fetchWith(const char* plugin, const std::string& page,
                                                   std::map<std::string, std::string> options) {
  ferry::testing::FakeHost host;
  host.onHttp([&](const ferry::testing::HttpCall& call) { return tradecloudAnswer(call, page); });
  options.insert({{"base_url", "http://tc.test/v2"}, {"email", kEmail}, {"password", kPassword}});
  auto source = host.create(ferry::testing::Plugin::load(plugin), options);
  auto got = source.fetch("2025-04-23T08:00:00.000Z");
  EXPECT_EQ(got.status, FERRY_FETCH_OK) << got.message;
  return got.items;
}

TEST(TradecloudMeta, OrdersNameTheirPoNumbersAndOurOwnLinesByRoleAndEchoRule) {
  auto line = [](const std::string& process, const std::string& in_progress) {
    return R"({"id":"l","lastUpdatedAt":"2025-04-23T09:00:00.000Z","status":{"processStatus":")" +
           process + R"(","inProgressStatus":)" +
           (in_progress.empty() ? "null" : "\"" + in_progress + "\"") + "}}";
  };
  const std::string lines = "[" + line("Confirmed", "") + "," +
                            line("InProgress", "OpenBuyerReopenRequest") + "," +
                            line("InProgress", "OpenSupplierProposal") + "," +
                            line("Issued", "") + "]";
  const std::string order =
      R"({"id":"c-4500001019","lastUpdatedAt":"2025-04-23T09:00:00.000Z","buyerOrder":)"
      R"({"companyId":"c","purchaseOrderNumber":"4500001019"},"supplierOrder":)"
      R"({"companyId":"s","buyerAccountNumber":"CUST-700","salesOrderNumber":"SO-77"},)"
      R"("lines":)" + lines + "}";
  // The simulator's shape: no sales-order number yet.
  const std::string unconfirmed =
      R"({"id":"c-4500001020","lastUpdatedAt":"2025-04-23T09:00:00.000Z","buyerOrder":)"
      R"({"purchaseOrderNumber":"4500001020"},"supplierOrder":{"salesOrderNumber":null},)"
      R"("lines":[]})";
  auto metas = [&](std::map<std::string, std::string> options) {
    std::vector<std::string> out;
    for (const auto& item : fetchWith(ORDERS_PLUGIN, order + "," + unconfirmed, options))
      out.push_back(item.meta);
    return out;
  };
  using V = std::vector<std::string>;
  const std::string numbers = R"({"numbers":["4500001019","SO-77"])";
  const std::string plain = R"({"numbers":["4500001020"]})";
  using Options = std::map<std::string, std::string>;
  const V buyer{numbers + R"(,"own_lines":[1]})", plain};
  const V supplier{numbers + R"(,"own_lines":[2]})", plain};
  const V in_progress{numbers + R"(,"own_lines":[1,2]})", plain};
  const V off{numbers + "}", plain};
  EXPECT_EQ(metas(Options{}), buyer) << "role buyer by default";
  EXPECT_EQ(metas(Options{{"role", "supplier"}}), supplier);
  EXPECT_EQ(metas(Options{{"echo", "in-progress"}}), in_progress);
  EXPECT_EQ(metas(Options{{"echo", "off"}}), off);
}

TEST(TradecloudMeta, ShipmentsNameTheirShipmentNumberAndThePoNumbersOfTheirLines) {
  auto shipment = [](const std::string& id, const std::string& number,
                     const std::vector<std::string>& pos) {
    std::string lines;
    for (const auto& po : pos)
      lines += std::string(lines.empty() ? "" : ",") + R"({"purchaseOrderNumber":")" + po +
               R"(","purchaseOrderLinePosition":"1"})";
    return R"({"id":")" + id + R"(","supplierShipment":{"companyId":"s")" +
           (number.empty() ? std::string() : R"(,"shipmentNumber":")" + number + "\"") +
           R"(},"buyerShipment":{"companyId":"c"},"lines":[)" + lines +
           R"(],"meta":{"lastUpdatedAt":"2025-04-23T09:00:00.000Z"}})";
  };
  auto items = fetchWith(SHIPMENTS_PLUGIN,
                         shipment("s1", "SH-1", {"4500001019", "4500001020", "4500001019"}) + "," +
                             shipment("s2", "", {}),
                         {});
  ASSERT_EQ(items.size(), 2u);
  EXPECT_EQ(items[0].meta, R"({"numbers":["SH-1","4500001019","4500001020"]})");
  EXPECT_EQ(items[1].meta, "") << "nothing to name: no metadata";
}

// Items of a page that cannot be read are handed to the host as unreadable, with their text
// and the reason, and the rest of the page is emitted: an order whose id is a number, one
// without lastUpdatedAt, an element that is not an object, a shipment without its change time.
TEST(TradecloudUnreadable, ItemsThatCannotBeReadAreSetAsideAndThePageGoesOn) {
  auto fetch = [](const char* plugin, const std::string& page) {
    ferry::testing::FakeHost host;
    host.onHttp([&](const ferry::testing::HttpCall& call) { return tradecloudAnswer(call, page); });
    auto source = host.create(ferry::testing::Plugin::load(plugin),
                              {{"base_url", "http://tc.test/v2"},
                               {"email", kEmail},
                               {"password", kPassword}});
    return source.fetch("2025-04-23T08:00:00.000Z");
  };
  const std::string at = R"("2025-04-23T09:00:00.000Z")";
  auto orders = fetch(ORDERS_PLUGIN, R"({"id":"a","lastUpdatedAt":)" + at + R"(},)"
                                     R"({"id":7,"lastUpdatedAt":)" + at + R"(},)"
                                     R"({"id":"c"},)"
                                     R"(["not","an","order"],)"
                                     R"({"id":"e","lastUpdatedAt":)" + at + "}");
  EXPECT_EQ(orders.status, FERRY_FETCH_OK) << orders.message;
  ASSERT_EQ(orders.items.size(), 2u);
  EXPECT_EQ(orders.items[0].key, "a");
  EXPECT_EQ(orders.items[1].key, "e");
  EXPECT_EQ(orders.received, 5u) << "every element counts for paging";
  ASSERT_EQ(orders.set_aside.size(), 3u);
  EXPECT_EQ(orders.set_aside[0].raw, R"({"id":7,"lastUpdatedAt":)" + at + "}");
  EXPECT_NE(orders.set_aside[0].reason.find("without a string id or lastUpdatedAt"),
            std::string::npos)
      << orders.set_aside[0].reason;
  EXPECT_EQ(orders.set_aside[1].raw, R"({"id":"c"})");
  EXPECT_EQ(orders.set_aside[2].raw, R"(["not","an","order"])");
  EXPECT_NE(orders.set_aside[2].reason.find("not an object at position 3"), std::string::npos)
      << orders.set_aside[2].reason;

  auto shipments = fetch(SHIPMENTS_PLUGIN, R"({"id":"s1","meta":{}})");
  EXPECT_EQ(shipments.status, FERRY_FETCH_OK) << shipments.message;
  EXPECT_TRUE(shipments.items.empty());
  ASSERT_EQ(shipments.set_aside.size(), 1u);
  EXPECT_NE(shipments.set_aside[0].reason.find("meta.lastUpdatedAt"), std::string::npos);
}

// A host runs thousands of instances, each polling now and then: between two polls an instance
// keeps no buffer sized for the last page it read. A page of about 1 MiB, read after a small one
// (the login and the first buffers are behind), leaves the heap as it found it.
TEST(TradecloudMemory, APollKeepsNoBufferOfItsPageAfterwards) {
  const std::string at = R"("2025-04-23T09:00:00.000Z")";
  auto item = [&](int i, size_t padding) {
    return R"({"id":"o)" + std::to_string(i) + R"(","lastUpdatedAt":)" + at +
           R"(,"meta":{"lastUpdatedAt":)" + at + R"(},"note":")" + std::string(padding, 'x') +
           R"("})";
  };
  for (const char* plugin : {ORDERS_PLUGIN, SHIPMENTS_PLUGIN}) {
    SCOPED_TRACE(plugin);
    std::string page = item(0, 10);
    ferry::testing::FakeHost host;
    host.onHttp([&](const ferry::testing::HttpCall& call) { return tradecloudAnswer(call, page); });
    auto source = host.create(ferry::testing::Plugin::load(plugin),
                              {{"base_url", "http://tc.test/v2"},
                               {"email", kEmail},
                               {"password", kPassword}});
    ASSERT_EQ(source.fetch("2025-04-23T08:00:00.000Z").status, FERRY_FETCH_OK);
    std::string big;
    for (int i = 1; i <= 100; ++i) big += (i > 1 ? "," : "") + item(i, 10000);
    const size_t kept = heapKeptAfter(page, big, [&] {
      auto got = source.fetch("2025-04-23T08:00:00.000Z");
      ASSERT_EQ(got.status, FERRY_FETCH_OK) << got.message;
      EXPECT_EQ(got.items.size(), 100u);
    });
    EXPECT_LT(kept, 64u * 1024) << "the instance keeps " << kept << " bytes after a page of "
                                << big.size();
  }
}

// The layouts' row filters on one order, in-process: which lines a sink with only_changed_lines
// and skip_echo_lines writes.
TEST(TradecloudLayouts, OnlyChangedLinesAndEchoLinesFilterRowsOfTheOrderLinesLayout) {
  using ferry::mapping::Mapper;
  using ferry::mapping::Mapping;
  using ferry::mapping::Rows;
  const std::string body =
      "{\"id\":\"c-4500000001\",\"lastUpdatedAt\":\"2025-04-23T10:00:00.000Z\",\"buyerOrder\":"
      "{\"purchaseOrderNumber\":\"4500000001\"},\"lines\":["
      "{\"id\":\"l10\",\"lastUpdatedAt\":\"2025-04-20T00:00:00.000Z\",\"status\":{}},"
      "{\"id\":\"l20\",\"lastUpdatedAt\":\"2025-04-23T10:00:00.000Z\",\"status\":"
      "{\"inProgressStatus\":\"OpenSupplierProposal\"}},"
      "{\"id\":\"l30\",\"lastUpdatedAt\":\"2025-04-23T10:00:00.000Z\",\"status\":"
      "{\"inProgressStatus\":\"OpenBuyerReopenRequest\"}}]}";
  // The buyer's own lines as the source names them in the event's metadata.
  namespace tc = ferry::tradecloud;
  simdjson::dom::parser parser;
  const std::string meta = tc::eventMeta(
      {"4500000001"},
      tc::ownLines(parser.parse(body).value(), tc::EchoRule::kOpenRequests, tc::Role::kBuyer));
  ASSERT_EQ(meta, R"({"numbers":["4500000001"],"own_lines":[2]})");
  auto lineIds = [&](const char* previous, bool changed, bool skip_own) {
    Mapper mapper(Mapping::layout("tradecloud_order_lines"));
    ferry::mapping::RowFilter filter;
    if (changed) filter.changed_at = Mapping::layoutRowChangedAt("tradecloud_order_lines");
    filter.skip_own_lines = skip_own;
    mapper.setRowFilter(filter);
    ferry::testing::EventView e({.key = "c-4500000001",
                                 .version = "2025-04-23T10:00:00.000Z",
                                 .body = body,
                                 .previous = previous,
                                 .source = "tc",
                                 .sequence = 1,
                                 .meta = meta});
    Rows rows(mapper.mapping().columnCount());
    std::string error;
    EXPECT_TRUE(mapper.map(e.event(), rows, error)) << error;
    std::vector<std::string> ids;
    size_t col = 0;
    while (mapper.mapping().headers()[col] != "line_id") ++col;
    for (size_t r = 0; r < rows.size(); ++r) ids.push_back(rows.at(r, col).text);
    return ids;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(lineIds("2025-04-22T00:00:00.000Z", false, false), (V{"l10", "l20", "l30"}));
  EXPECT_EQ(lineIds("2025-04-22T00:00:00.000Z", true, false), (V{"l20", "l30"}));
  EXPECT_EQ(lineIds("2025-04-22T00:00:00.000Z", true, true), (V{"l20"}));
  EXPECT_EQ(lineIds("", true, false), (V{"l10", "l20", "l30"})) << "a new order: every line";
  EXPECT_EQ(lineIds("", false, true), (V{"l10", "l20"}));
  EXPECT_EQ(Mapping::layoutRowChangedAt("tradecloud_shipment_lines"), "/meta/lastUpdatedAt");
  Mapper one_row(Mapping::layout("duckhub_order"));
  EXPECT_THROW(one_row.setRowFilter({"/lastUpdatedAt", "", {}}), ferry::mapping::MappingError);
}

// ---------------------------------------------------------------------------------------------
// 5b. The layouts against the documented shapes: single-delivery order lines, shipment dates
// ---------------------------------------------------------------------------------------------

// A JSON value at a path of object keys as text ("" when a step is missing or null).
std::string textAt(Poco::JSON::Object::Ptr o, const std::vector<std::string>& path) {
  for (size_t i = 0; i + 1 < path.size(); ++i) {
    if (o.isNull() || !o->has(path[i]) || o->isNull(path[i])) return "";
    o = o->getObject(path[i]);
  }
  if (o.isNull() || !o->has(path.back()) || o->isNull(path.back())) return "";
  return o->get(path.back()).toString();
}

// The log lines of `err` that say a column was empty in every row of a file.
std::vector<std::string> emptyColumnLines(const std::string& err) {
  std::vector<std::string> out;
  std::istringstream in(err);
  for (std::string line; std::getline(in, line);)
    if (line.find("was empty in every row") != std::string::npos) out.push_back(line);
  return out;
}

// variant = single-delivery: each delivery line is a CSV row whose quantity, date and net price
// are that delivery line's, the same values the default poll shows in deliverySchedule[]/prices.
TEST_F(TradecloudSourceTest, SingleDeliveryRowsCarryQuantityDateAndNetPrice) {
  Sim& sim = startSim({"--seed", "31", "--orders", "40", "--shipments", "2", "--rate-limit", "0"});
  writeTcConfig(orders("tc-orders", "variant = single-delivery\n") + csvSinks("", true));
  RunResult r = runOnce();
  ASSERT_EQ(r.exit_code, 0) << describe(r);

  // What each delivery line holds, from the default poll (<line id>-<delivery position>).
  struct Want {
    std::string quantity, date, net_price, currency, price_unit_quantity;
  };
  std::map<std::string, Want> want;
  bool split_seen = false;
  for (const auto& o : sim.poll("/v2/order-search/poll")) {
    auto lines = o->getArray("lines");
    for (size_t i = 0; i < lines->size(); ++i) {
      auto l = lines->getObject(static_cast<unsigned>(i));
      auto schedule = l->getArray("deliverySchedule");
      split_seen |= schedule->size() > 1;
      auto prices = l->getObject("prices");
      for (size_t k = 0; k < schedule->size(); ++k) {
        auto d = schedule->getObject(static_cast<unsigned>(k));
        want[l->getValue<std::string>("id") + "-" + d->get("position").toString()] = {
            d->get("quantity").toString(), d->getValue<std::string>("date"),
            textAt(prices, {"netPrice", "priceInTransactionCurrency", "value"}),
            textAt(prices, {"netPrice", "priceInTransactionCurrency", "currencyIso"}),
            textAt(prices, {"priceUnitQuantity"})};
      }
    }
  }
  ASSERT_TRUE(split_seen) << "precondition: lines with several delivery lines";
  // The simulator sends the documented single-delivery shape: statusLine instead of
  // deliverySchedule/prices.
  for (const auto& o : sim.poll("/v2/order-search/poll/single-delivery")) {
    auto l = o->getArray("lines")->getObject(0);
    ASSERT_FALSE(l->has("deliverySchedule") || l->has("prices")) << o->getValue<std::string>("id");
    ASSERT_EQ(textAt(l, {"statusLine", "scheduledDelivery", "date"}).size(), 10u)
        << o->getValue<std::string>("id") << ": statusLine.scheduledDelivery.date";
  }

  DropFolder f = csv(Kind::kOrders);
  ASSERT_TRUE(f.ok) << f.error;
  auto newest = f.newest();
  EXPECT_EQ(newest.size(), want.size()) << "one row per delivery line";
  int checked = 0;
  for (const auto& [id, w] : want) {
    auto it = newest.find(id);
    if (it == newest.end()) {
      ADD_FAILURE() << "no row for delivery line " << id;
      continue;
    }
    auto& c = it->second.cells;
    SCOPED_TRACE(id);
    ASSERT_FALSE(w.quantity.empty() || w.date.empty() || w.net_price.empty());
    EXPECT_NE(c["quantity"], "");
    if (!c["quantity"].empty()) {
      EXPECT_DOUBLE_EQ(std::stod(c["quantity"]), std::stod(w.quantity));
    }
    EXPECT_EQ(c["delivery_date"], w.date);
    EXPECT_NE(c["net_price"], "");
    if (!c["net_price"].empty()) {
      EXPECT_DOUBLE_EQ(std::stod(c["net_price"]), std::stod(w.net_price));
    }
    EXPECT_EQ(c["currency"], w.currency);
    EXPECT_EQ(c["price_unit_quantity"], w.price_unit_quantity);
    EXPECT_EQ(c["deliveries"], "1");
    if (++checked == 5 && HasFailure()) break;  // enough to see the pattern
  }
  EXPECT_EQ(emptyColumnLines(r.err), std::vector<std::string>{})
      << "every column the documented shape fills is filled";
}

// Shipments: etd is locations.departure.etdDate; eta, eta_time, eta_end and eta_end_time are the
// first destination's etaStartDate, etaStartTime, etaEndDate and etaEndTime; destinations counts
// them.
TEST_F(TradecloudSourceTest, ShipmentRowsCarryTheDocumentedEtdAndEta) {
  Sim& sim = startSim({"--seed", "32", "--orders", "20", "--shipments", "40", "--rate-limit", "0"});
  writeTcConfig(orders() + shipments() + csvSinks());
  RunResult r = runOnce();
  ASSERT_EQ(r.exit_code, 0) << describe(r);

  struct Want {
    std::string etd, eta, eta_time, eta_end, eta_end_time, destinations;
  };
  std::map<std::string, Want> want;  // by shipment id
  bool several = false;
  for (const auto& s : sim.poll("/v2/shipment/poll")) {
    const std::string id = s->getValue<std::string>("id");
    auto locations = s->getObject("locations");
    ASSERT_FALSE(locations.isNull()) << id;
    auto destinations = locations->getArray("destinations");
    ASSERT_FALSE(destinations.isNull()) << id << ": no locations.destinations";
    ASSERT_GE(destinations->size(), 1u) << id;
    several |= destinations->size() > 1;
    auto first = destinations->getObject(0);
    want[id] = {textAt(locations, {"departure", "etdDate"}),
                textAt(first, {"etaStartDate"}),
                textAt(first, {"etaStartTime"}),
                textAt(first, {"etaEndDate"}),
                textAt(first, {"etaEndTime"}),
                std::to_string(destinations->size())};
    ASSERT_EQ(want[id].etd.size(), 10u) << id << ": departure.etdDate is a yyyy-MM-dd date";
    ASSERT_EQ(want[id].eta.size(), 10u) << id << ": etaStartDate is a yyyy-MM-dd date";
  }
  ASSERT_TRUE(several) << "precondition: a shipment with several destinations";

  DropFolder f = csv(Kind::kShipments);
  ASSERT_TRUE(f.ok) << f.error;
  ASSERT_EQ(f.newest().size(), sim.state().shipment_lines.size());
  int rows = 0;
  for (const auto& [line, row] : f.newest()) {
    auto c = row.cells;
    const Want& w = want[c["shipment_id"]];
    SCOPED_TRACE(line);
    EXPECT_EQ(c["etd"], w.etd);
    EXPECT_EQ(c["eta"], w.eta);
    EXPECT_EQ(c["eta_time"], w.eta_time);
    EXPECT_EQ(c["eta_end"], w.eta_end);
    EXPECT_EQ(c["eta_end_time"], w.eta_end_time);
    EXPECT_EQ(c["destinations"], w.destinations);
    if (++rows == 5 && HasFailure()) break;
  }
  EXPECT_EQ(emptyColumnLines(r.err), std::vector<std::string>{})
      << "every column the documented shapes fill is filled";
}

// ---------------------------------------------------------------------------------------------
// 5b. Echo is judged against the version delivered before, and only_changed_lines against the
//     version the sink wrote: real changes are never taken for our own echo
// ---------------------------------------------------------------------------------------------

// `ferry check` adds up the polls of the sources of one Tradecloud account (orders and shipments
// share its 10 requests/s) and warns when they need more; another account has its own budget.
TEST_F(TradecloudSourceTest, CheckWarnsWhenTheSourcesOfOneAccountNeedMoreThanItsBudget) {
  auto account = [&](const std::string& prefix, const std::string& email,
                     const std::string& interval) {
    std::string out;
    for (const char* plugin : {"source_tradecloud_orders", "source_tradecloud_shipments"})
      out += section("source." + prefix + "-" + std::string(plugin).substr(18),
                     {{"plugin", plugin},
                      {"base_url", "https://api.tradecloud.example/v2"},
                      {"email", email},
                      {"password", "a-long-secret"},
                      {"interval", interval},
                      {"start_from", kStartFrom}},
                     "");
    return out;
  };
  writeTcConfig(account("fast", "fast@example.test", "150ms") +
                account("calm", "calm@example.test", "5m") +
                section("sink.all", {{"plugin", "test_sink"}, {"out", dir_.file("rec.jsonl")}}, ""));
  RunResult r = ferry({"check", "--config", config_});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.out.find("warning: Tradecloud account fast@example.test: 2 sources at 150 ms need "
                       "800 requests/min; Tradecloud allows 600/min (10/s) per account, orders "
                       "and shipments together: each source will be polled about every 200 ms"),
            std::string::npos)
      << r.out;
  EXPECT_EQ(r.out.find("calm@example.test"), std::string::npos) << r.out;
}

// The buyer setup of issue 16: every order line reaches both ERP folders at its latest state
// (0 missing, 0 stale), our own open requests stay out, and a change that is only our request is
// still an echo.
class TradecloudBuyerEchoTest : public TradecloudSourceTest {
 protected:
  std::string changedDir() const { return dir_.file(tag_ + "-erp-changed"); }
  // erp-orders: every line but our own requests; erp-changed: only the lines that changed since
  // the version that sink wrote before; rec: every event with its echo flag.
  std::string buyerConfig(const std::string& source_extra) {
    fs::create_directories(changedDir());
    return orders("tc-orders", "role = buyer\n" + source_extra) +
           csvSinks("skip_echo_lines = buyer\n", true) +
           section("sink.erp-changed",
                   {{"plugin", "sink_erp_csv"},
                    {"from", "tc-orders"},
                    {"dir", changedDir()},
                    {"layout", "tradecloud_order_lines"},
                    {"only_changed_lines", "true"},
                    {"batch_delay", "100ms"}},
                   "") +
           section("sink.rec",
                   {{"plugin", "test_sink"}, {"from", "tc-orders"}, {"out", rec()},
                    {"skip_echo", "false"}, {"batch_delay", "50ms"}},
                   "");
  }
  std::string rec() const { return dir_.file(tag_ + "-rec.jsonl"); }
  // Both folders: the latest state of every line (not our open requests unless `all_lines`).
  void expectBothLatest(bool all_lines, const std::string& what) {
    Sim::State s = sim_->state();
    expectLinesLatest(ordersDir(), s, all_lines, true, what + " (erp-orders)");
    expectLinesLatest(changedDir(), s, all_lines, false, what + " (erp-changed)");
  }
  // An order of the buyer company with at least `lines` lines that can take a request, not in
  // `taken`.
  std::string pickOrder(const Sim::State& s, size_t lines, std::set<std::string>& taken) {
    std::map<std::string, size_t> open;
    for (const auto& [id, line] : s.order_lines) {
      const std::string order = id.substr(0, id.rfind('-'));
      if (s.order_company.at(order) == sim_->company() &&
          (line.process == "Issued" || line.process == "Confirmed"))
        ++open[order];
    }
    for (const auto& [order, n] : open)
      if (n >= lines && taken.insert(order).second) return order;
    return "";
  }
  Poco::JSON::Object::Ptr echo(const std::string& order, const std::string& role,
                               bool supplier_first = false) {
    return sim_->control("POST", "/_sim/echo",
                         "{\"order_id\":\"" + order + "\",\"role\":\"" + role + "\"" +
                             (supplier_first ? ",\"supplier_change_first\":true" : "") + "}");
  }
  void settleAll() { sim_->control("POST", "/_sim/settle", "{}"); }
  std::optional<SinkLine> recorded(const std::string& key, const std::string& version) {
    for (const auto& l : readSinkLines(rec()))
      if (l.key == key && l.version == version) return l;
    return std::nullopt;
  }
};

TEST_F(TradecloudBuyerEchoTest, FirstSightAndCatchUpChangesAreNoEchoAndReachBothFolders) {
  Sim& sim = startSim({"--seed", "41", "--orders", "160", "--shipments", "5",
                       "--rate-limit", "0"});
  Sim::State s = sim.state();
  std::set<std::string> taken;
  // Before Ferry ever saw them: P1's newest change is our own request; P2 went Issued ->
  // supplier's proposal -> accepted -> our reopen request. Only their last versions are read.
  const std::string p1 = pickOrder(s, 1, taken), p2 = pickOrder(s, 2, taken);
  ASSERT_FALSE(p1.empty() || p2.empty()) << "precondition: orders open for requests";
  const std::string p1_version = echo(p1, "buyer")->getValue<std::string>("lastUpdatedAt");
  echo(p2, "supplier");
  sim.control("POST", "/_sim/settle", "{\"order_id\":\"" + p2 + "\"}");
  const std::string p2_version = echo(p2, "buyer")->getValue<std::string>("lastUpdatedAt");

  writeTcConfig(buyerConfig("page_size = 10\n"));
  // While the backfill pages: orders on later pages get our request (first sight again), and
  // others a supplier's change followed by our request.
  sim.control("POST", "/_sim/change-while-paging",
              "{\"after_requests\":2,\"count\":3,\"where\":\"later\",\"change\":\"echo\"}");
  runOk("backfill");
  ASSERT_TRUE(sim.requests()->getObject("change_while_paging")->getValue<bool>("fired"));
  for (const auto& [key, version] : {std::pair{p1, p1_version}, {p2, p2_version}}) {
    auto l = recorded(key, version);
    ASSERT_TRUE(l.has_value()) << key << "@" << version << " was not journalled";
    EXPECT_FALSE(l->echo) << key << ": first seen with our request as its newest change: the "
                             "ERP never had this order, so it is no echo";
  }
  expectBothLatest(false, "after the backfill");

  // Catch-up: the supplier proposes on a line of Q1..Q3 (already delivered), then 40 other
  // orders change, then our ERP opens a request on another line of each Q. The next cycle reads
  // Q on a later page than the proposal's instant: the proposal is news all the same.
  s = sim.state();
  std::vector<std::pair<std::string, std::string>> qs;  // order, supplier's line
  for (int i = 0; i < 3; ++i) {
    const std::string q = pickOrder(s, 2, taken);
    ASSERT_FALSE(q.empty());
    qs.emplace_back(q, echo(q, "supplier")->getArray("line_ids")->getElement<std::string>(0));
  }
  sim.change(40, "order");
  std::vector<std::string> q_versions;
  for (const auto& [q, line] : qs)
    q_versions.push_back(echo(q, "buyer")->getValue<std::string>("lastUpdatedAt"));
  // And while this cycle pages, two more orders get a supplier's change and our request.
  sim.control("POST", "/_sim/change-while-paging",
              "{\"after_requests\":1,\"count\":2,\"where\":\"later\","
              "\"change\":\"supplier-then-echo\"}");
  runOk("catch-up");
  for (size_t i = 0; i < qs.size(); ++i) {
    auto l = recorded(qs[i].first, q_versions[i]);
    ASSERT_TRUE(l.has_value()) << qs[i].first << "@" << q_versions[i];
    EXPECT_FALSE(l->echo) << qs[i].first << ": the supplier's proposal on " << qs[i].second
                          << " changed since the version delivered before";
  }
  expectBothLatest(false, "after the catch-up");

  // Only our own request on an order delivered before: still an echo, and no row anywhere.
  s = sim.state();
  const std::string a = pickOrder(s, 1, taken);
  ASSERT_FALSE(a.empty());
  const std::string a_version = echo(a, "buyer")->getValue<std::string>("lastUpdatedAt");
  runOk("our own request");
  auto la = recorded(a, a_version);
  ASSERT_TRUE(la.has_value());
  EXPECT_TRUE(la->echo) << "only our own request changed since the version delivered";
  for (const auto& dir : {ordersDir(), changedDir()}) {
    DropFolder f = readDropFolder(dir, dir_.path(), Kind::kOrders);
    EXPECT_TRUE(f.at(a_version).empty()) << dir << ": the echo reached the CSV";
  }

  // Every request settled (while the pages are read, and after): every line of every order is
  // in both folders at its latest state. The lines changed before an echo the changed-lines sink
  // skipped come too.
  sim.control("POST", "/_sim/change-while-paging",
              "{\"after_requests\":1,\"count\":2,\"where\":\"later\",\"change\":\"settle\"}");
  settleAll();
  runOk("settled");
  settleAll();
  runOk("settled, the rest");
  expectBothLatest(true, "after every request was settled");
}

TEST_F(TradecloudBuyerEchoTest, KilledWhileRequestsOpenAndSettleNothingMissingNothingStale) {
  Sim& sim = startSim({"--seed", "42", "--orders", "700", "--shipments", "5",
                       "--live-rate", "10"});
  writeTcConfig(buyerConfig("page_size = 20\ntimeout = 2s\n"));
  const unsigned seed = 20250516;
  std::mt19937 rng(seed);
  std::cerr << "[ seed     ] " << seed << "\n";
  const std::vector<std::string> while_paging{"echo", "supplier-then-echo", "settle", "any"};
  for (int round = 0; round < 6; ++round) {
    sim.control("POST", "/_sim/change-while-paging",
                "{\"after_requests\":" + std::to_string(1 + rng() % 4) +
                    ",\"count\":3,\"where\":\"" + (round % 2 ? "served" : "later") +
                    "\",\"change\":\"" + while_paging[round % while_paging.size()] + "\"}");
    FerryProcess ferry({"run", "--config", config_}, dir_.path());
    // Our requests, supplier's changes followed by our requests, and settlements, while Ferry
    // pages, delivers and is killed.
    const auto until = std::chrono::steady_clock::now() +
                       std::chrono::milliseconds(400 + rng() % 1400);
    while (std::chrono::steady_clock::now() < until) {
      const std::string role_body =
          rng() % 2 ? "{\"role\":\"buyer\"}"
                    : "{\"role\":\"buyer\",\"supplier_change_first\":true}";
      try {
        sim.control("POST", "/_sim/echo", role_body);
      } catch (const std::exception&) {
        // 409: the random order had no two lines for it; the next one will.
      }
      if (rng() % 20 == 0) settleAll();
      std::this_thread::sleep_for(std::chrono::milliseconds(30));
    }
    ASSERT_TRUE(ferry.running()) << "round " << round << ": ferry ended early: " << ferry.err();
    ferry.kill9();
  }
  sim.config("{\"live_rate\":0}");
  runOk("a clean pass with requests still open");
  expectBothLatest(false, "after 6 kills, requests open");
  settleAll();
  runOk("every request settled");
  expectBothLatest(true, "after 6 kills, every request settled");
  auto q = sim.requests();
  EXPECT_GT(count(q, "changes_applied"), 40) << "precondition: orders changed meanwhile";
}

// ---------------------------------------------------------------------------------------------
// 6. kill -9 during a backfill with changes and faults
// ---------------------------------------------------------------------------------------------

TEST_F(TradecloudSourceTest, KilledAtRandomMomentsDuringABackfillNothingMissingNothingStale) {
  Sim& sim = startSim({"--seed", "30", "--orders", "2500", "--shipments", "900",
                       "--live-rate", "15"});
  writeTcConfig(orders("tc-orders", "timeout = 2s\n") +
                shipments("tc-shipments", "page_size = 50\ntimeout = 2s\n") +
                csvSinks("batch_size = 300\n"));
  const unsigned seed = 20250423;
  std::mt19937 rng(seed);
  std::cerr << "[ seed     ] " << seed << "\n";
  const std::vector<std::string> faults{"500", "drop", "truncated", "429", "malformed",
                                        "503", "slow"};
  for (int round = 0; round < 7; ++round) {
    FerryProcess ferry({"run", "--config", config_}, dir_.path());
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + rng() % 1500));
    ASSERT_TRUE(ferry.running()) << "round " << round << ": ferry ended early: " << ferry.err();
    ferry.kill9();
    sim.fault(faults[round % faults.size()]);
  }
  sim.config("{\"live_rate\":0}");
  // A change after the last kill, so that the final pass writes a file in both folders (a sink
  // removes temporary files of an interrupted write at its next write).
  sim.change(2, "order");
  sim.change(2, "shipment");
  RunResult r = runOnce();
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  auto q = sim.requests();
  EXPECT_GT(count(q, "changes_applied"), 20) << "precondition: documents changed meanwhile";
  EXPECT_EQ(count(q, "faults_pending"), 0);
  EXPECT_EQ(count(q, "refresh_reuse_rejected"), 0);
  expectAllComplete("after 7 kills and a final pass");
}

}  // namespace
}  // namespace ferry::it
