// source_duckhub_orders end to end: the real `ferry` executable loads the real plugin (and the real
// sink_erp_csv, and test_sink where a recording sink helps) from a temporary plugin folder and
// polls the DuckHub simulator program (duckhub-sim), started as a child process on an ephemeral
// port. The tests compare what the simulator holds (/_sim/state) and saw (/_sim/requests, its
// request log) with the CSV files, read back by Python's csv module (collect_csv.py), and with
// `ferry status --json`.
#include <Poco/JSON/Object.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/StreamCopier.h>
#include <ferry/testing/fake_host.hpp>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <map>
#include <random>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "FerryTest.h"
#include "Receiver.h"

namespace ferry::it {
namespace {

namespace fs = std::filesystem;

// The first cursor of every source: before the simulator's generated hour.
constexpr const char* kStartFrom = "2026-07-05T00:00:00Z";

// ---------------------------------------------------------------------------------------------
// The simulator as a child process
// ---------------------------------------------------------------------------------------------

struct HttpAnswer {
  int status = 0;
  std::string body;
};

class Sim {
 public:
  // Starts duckhub-sim with `args` (plus port and keys files in `dir`) and waits for its port.
  Sim(const std::string& dir, const std::vector<std::string>& args) : dir_(dir) {
    std::vector<std::string> command{DUCKHUB_SIM_BINARY, "--port",      "0",
                                     "--port-file",      dir + "/sim.port", "--keys-file",
                                     dir + "/sim.keys"};
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
    if (!up) throw std::runtime_error("duckhub-sim did not start: " + readFile(log_));
    auto keys = parseObject(readFile(dir + "/sim.keys"))->getArray("venues");
    for (size_t i = 0; i < keys->size(); ++i) {
      auto v = keys->getObject(static_cast<unsigned>(i));
      keys_[v->getValue<std::string>("venue")] = v->getValue<std::string>("api_key");
    }
  }
  ~Sim() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int status = 0;
      for (int i = 0; i < 100 && ::waitpid(pid_, &status, WNOHANG) == 0; ++i)
        std::this_thread::sleep_for(50ms);
      if (::waitpid(pid_, &status, WNOHANG) == 0) {
        ::kill(pid_, SIGKILL);
        ::waitpid(pid_, &status, 0);
      }
    }
  }
  Sim(const Sim&) = delete;
  Sim& operator=(const Sim&) = delete;

  std::string baseUrl() const { return "http://127.0.0.1:" + std::to_string(port_) + "/v1"; }
  std::string key(const std::string& venue) const { return keys_.at(venue); }
  std::string log() const { return readFile(log_); }

  HttpAnswer request(const std::string& method, const std::string& path,
                     const std::string& body = "",
                     const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    Poco::Net::HTTPClientSession session("127.0.0.1", static_cast<Poco::UInt16>(port_));
    session.setTimeout(Poco::Timespan(30, 0));
    Poco::Net::HTTPRequest q(method, path, Poco::Net::HTTPMessage::HTTP_1_1);
    for (const auto& [k, v] : headers) q.set(k, v);
    if (!body.empty()) {
      q.setContentType("application/json");
      q.setContentLength(static_cast<std::streamsize>(body.size()));
    }
    session.sendRequest(q) << body;
    Poco::Net::HTTPResponse r;
    std::istream& in = session.receiveResponse(r);
    HttpAnswer a;
    a.status = r.getStatus();
    Poco::StreamCopier::copyToString(in, a.body);
    return a;
  }
  Poco::JSON::Object::Ptr control(const std::string& method, const std::string& path,
                                  const std::string& body = "") {
    HttpAnswer a = request(method, path, body);
    if (a.status != 200)
      throw std::runtime_error(method + " " + path + " -> " + std::to_string(a.status) + ": " +
                               a.body);
    return parseObject(a.body);
  }
  void fault(const std::string& kind, int count = 1, int delay_ms = 0) {
    std::string body = "{\"kind\":\"" + kind + "\",\"count\":" + std::to_string(count);
    if (delay_ms > 0) body += ",\"delay_ms\":" + std::to_string(delay_ms);
    control("POST", "/_sim/faults", body + "}");
  }
  std::vector<std::string> change(int count, const std::string& venue = "") {
    std::string body = "{\"count\":" + std::to_string(count);
    if (!venue.empty()) body += ",\"venue\":\"" + venue + "\"";
    auto changed = control("POST", "/_sim/change", body + "}")->getArray("changed");
    std::vector<std::string> ids;
    for (size_t i = 0; i < changed->size(); ++i)
      ids.push_back(changed->getElement<std::string>(static_cast<unsigned>(i)));
    return ids;
  }
  // The next `method` request after `after` others is handled, and its answer held `delay_ms`.
  void hold(const std::string& method, int after, int delay_ms) {
    control("POST", "/_sim/faults",
            "{\"kind\":\"hold\",\"method\":\"" + method + "\",\"after_requests\":" +
                std::to_string(after) + ",\"delay_ms\":" + std::to_string(delay_ms) + "}");
  }
  Poco::JSON::Object::Ptr requests() { return control("GET", "/_sim/requests"); }
  struct Patch {
    std::string id, status;
    int code = 0;
  };
  // Every PATCH …/status the simulator received (its request log), in order.
  std::vector<Patch> patches() {
    auto list = requests()->getArray("patches");
    std::vector<Patch> out;
    for (size_t i = 0; i < list->size(); ++i) {
      auto p = list->getObject(static_cast<unsigned>(i));
      out.push_back({p->getValue<std::string>("id"), p->getValue<std::string>("status"),
                     p->getValue<int>("code")});
    }
    return out;
  }
  // The venue's staff change the next `count` orders Ferry PATCHes in `venue` right before the
  // PATCH is applied: "edit" (one more item) or a status.
  void changeBeforePatch(const std::string& venue, const std::string& change, int count) {
    control("POST", "/_sim/change-before-patch",
            "{\"venue\":\"" + venue + "\",\"change\":\"" + change +
                "\",\"count\":" + std::to_string(count) + "}");
  }
  // id -> the change made before its PATCH.
  std::map<std::string, std::string> changedBeforePatch() {
    auto list = requests()->getArray("changed_before_patch");
    std::map<std::string, std::string> out;
    for (size_t i = 0; i < list->size(); ++i) {
      auto c = list->getObject(static_cast<unsigned>(i));
      out[c->getValue<std::string>("id")] = c->getValue<std::string>("change");
    }
    return out;
  }
  // PATCH /v1/orders/:id/status as another client of the venue (the venue's staff).
  HttpAnswer patchStatus(const std::string& venue, const std::string& id,
                         const std::string& status) {
    return request("PATCH", "/v1/orders/" + id + "/status", "{\"status\":\"" + status + "\"}",
                   {{"Authorization", "Bearer " + key(venue)}});
  }

  struct Order {
    std::string venue, id, status, updated_at, order_number;
  };
  // Every order the simulator holds, by id.
  std::map<std::string, Order> state() {
    std::map<std::string, Order> orders;
    auto venues = control("GET", "/_sim/state")->getArray("venues");
    for (size_t v = 0; v < venues->size(); ++v) {
      auto venue = venues->getObject(static_cast<unsigned>(v));
      auto list = venue->getArray("orders");
      for (size_t i = 0; i < list->size(); ++i) {
        auto o = list->getObject(static_cast<unsigned>(i));
        Order order{venue->getValue<std::string>("venue"), o->getValue<std::string>("id"),
                    o->getValue<std::string>("status"), o->getValue<std::string>("updatedAt"),
                    std::to_string(o->getValue<int64_t>("orderNumber"))};
        orders[order.id] = order;
      }
    }
    return orders;
  }

 private:
  std::string dir_;
  std::string log_;
  pid_t pid_ = -1;
  int port_ = 0;
  std::map<std::string, std::string> keys_;
};

int64_t count(const Poco::JSON::Object::Ptr& o, const std::string& key) {
  return o.isNull() || !o->has(key) ? 0 : o->getValue<int64_t>(key);
}

// ---------------------------------------------------------------------------------------------
// The CSV drop folder, read by Python's csv module
// ---------------------------------------------------------------------------------------------

struct CsvRow {
  std::string id, updated_at, status, previous, item_count, file;
};
struct DropFolder {
  bool ok = false;  // every file parsed
  std::string error;
  std::vector<std::string> files, others;
  std::vector<CsvRow> rows;

  // The newest row of each order id, by updated_at (ISO text of one format: compares as text).
  std::map<std::string, CsvRow> newest() const {
    std::map<std::string, CsvRow> out;
    for (const auto& r : rows) {
      auto it = out.find(r.id);
      if (it == out.end() || it->second.updated_at < r.updated_at) out[r.id] = r;
    }
    return out;
  }
  // (id, updated_at) pairs written more than once.
  std::vector<std::string> duplicates() const {
    std::map<std::pair<std::string, std::string>, int> seen;
    std::vector<std::string> out;
    for (const auto& r : rows)
      if (++seen[{r.id, r.updated_at}] == 2) out.push_back(r.id + "@" + r.updated_at);
    return out;
  }
  const CsvRow* find(const std::string& id, const std::string& updated_at) const {
    for (const auto& r : rows)
      if (r.id == id && r.updated_at == updated_at) return &r;
    return nullptr;
  }
  bool has(const std::string& id, const std::string& updated_at) const {
    return std::any_of(rows.begin(), rows.end(),
                       [&](const CsvRow& r) { return r.id == id && r.updated_at == updated_at; });
  }
};

DropFolder readDropFolder(const std::string& dir, const std::string& scratch) {
  static int n = 0;
  const std::string out = scratch + "/collect" + std::to_string(++n) + ".json";
  const std::string err = scratch + "/collect.err";
  const std::string command = std::string("'") + PYTHON3 + "' '" + COLLECT_CSV_SCRIPT + "' '" +
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
    auto cells = strings(rows->getArray(static_cast<unsigned>(i)));
    f.rows.push_back(CsvRow{cells[0], cells[1], cells[2], cells[3], cells[4], cells[5]});
  }
  f.ok = true;
  return f;
}

// ---------------------------------------------------------------------------------------------
// The fixture
// ---------------------------------------------------------------------------------------------

class DuckHubSourceTest : public FerryTest {
 protected:
  void SetUp() override {
    fs::create_directories(plugins_);
    fs::copy_file(DUCKHUB_PLUGIN, plugins_ + "/source_duckhub_orders.so");
    fs::copy_file(SINK_ERP_CSV_PLUGIN, plugins_ + "/sink_erp_csv.so");
    fs::copy_file(TEST_SINK_PLUGIN, plugins_ + "/test_sink.so");
    fs::copy_file(SINK_SQL_PLUGIN, plugins_ + "/sink_sql.so");
    fs::create_directories(erp_);
  }

  Sim& startSim(const std::vector<std::string>& args) {
    sim_ = std::make_unique<Sim>(dir_.path(), args);
    return *sim_;
  }

  std::string hostConfig() const {
    return "[host]\njournal = " + journal_ + "\nplugin_dir = " + plugins_ +
           "\nlog_level = info\nretry_initial = 50ms\nretry_max = 1s\n" + host_extra_ + "\n";
  }
  // A [source.<name>] for `venue`; `extra` adds or overrides keys.
  std::string duckSource(const std::string& name, const std::string& venue,
                         const std::string& extra = "") const {
    return section("source." + name,
                   {{"plugin", "source_duckhub_orders"},
                    {"base_url", sim_->baseUrl()},
                    {"api_key", sim_->key(venue)},
                    {"interval", "200ms"},
                    {"start_from", kStartFrom},
                    {"page_size", "100"},
                    {"rate_limit", "false"}},
                   extra);
  }
  std::string csvSink(const std::string& extra = "") const {
    return section("sink.erp",
                   {{"plugin", "sink_erp_csv"}, {"dir", erp_}, {"batch_delay", "100ms"}}, extra);
  }
  std::string recordingSink(const std::string& out, const std::string& extra = "") const {
    return section("sink.rec",
                   {{"plugin", "test_sink"}, {"out", out}, {"batch_size", "200"},
                    {"batch_delay", "50ms"}},
                   extra);
  }
  void writeDuckConfig(const std::string& sections) { writeFile(config_, hostConfig() + sections); }

  DropFolder csv() { return readDropFolder(erp_, dir_.path()); }

  // Every order of the simulator has its current version as the newest CSV row of its id, with
  // its current status; no file is left half-written and every file parses.
  // Orders in `ignore` (echoes a sink skipped) are left out of the comparison.
  void expectCsvMatchesState(const std::map<std::string, Sim::Order>& state,
                             const std::string& what, const std::set<std::string>& ignore = {}) {
    DropFolder f = csv();
    ASSERT_TRUE(f.ok) << what << ": a CSV file did not parse: " << f.error;
    EXPECT_TRUE(f.others.empty()) << what << ": unexpected entries in the drop folder, e.g. "
                                  << (f.others.empty() ? "" : f.others.front());
    auto newest = f.newest();
    int missing = 0, stale = 0;
    std::string example;
    for (const auto& [id, o] : state) {
      if (ignore.count(id)) continue;
      auto it = newest.find(id);
      if (it == newest.end()) {
        if (++missing <= 3) example += " missing " + id + "@" + o.updated_at + ";";
      } else if (it->second.updated_at != o.updated_at || it->second.status != o.status) {
        if (++stale <= 3)
          example += " stale " + id + ": csv " + it->second.updated_at + " " + it->second.status +
                     ", sim " + o.updated_at + " " + o.status + ";";
      }
    }
    EXPECT_EQ(missing, 0) << what << ":" << example;
    EXPECT_EQ(stale, 0) << what << ":" << example;
    size_t foreign = 0;
    for (const auto& [id, row] : newest) foreign += state.count(id) == 0;
    EXPECT_EQ(foreign, 0u) << what << ": rows for orders the simulator does not hold";
  }

  void runOk(const std::string& what) {
    RunResult r = runOnce();
    ASSERT_EQ(r.exit_code, 0) << what << ": " << describe(r);
  }

  // `ferry trace ID --json`: version -> its echo flag, for every journalled version of the order.
  std::map<std::string, bool> traceEchoes(const std::string& id) {
    RunResult r = ferry({"trace", id, "--config", config_, "--json"}, 60s);
    std::map<std::string, bool> out;
    if (r.exit_code != 0) {
      ADD_FAILURE() << "ferry trace " << id << ": " << describe(r);
      return out;
    }
    auto versions = parseArray(r.out);
    for (size_t i = 0; i < versions->size(); ++i) {
      auto v = versions->getObject(static_cast<unsigned>(i));
      out[v->getValue<std::string>("version")] = v->getValue<bool>("echo");
    }
    return out;
  }

  std::string plugins_ = dir_.file("plugins");
  std::string erp_ = dir_.file("erp");
  std::string journal_ = dir_.file("journal.db");  // [host] journal
  std::string host_extra_;                          // more [host] lines
  std::unique_ptr<Sim> sim_;
};

std::map<std::string, Sim::Order> ofVenue(const std::map<std::string, Sim::Order>& state,
                                          const std::string& venue) {
  std::map<std::string, Sim::Order> out;
  for (const auto& [id, o] : state)
    if (o.venue == venue) out[id] = o;
  return out;
}

// ---------------------------------------------------------------------------------------------
// 1. Backfill
// ---------------------------------------------------------------------------------------------

TEST_F(DuckHubSourceTest, BackfillOfThreeVenuesDeliversEveryOrderOnceAndCursorsEndAtNewest) {
  Sim& sim = startSim({"--seed", "11", "--venues", "3", "--orders", "150", "--no-rate-limit",
                       "--quiet"});
  writeDuckConfig(duckSource("v1", "v1", "page_size = 25\n") +
                  duckSource("v2", "v2", "page_size = 25\n") +
                  duckSource("v3", "v3", "page_size = 25\n") + csvSink());
  runOk("backfill");

  auto state = sim.state();
  ASSERT_EQ(state.size(), 450u);
  expectCsvMatchesState(state, "after the backfill");
  DropFolder f = csv();
  EXPECT_EQ(f.rows.size(), state.size()) << "one row per order, none twice";
  EXPECT_TRUE(f.duplicates().empty()) << "written twice: " << f.duplicates().front();
  for (const auto& r : f.rows)
    EXPECT_EQ(r.previous, "") << r.id << " is new to Ferry: previous_version must be empty";

  auto st = status();
  ASSERT_FALSE(st.isNull());
  for (const char* venue : {"v1", "v2", "v3"}) {
    std::string newest;
    for (const auto& [id, o] : ofVenue(state, venue)) newest = std::max(newest, o.updated_at);
    auto src = instance(st, "sources", venue);
    ASSERT_FALSE(src.isNull()) << venue;
    EXPECT_EQ(str(src, "state"), "idle") << venue << ": " << str(src, "message");
    auto cursor = src->getObject("cursor");
    ASSERT_FALSE(cursor.isNull()) << venue << " has no cursor";
    EXPECT_EQ(cursor->getValue<std::string>("since"), newest) << venue;
  }

  // A second pass finds nothing new: no row is written again.
  runOk("second pass");
  EXPECT_EQ(csv().rows.size(), state.size());
}

// `ferry trace 1007`: the operator asks by the number people use, the DuckHub order number, and
// gets every version of that order with what each sink did; the key still works; a number no
// order has finds nothing.
TEST_F(DuckHubSourceTest, TraceFindsEveryVersionOfAnOrderByItsOrderNumber) {
  Sim& sim = startSim({"--seed", "5", "--venues", "2", "--orders", "20", "--no-rate-limit",
                       "--quiet"});
  writeDuckConfig(duckSource("v1", "v1") + duckSource("v2", "v2") + csvSink());
  runOk("backfill");
  // The venue confirms one of its new orders: a second version of it.
  std::string id;
  for (const auto& [key, o] : sim.state())
    if (o.venue == "v1" && o.status == "new") id = key;
  ASSERT_FALSE(id.empty()) << "no new order in v1";
  ASSERT_EQ(sim.patchStatus("v1", id, "confirmed").status, 200);
  runOk("the change");
  const Sim::Order order = sim.state().at(id);
  ASSERT_EQ(order.status, "confirmed");
  ASSERT_FALSE(order.order_number.empty());

  // Order numbers count per venue: every order of that number is shown, each under its source.
  std::map<std::string, std::string> holders;  // id -> venue
  for (const auto& [key, o] : sim.state())
    if (o.order_number == order.order_number) holders[key] = o.venue;
  // (With this seed both venues count from the same first number: v2 has one too.)
  ASSERT_EQ(holders.size(), 2u);

  RunResult r = ferry({"trace", order.order_number, "--config", config_, "--json"}, 60s);
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  auto versions = parseArray(r.out);
  ASSERT_EQ(versions->size(), 3u) << "the backfilled version and the change, and the other "
                                     "venue's order of that number: "
                                  << r.out;
  std::vector<std::string> ours;
  for (size_t i = 0; i < versions->size(); ++i) {
    auto v = versions->getObject(static_cast<unsigned>(i));
    const std::string key = v->getValue<std::string>("key");
    ASSERT_EQ(holders.count(key), 1u) << key << " does not carry " << order.order_number;
    EXPECT_EQ(v->getValue<std::string>("source"), holders[key]);
    if (key == order.id) ours.push_back(v->getValue<std::string>("version"));
    auto numbers = v->getArray("numbers");
    ASSERT_EQ(numbers->size(), 1u) << r.out;
    EXPECT_EQ(numbers->getElement<std::string>(0), order.order_number);
    auto sinks = v->getArray("sinks");
    ASSERT_EQ(sinks->size(), 1u) << r.out;
    EXPECT_EQ(sinks->getObject(0)->getValue<std::string>("outcome"), "delivered") << r.out;
  }
  ASSERT_EQ(ours.size(), 2u) << r.out;
  EXPECT_EQ(ours[1], order.updated_at) << "oldest first";
  // The CSV file the ERP got has that version of that order number.
  const CsvRow* row = csv().find(order.id, order.updated_at);
  ASSERT_NE(row, nullptr) << "the traced version is not in the drop folder";

  // The text form names the number; the key finds the same versions.
  RunResult text = ferry({"trace", order.order_number, "--config", config_}, 60s);
  ASSERT_EQ(text.exit_code, 0) << describe(text);
  EXPECT_NE(text.out.find("v1/order/" + order.id + "/" + order.updated_at), std::string::npos)
      << text.out;
  EXPECT_NE(text.out.find("numbers " + order.order_number), std::string::npos) << text.out;
  RunResult by_key = ferry({"trace", order.id, "--config", config_, "--json"}, 60s);
  ASSERT_EQ(by_key.exit_code, 0) << describe(by_key);
  EXPECT_EQ(parseArray(by_key.out)->size(), 2u) << by_key.out;

  RunResult none = ferry({"trace", "99999999", "--config", config_}, 60s);
  EXPECT_EQ(none.exit_code, 65) << describe(none);
  EXPECT_NE(none.out.find("no event with key or number '99999999'"), std::string::npos)
      << none.out;
}

// ---------------------------------------------------------------------------------------------
// 2. Ties
// ---------------------------------------------------------------------------------------------

TEST_F(DuckHubSourceTest, TiesAcrossPagesAndMoreSameInstantOrdersThanAPageHoldNoneMissing) {
  Sim& sim = startSim({"--seed", "5", "--venues", "1", "--orders", "200", "--no-rate-limit",
                       "--quiet"});
  // The data set has pairs of orders sharing updatedAt; one /_sim/change call stamps all its
  // changes with (nearly) the same millisecond: dozens of orders on one instant.
  sim.change(40, "v1");
  writeDuckConfig(duckSource("v1", "v1", "page_size = 5\n") + csvSink());

  auto largestTie = [](const std::map<std::string, Sim::Order>& state) {
    std::map<std::string, int> by_instant;
    int largest = 0;
    for (const auto& [id, o] : state) largest = std::max(largest, ++by_instant[o.updated_at]);
    return largest;
  };
  auto state = sim.state();
  ASSERT_GT(largestTie(state), 5) << "precondition: more orders on one instant than a page holds";
  runOk("backfill with page_size 5");
  expectCsvMatchesState(state, "after the backfill");
  EXPECT_TRUE(csv().duplicates().empty());

  // Again after the cursor: a new clump of same-instant changes, read from the cursor on.
  sim.change(40, "v1");
  state = sim.state();
  ASSERT_GT(largestTie(state), 5);
  runOk("second pass");
  expectCsvMatchesState(state, "after the second pass");
  EXPECT_TRUE(csv().duplicates().empty());
}

// ---------------------------------------------------------------------------------------------
// 3. Changes while paging, cancellations
// ---------------------------------------------------------------------------------------------

TEST_F(DuckHubSourceTest, OrdersChangingWhilePagingAreNotLostAndCancellationsArriveWithPrevious) {
  Sim& sim = startSim({"--seed", "7", "--venues", "1", "--orders", "300", "--no-rate-limit",
                       "--quiet"});
  writeDuckConfig(duckSource("v1", "v1", "page_size = 10\n") + csvSink());
  sim.control("POST", "/_sim/change-while-paging", "{\"after_requests\":4,\"count\":3}");
  runOk("backfill while orders change behind the reader");
  auto cwp = sim.requests()->getObject("change_while_paging");
  ASSERT_TRUE(cwp->getValue<bool>("fired")) << "precondition: the changes were applied";
  EXPECT_GT(cwp->getArray("changed")->size(), 0u);
  expectCsvMatchesState(sim.state(), "after the first cycle");

  // Newest version of each order in the CSV now: what `previous` must point at later.
  auto before = csv().newest();
  auto state_before = sim.state();

  // Random changes (new orders, transitions; one transition in ten is a cancellation) until at
  // least three orders Ferry already has were cancelled; another change-while-paging on top.
  std::set<std::string> cancelled;
  for (int round = 0; round < 40 && cancelled.size() < 3; ++round) {
    sim.change(20, "v1");
    for (const auto& [id, o] : sim.state())
      if (o.status == "cancelled" && state_before.count(id) &&
          state_before[id].status != "cancelled")
        cancelled.insert(id);
  }
  ASSERT_GE(cancelled.size(), 3u) << "precondition: /_sim/change cancelled some orders";
  sim.control("POST", "/_sim/change-while-paging", "{\"after_requests\":1,\"count\":2}");
  runOk("second cycle");
  EXPECT_TRUE(sim.requests()->getObject("change_while_paging")->getValue<bool>("fired"));
  auto state = sim.state();
  expectCsvMatchesState(state, "after the second cycle");

  DropFolder f = csv();
  for (const auto& id : cancelled) {
    SCOPED_TRACE(id);
    auto it = std::find_if(f.rows.begin(), f.rows.end(), [&](const CsvRow& r) {
      return r.id == id && r.updated_at == state[id].updated_at;
    });
    ASSERT_NE(it, f.rows.end()) << "the cancellation is a new row";
    EXPECT_EQ(it->status, "cancelled");
    EXPECT_EQ(it->previous, before[id].updated_at)
        << "previous_version is the version delivered before";
    EXPECT_TRUE(f.has(id, before[id].updated_at)) << "the earlier row is still there";
  }
  EXPECT_TRUE(f.duplicates().empty());
}

// ---------------------------------------------------------------------------------------------
// 4. Confirm flow and echo
// ---------------------------------------------------------------------------------------------

TEST_F(DuckHubSourceTest, NewOrdersAreConfirmedTheirEchoIsMarkedAnd422IsLoggedNotRetried) {
  Sim& sim = startSim({"--seed", "3", "--venues", "1", "--orders", "120", "--no-rate-limit",
                       "--quiet"});
  const std::string rec = dir_.file("rec.jsonl"), gate = dir_.file("rec.gate");
  writeDuckConfig(duckSource("v1", "v1", "confirm_delivered_as = confirmed\npage_size = 20\n") +
                  csvSink() + recordingSink(rec, "skip_echo = false\nfail_file = " + gate + "\n"));

  auto initial = sim.state();
  std::set<std::string> fresh;
  for (const auto& [id, o] : initial)
    if (o.status == "new") fresh.insert(id);
  ASSERT_GE(fresh.size(), 5u) << "precondition: the data set has NEW orders";

  // Pass 1: every NEW order is delivered, then confirmed at the simulator.
  runOk("pass 1");
  auto patches = sim.requests()->getArray("patches");
  std::map<std::string, int> patched;
  for (size_t i = 0; i < patches->size(); ++i) {
    auto p = patches->getObject(static_cast<unsigned>(i));
    EXPECT_EQ(p->getValue<std::string>("status"), "confirmed");
    EXPECT_EQ(p->getValue<int>("code"), 200) << p->getValue<std::string>("id");
    ++patched[p->getValue<std::string>("id")];
  }
  EXPECT_EQ(patched.size(), fresh.size());
  for (const auto& id : fresh) EXPECT_EQ(patched[id], 1) << id << " confirmed exactly once";
  auto confirmed = sim.state();
  for (const auto& id : fresh) {
    EXPECT_EQ(confirmed[id].status, "confirmed") << id;
    EXPECT_GT(confirmed[id].updated_at, initial[id].updated_at) << id;
  }
  expectCsvMatchesState(initial, "pass 1: the CSV has the orders as fetched");

  // Pass 2: the versions our PATCH produced come back marked echo. The CSV sink (skip_echo
  // default) never sees them; the recording sink (skip_echo = false) gets them with echo true.
  runOk("pass 2");
  EXPECT_EQ(sim.requests()->getArray("patches")->size(), patches->size())
      << "an echo is not confirmed again";
  DropFolder f = csv();
  auto lines = readSinkLines(rec);
  for (const auto& id : fresh) {
    SCOPED_TRACE(id);
    EXPECT_FALSE(f.has(id, confirmed[id].updated_at)) << "an echo reached the CSV sink";
    auto echo = std::find_if(lines.begin(), lines.end(), [&](const SinkLine& l) {
      return l.key == id && l.version == confirmed[id].updated_at;
    });
    ASSERT_NE(echo, lines.end()) << "the echo did not reach the sink with skip_echo = false";
    EXPECT_TRUE(echo->echo);
    EXPECT_EQ(echo->previous, initial[id].updated_at);
  }
  for (const auto& l : lines)
    if (!fresh.count(l.key)) {
      EXPECT_FALSE(l.echo) << l.key << "@" << l.version << " is not ours";
    }

  // Pass 3 (422): new orders arrive; the recording sink holds back (so the confirmation
  // waits) while the venue cancels two of them; the confirmations then meet a terminal order.
  std::set<std::string> later;
  for (int round = 0; round < 20 && later.size() < 4; ++round) {
    sim.change(10, "v1");
    for (const auto& [id, o] : sim.state())
      if (o.status == "new" && !initial.count(id)) later.insert(id);
  }
  // Only the ones still NEW now (a later change may have moved one on already).
  later.clear();
  for (const auto& [id, o] : sim.state())
    if (o.status == "new" && !initial.count(id)) later.insert(id);
  ASSERT_GE(later.size(), 3u) << "precondition: /_sim/change made new orders";
  const std::vector<std::string> cancel(later.begin(), std::next(later.begin(), 2));
  writeFile(gate, "retry\n");
  FerryProcess ferry({"run", "--config", config_}, dir_.path());
  ASSERT_TRUE(waitUntil(
      [&] {
        DropFolder now = csv();
        auto state = sim.state();
        for (const auto& id : later)
          if (!now.has(id, state[id].updated_at)) return false;
        return true;
      },
      60s))
      << "the new orders did not reach the CSV sink: " << ferry.err();
  for (const auto& id : cancel) ASSERT_EQ(sim.patchStatus("v1", id, "cancelled").status, 200);
  writeFile(gate, "");  // the recording sink writes again: the hooks run
  auto confirmsOf = [&](const std::string& id) {
    std::vector<int> codes;
    auto all = sim.requests()->getArray("patches");
    for (size_t i = 0; i < all->size(); ++i) {
      auto p = all->getObject(static_cast<unsigned>(i));
      if (p->getValue<std::string>("id") == id && p->getValue<std::string>("status") == "confirmed")
        codes.push_back(p->getValue<int>("code"));
    }
    return codes;
  };
  ASSERT_TRUE(waitUntil(
      [&] {
        for (const auto& id : later)
          if (confirmsOf(id).empty()) return false;
        return true;
      },
      60s))
      << ferry.err();
  std::this_thread::sleep_for(2500ms);  // several backoff steps (retry_max 1s): a retry would show
  auto st = status();
  ASSERT_FALSE(st.isNull());
  EXPECT_NE(str(instance(st, "sources", "v1"), "state"), "stopped");
  ferry.signal(SIGTERM);
  EXPECT_EQ(ferry.wait(), 0) << ferry.err();

  auto state = sim.state();
  for (const auto& id : later) {
    SCOPED_TRACE(id);
    const bool was_cancelled = std::find(cancel.begin(), cancel.end(), id) != cancel.end();
    EXPECT_EQ(confirmsOf(id), std::vector<int>{was_cancelled ? 422 : 200})
        << "one confirmation; a 422 is not retried";
    EXPECT_EQ(state[id].status, was_cancelled ? "cancelled" : "confirmed");
  }
  const std::string log = ferry.err();
  for (const auto& id : cancel) {
    EXPECT_NE(log.find("order " + id + " not moved to confirmed"), std::string::npos) << log;
  }
  EXPECT_NE(log.find("Invalid status transition"), std::string::npos) << "the API's reason";
  runOk("pass 4 after the 422s");
  // Everything arrived, except the versions our own confirmations produced (echoes, skipped
  // by the CSV sink).
  // (An order /_sim/change moved on after our confirmation is no echo any more.)
  std::set<std::string> echoes;
  for (const auto& id : fresh)
    if (state[id].updated_at == confirmed[id].updated_at) echoes.insert(id);
  for (const auto& id : later)
    if (std::find(cancel.begin(), cancel.end(), id) == cancel.end()) echoes.insert(id);
  expectCsvMatchesState(sim.state(), "pass 4 (echoes aside, everything arrived)", echoes);
  auto newest = csv().newest();
  for (const auto& id : echoes) {
    EXPECT_EQ(newest[id].status, "new") << id << ": the CSV keeps the order as delivered";
  }
}

// What our PATCH sets is the status, its timestamp (confirmedAt for `confirmed`) and updatedAt.
// When the venue's staff change the order after Ferry delivered it and before the PATCH, the
// version the PATCH produces carries their change too: it is delivered, not skipped as our echo.
TEST_F(DuckHubSourceTest, VenueChangesBetweenDeliveryAndOurConfirmationReachTheErp) {
  Sim& sim = startSim({"--seed", "3", "--venues", "2", "--orders", "120", "--no-rate-limit",
                       "--quiet"});
  const std::string rec = dir_.file("rec.jsonl");
  writeDuckConfig(duckSource("v1", "v1", "confirm_delivered_as = confirmed\npage_size = 20\n") +
                  duckSource("v2", "v2", "confirm_delivered_as = cancelled\npage_size = 20\n") +
                  csvSink() + recordingSink(rec, "skip_echo = false\n"));
  auto initial = sim.state();
  std::map<std::string, std::set<std::string>> fresh;  // venue -> its NEW orders
  for (const auto& [id, o] : initial)
    if (o.status == "new") fresh[o.venue].insert(id);
  ASSERT_GE(fresh["v1"].size(), 5u) << "precondition: NEW orders in v1";
  ASSERT_GE(fresh["v2"].size(), 4u) << "precondition: NEW orders in v2";

  // v1 (confirm_delivered_as = confirmed): the staff add an item to the first two orders Ferry
  // confirms, and confirm the third themselves. v2 (confirm_delivered_as = cancelled): the staff
  // confirm the first two, which Ferry then cancels.
  sim.changeBeforePatch("v1", "edit", 2);
  sim.changeBeforePatch("v1", "confirmed", 1);
  sim.changeBeforePatch("v2", "confirmed", 2);
  runOk("pass 1: delivered, then confirmed (v1) or cancelled (v2)");
  auto changed = sim.changedBeforePatch();
  ASSERT_EQ(changed.size(), 5u) << "precondition: the staff changed five orders";
  auto patches = sim.patches();
  std::map<std::string, int> patched;
  for (const auto& p : patches) {
    SCOPED_TRACE(p.id);
    EXPECT_EQ(p.code, 200);
    EXPECT_EQ(p.status, fresh["v1"].count(p.id) ? "confirmed" : "cancelled");
    ++patched[p.id];
  }
  EXPECT_EQ(patched.size(), fresh["v1"].size() + fresh["v2"].size()) << "every NEW order";
  runOk("pass 2: the versions the PATCHes produced");

  auto state = sim.state();
  DropFolder f = csv();
  ASSERT_TRUE(f.ok) << f.error;
  auto lines = readSinkLines(rec);
  auto recorded = [&](const std::string& id, const std::string& version) {
    std::vector<bool> echoes;
    for (const auto& l : lines)
      if (l.key == id && l.version == version) echoes.push_back(l.echo);
    return echoes;
  };
  std::set<std::string> skipped;  // versions that are (or count as) our own echo
  for (const auto& venue : {"v1", "v2"}) {
    for (const auto& id : fresh[venue]) {
      SCOPED_TRACE(std::string(venue) + " " + id);
      const Sim::Order& now = state[id];
      ASSERT_GT(now.updated_at, initial[id].updated_at);
      const CsvRow* first = f.find(id, initial[id].updated_at);
      ASSERT_NE(first, nullptr) << "the order as first delivered";
      const CsvRow* row = f.find(id, now.updated_at);
      const std::string change = changed.count(id) ? changed[id] : "";
      if (change == "edit" || (std::string(venue) == "v2" && change == "confirmed")) {
        // The staff's change is in the version our PATCH answered: the ERP must get it.
        ASSERT_NE(row, nullptr) << "the venue's change (" << change << ") never reached the ERP";
        EXPECT_EQ(row->status, std::string(venue) == "v1" ? "confirmed" : "cancelled");
        EXPECT_EQ(row->previous, initial[id].updated_at);
        if (change == "edit") {
          EXPECT_EQ(std::stoi(row->item_count), std::stoi(first->item_count) + 1)
              << "the item the venue added";
        }
        EXPECT_EQ(recorded(id, now.updated_at), std::vector<bool>{false}) << "not an echo";
        EXPECT_FALSE(traceEchoes(id)[now.updated_at]);
      } else {
        // Nothing but our own change (or, v1's third order, the staff's confirmation, which
        // is the very change our PATCH makes): an echo, skipped by the CSV sink.
        EXPECT_EQ(row, nullptr) << "our own confirmation reached the ERP as a change";
        EXPECT_EQ(recorded(id, now.updated_at), std::vector<bool>{true});
        skipped.insert(id);
      }
    }
  }
  expectCsvMatchesState(state, "after pass 2 (our echoes aside)", skipped);
  EXPECT_EQ(sim.patches().size(), patches.size()) << "no order is confirmed twice";
}

// The memory of our own confirmations survives kill -9 at any moment: while a PATCH is answered,
// and while pages holding the confirmed versions are fetched but not yet committed (one journal
// transaction per cycle here). None of them comes back as a normal change.
TEST_F(DuckHubSourceTest, KilledBetweenConfirmationAndPageCommitOurEchoesStayEchoes) {
  Sim& sim = startSim({"--seed", "3", "--venues", "1", "--orders", "120", "--no-rate-limit",
                       "--quiet"});
  const std::string rec = dir_.file("rec.jsonl");
  writeFile(config_,
            hostConfig() + "commit_pages = 1000\ncommit_interval = 1h\n\n" +
                duckSource("v1", "v1", "confirm_delivered_as = confirmed\npage_size = 3\n") +
                csvSink() + recordingSink(rec, "skip_echo = false\n"));
  auto initial = sim.state();
  std::set<std::string> fresh;
  for (const auto& [id, o] : initial)
    if (o.status == "new") fresh.insert(id);
  ASSERT_GE(fresh.size(), 8u) << "precondition: NEW orders over several pages";

  // Waits (20 ms steps, 60 s at most) until the simulator's request log satisfies `done`.
  auto waitForLog = [&](const std::function<bool(const Poco::JSON::Object::Ptr&)>& done) {
    for (int i = 0; i < 3000; ++i) {
      if (done(sim.requests())) return true;
      std::this_thread::sleep_for(20ms);
    }
    return false;
  };

  // Round 0: backfill, then killed while the third PATCH's answer is held back (DuckHub has
  // already confirmed that order).
  sim.hold("PATCH", 2, 5000);
  {
    FerryProcess ferry({"run", "--config", config_}, dir_.path());
    ASSERT_TRUE(waitForLog([](const Poco::JSON::Object::Ptr& q) {
      return q->getArray("patches")->size() >= 3;
    })) << ferry.err();
    std::this_thread::sleep_for(50ms);
    ferry.kill9();
  }
  ASSERT_EQ(count(sim.requests(), "faults_pending"), 0);
  // Rounds 1-4: killed while the (r+1)-th GET of the run is held back: the r pages before it
  // were fetched, and hold confirmed versions (the first run after round 0 confirms the rest
  // first), but their transaction was not committed.
  for (int r = 1; r <= 4; ++r) {
    SCOPED_TRACE("round " + std::to_string(r));
    sim.hold("GET", r, 5000);
    FerryProcess ferry({"run", "--config", config_}, dir_.path());
    ASSERT_TRUE(waitForLog([](const Poco::JSON::Object::Ptr& q) {
      return count(q, "faults_pending") == 0;
    })) << ferry.err();
    std::this_thread::sleep_for(50ms);
    ferry.kill9();
  }
  runOk("the final pass");

  auto state = sim.state();
  for (const auto& p : sim.patches()) {
    SCOPED_TRACE(p.id);
    EXPECT_TRUE(fresh.count(p.id)) << "only NEW orders are confirmed";
    EXPECT_EQ(p.status, "confirmed");
    EXPECT_EQ(p.code, 200);
  }
  DropFolder f = csv();
  ASSERT_TRUE(f.ok) << f.error;
  auto newest = f.newest();
  auto lines = readSinkLines(rec);
  for (const auto& id : fresh) {
    SCOPED_TRACE(id);
    const std::string& ours = state[id].updated_at;
    ASSERT_EQ(state[id].status, "confirmed");
    ASSERT_GT(ours, initial[id].updated_at);
    EXPECT_FALSE(f.has(id, ours)) << "our own confirmation reached the ERP as a change";
    EXPECT_EQ(newest[id].status, "new") << "the ERP keeps the order as delivered";
    std::vector<bool> echoes;
    for (const auto& l : lines)
      if (l.key == id && l.version == ours) echoes.push_back(l.echo);
    ASSERT_FALSE(echoes.empty()) << "the confirmed version never reached the recording sink";
    for (bool echo : echoes) EXPECT_TRUE(echo) << "the confirmed version arrived as a change";
    EXPECT_TRUE(traceEchoes(id)[ours]) << "ferry trace: the journal holds it as a normal change";
  }
  expectCsvMatchesState(state, "after the kills (our echoes aside)", fresh);
}

// The delivered hook's progress is saved right after each confirmation, so a restart repeats at
// most the one confirmation in flight when ferry was killed, not every one since the last save.
TEST_F(DuckHubSourceTest, KilledWhileConfirmingRepeatsAtMostTheConfirmationInFlight) {
  Sim& sim = startSim({"--seed", "5", "--venues", "1", "--orders", "300", "--no-rate-limit",
                       "--quiet"});
  writeDuckConfig(duckSource("v1", "v1", "confirm_delivered_as = confirmed\npage_size = 50\n") +
                  csvSink());
  std::set<std::string> fresh;
  for (const auto& [id, o] : sim.state())
    if (o.status == "new") fresh.insert(id);
  ASSERT_GE(fresh.size(), 20u) << "precondition: enough NEW orders";

  // The 16th confirmation is applied at DuckHub but its answer is held back: ferry is killed
  // while it waits for it.
  sim.hold("PATCH", 15, 5000);
  {
    FerryProcess ferry({"run", "--config", config_}, dir_.path());
    bool held = false;
    for (int i = 0; i < 3000 && !held; ++i) {
      held = sim.patches().size() >= 16;
      if (!held) std::this_thread::sleep_for(20ms);
    }
    ASSERT_TRUE(held) << ferry.err();
    std::this_thread::sleep_for(100ms);
    ferry.kill9();
  }
  runOk("after the kill");

  std::map<std::string, int> confirmations;
  for (const auto& p : sim.patches()) ++confirmations[p.id];
  EXPECT_EQ(confirmations.size(), fresh.size()) << "every NEW order is confirmed";
  int repeats = 0;
  for (const auto& [id, n] : confirmations) repeats += n - 1;
  EXPECT_LE(repeats, 1) << "confirmations sent again after the restart";
}

// ---------------------------------------------------------------------------------------------
// 5. Rate limits and 429
// ---------------------------------------------------------------------------------------------

TEST_F(DuckHubSourceTest, ThreeVenuesOnOneHostStayWithinTheLimitsThrough429s) {
  Sim& sim = startSim({"--seed", "9", "--venues", "3", "--orders", "200", "--quiet"});
  std::string extra = "page_size = 20\nrate_limit = true\n";
  writeDuckConfig(duckSource("v1", "v1", extra) + duckSource("v2", "v2", extra) +
                  duckSource("v3", "v3", extra) + csvSink());
  sim.fault("429", 2);
  sim.fault("429-retry-after", 2);
  sim.fault("429", 1);
  sim.fault("429-retry-after", 1);
  runOk("rate-limited backfill");

  expectCsvMatchesState(sim.state(), "after the backfill");
  auto q = sim.requests();
  EXPECT_EQ(count(q, "faults_injected"), 6);
  EXPECT_EQ(count(q, "faults_pending"), 0);
  EXPECT_GE(count(q, "total"), 36) << "3 venues x 10 pages at least, and the six 429s";
  EXPECT_LE(count(q, "max_in_1s"), 10);
  EXPECT_LE(count(q, "max_in_10s"), 50);
  EXPECT_LE(count(q, "max_in_60s"), 300);
  EXPECT_EQ(count(q->getObject("by_status"), "429"), 6)
      << "only the injected 429s: the simulator's own limiter never had to refuse";
}

// ---------------------------------------------------------------------------------------------
// 6. Refused credentials
// ---------------------------------------------------------------------------------------------

TEST_F(DuckHubSourceTest, InvalidKeyAndFreePlanStopTheirSourcesOthersCarryOn) {
  Sim& sim = startSim({"--seed", "2", "--venues", "1", "--orders", "40", "--free-venue",
                       "--no-rate-limit", "--quiet"});
  const std::string unknown = "dk_test_" + std::string(32, 'Q');  // right format, unknown
  writeDuckConfig(duckSource("good", "v1") +
                  duckSource("bad-key", "v1", "api_key = " + unknown + "\n") +
                  duckSource("free", "free") +
                  duckSource("wrong-path", "v1", "base_url = " + sim.baseUrl() + "/venue\n") +
                  csvSink());
  RunResult r = runOnce();
  EXPECT_EQ(r.exit_code, 1) << describe(r);
  EXPECT_EQ(r.err.find(unknown), std::string::npos) << "the key was printed";

  auto st = status();
  ASSERT_FALSE(st.isNull());
  auto bad = instance(st, "sources", "bad-key");
  EXPECT_EQ(str(bad, "state"), "stopped");
  EXPECT_NE(str(bad, "message").find("Invalid API key"), std::string::npos) << str(bad, "message");
  EXPECT_EQ(str(bad, "message").find("format"), std::string::npos) << str(bad, "message");
  EXPECT_EQ(str(bad, "message").find(unknown), std::string::npos);
  auto free = instance(st, "sources", "free");
  EXPECT_EQ(str(free, "state"), "stopped");
  EXPECT_NE(str(free, "message").find("The Orders API requires a paid plan"), std::string::npos)
      << str(free, "message");
  // Any other 4xx cannot be fixed by retrying either: stopped, with the API's own message.
  auto wrong = instance(st, "sources", "wrong-path");
  EXPECT_EQ(str(wrong, "state"), "stopped");
  EXPECT_NE(str(wrong, "message").find("HTTP 404: Cannot GET /v1/venue/orders"), std::string::npos)
      << str(wrong, "message");
  EXPECT_EQ(str(instance(st, "sources", "good"), "state"), "idle");
  expectCsvMatchesState(ofVenue(sim.state(), "v1"), "the paid venue");

  // Stopped means stopped: one refusal each, no hammering.
  auto by_status = sim.requests()->getObject("by_status");
  EXPECT_EQ(count(by_status, "401"), 1);
  EXPECT_EQ(count(by_status, "403"), 1);
  EXPECT_EQ(count(by_status, "404"), 1);
}

TEST_F(DuckHubSourceTest, CheckConnectTestsEveryVenueWithoutPollingOrWriting) {
  Sim& sim = startSim({"--seed", "2", "--venues", "1", "--orders", "10", "--free-venue",
                       "--no-rate-limit", "--quiet"});
  const std::string unknown = "dk_test_" + std::string(32, 'Q');
  writeDuckConfig(duckSource("good", "v1") +
                  duckSource("bad-key", "v1", "api_key = " + unknown + "\n") +
                  duckSource("free", "free") + csvSink());
  RunResult r = ferry({"check", "--config", config_, "--connect"});
  EXPECT_EQ(r.exit_code, 69) << describe(r);
  EXPECT_NE(r.out.find("[source.good] OK"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[source.bad-key] FAILED: authentication refused"), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("Invalid API key"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[source.free] FAILED"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("The Orders API requires a paid plan"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[sink.erp] OK"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find(unknown), std::string::npos) << "the key was printed";
  // One cheap request per source, nothing written anywhere.
  EXPECT_EQ(count(sim.requests(), "total"), 3);
  EXPECT_TRUE(csv().files.empty());

  writeDuckConfig(duckSource("good", "v1") + csvSink());
  r = ferry({"check", "--config", config_, "--connect"});
  EXPECT_EQ(r.exit_code, 0) << describe(r);
}

TEST_F(DuckHubSourceTest, KeyOfTheWrongFormatFailsAtStartWithoutPrintingIt) {
  Sim& sim = startSim({"--seed", "2", "--venues", "1", "--orders", "5", "--no-rate-limit",
                       "--quiet"});
  for (const std::string& key :
       {std::string("dk_test_tooShort"), "sk_live_" + std::string(32, 'a'),
        "dk_live_" + std::string(31, 'a') + "!"}) {
    SCOPED_TRACE(key);
    writeDuckConfig(duckSource("venue-x", "v1", "api_key = " + key + "\n") + csvSink());
    RunResult r = runOnce();
    EXPECT_EQ(r.exit_code, 78) << describe(r);
    EXPECT_NE(r.err.find("venue-x"), std::string::npos) << "names the source: " << r.err;
    EXPECT_NE(r.err.find("api_key"), std::string::npos) << "names the option: " << r.err;
    EXPECT_EQ(r.err.find(key), std::string::npos) << "printed the key: " << r.err;
    EXPECT_EQ(r.out.find(key), std::string::npos) << "printed the key: " << r.out;
  }
  EXPECT_EQ(count(sim.requests(), "total"), 0) << "nothing was sent with a malformed key";
}

// ---------------------------------------------------------------------------------------------
// 7. Transient faults
// ---------------------------------------------------------------------------------------------

TEST_F(DuckHubSourceTest, TransientFaultsAreRetriedAndEverythingArrives) {
  Sim& sim = startSim({"--seed", "4", "--venues", "1", "--orders", "300", "--no-rate-limit",
                       "--quiet"});
  writeDuckConfig(duckSource("v1", "v1", "page_size = 20\ntimeout = 1s\n") + csvSink());
  const std::vector<std::string> kinds{"500", "502", "503", "drop", "truncated", "malformed"};
  sim.fault("500");
  sim.fault("slow", 1, 3000);
  for (const auto& k : kinds) sim.fault(k);
  runOk("backfill through faults");

  auto q = sim.requests();
  EXPECT_EQ(count(q, "faults_injected"), 8);
  EXPECT_EQ(count(q, "faults_pending"), 0);
  expectCsvMatchesState(sim.state(), "after the faults");
  EXPECT_TRUE(csv().duplicates().empty());
  auto st = status();
  ASSERT_FALSE(st.isNull());
  EXPECT_EQ(str(instance(st, "sources", "v1"), "state"), "idle");
}

// ---------------------------------------------------------------------------------------------
// 8. kill -9 while orders change
// ---------------------------------------------------------------------------------------------

TEST_F(DuckHubSourceTest, KilledAtRandomMomentsWhileOrdersChangeNothingMissingNothingStale) {
  Sim& sim = startSim({"--seed", "8", "--venues", "2", "--orders", "1500", "--no-rate-limit",
                       "--live-rate", "20", "--quiet"});
  writeDuckConfig(duckSource("v1", "v1", "page_size = 50\ntimeout = 2s\n") +
                  duckSource("v2", "v2", "page_size = 50\ntimeout = 2s\n") +
                  csvSink("batch_size = 300\n"));
  const unsigned seed = 20260705;
  std::mt19937 rng(seed);
  std::cerr << "[ seed     ] " << seed << "\n";
  const std::vector<std::string> faults{"500", "drop", "truncated", "malformed", "503",
                                        "429", "slow", "502"};
  for (int round = 0; round < 12; ++round) {
    FerryProcess ferry({"run", "--config", config_}, dir_.path());
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + rng() % 1500));
    ASSERT_TRUE(ferry.running()) << "round " << round << ": ferry ended early: " << ferry.err();
    ferry.kill9();
    const std::string& kind = faults[round % faults.size()];
    sim.fault(kind, 1 + static_cast<int>(rng() % 2), kind == "slow" ? 3000 : 0);
  }
  sim.control("POST", "/_sim/live", "{\"rate\":0}");
  // At least one change after the last kill, so that the final pass writes a file (the sink
  // removes temporary files of an interrupted write at its next write).
  sim.change(3);
  auto state = sim.state();
  RunResult r = ferry({"run", "--config", config_, "--once"}, 180s);
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_GT(count(sim.requests(), "changes_applied"), 50) << "precondition: orders changed";
  EXPECT_EQ(count(sim.requests(), "faults_pending"), 0);
  EXPECT_EQ(state.size(), sim.state().size()) << "the simulator stood still";
  expectCsvMatchesState(state, "after 12 kills and a final pass");
}

// ---------------------------------------------------------------------------------------------
// 9. Only the documented API
// ---------------------------------------------------------------------------------------------

// `ferry check` tells the operator when the venues of one API host cannot all be polled at their
// interval within DuckHub's per-IP limit, and how often they will be polled instead: a warning,
// not an error. Venues of another host are counted apart. Thousands of sections stay fast.
TEST_F(DuckHubSourceTest, CheckWarnsWhenTheVenuesOfOneHostNeedMoreThanThePerIpLimit) {
  auto venues = [&](const std::string& prefix, int n, const std::string& base,
                    const std::string& interval) {
    std::string out;
    for (int v = 1; v <= n; ++v)
      out += section("source." + prefix + std::to_string(v),
                     {{"plugin", "source_duckhub_orders"},
                      {"base_url", base},
                      {"api_key", "dk_test_" + std::string(32, 'A')},
                      {"interval", interval},
                      {"start_from", kStartFrom}},
                     "");
    return out;
  };
  writeDuckConfig(venues("a", 120, "https://api.duck-hub.example/v1", "20s") +
                  venues("b", 50, "https://other.duck-hub.example/v1", "20s") + csvSink());
  RunResult r = ferry({"check", "--config", config_});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.out.find("warning: https://api.duck-hub.example: 120 venues at 20 s need 360 "
                       "requests/min; DuckHub allows 300/min per IP: each venue will be polled "
                       "about every 24 s\n"),
            std::string::npos)
      << r.out.substr(r.out.size() > 3000 ? r.out.size() - 3000 : 0);
  EXPECT_EQ(r.out.find("other.duck-hub.example:"), std::string::npos) << "150/min is within";

  // 2,000 venues: still a warning, quickly.
  writeDuckConfig(venues("c", 2000, "https://api.duck-hub.example/v1", "20s") + csvSink());
  const auto start = std::chrono::steady_clock::now();
  r = ferry({"check", "--config", config_});
  const double took =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.out.find("2000 venues at 20 s need 6000 requests/min; DuckHub allows 300/min per "
                       "IP: each venue will be polled about every 400 s"),
            std::string::npos);
  EXPECT_LT(took, 3.0) << "ferry check of 2,000 sections";
}

// 30 venues polling every 200 ms under DuckHub's limits (10/1 s) wait for grants most of the time;
// on 2 workers, that wait must hold no worker: a venue without the limit keeps its schedule and
// each change there arrives within about a second.
TEST_F(DuckHubSourceTest, VenuesWaitingForRateLimitGrantsHoldNoWorker) {
  Sim& sim = startSim({"--seed", "23", "--venues", "31", "--orders", "2", "--no-rate-limit",
                       "--quiet"});
  const std::string rec = dir_.file("rec.jsonl");
  std::string sections;
  for (int v = 1; v <= 30; ++v) {
    const std::string venue = "v" + std::to_string(v);
    sections += duckSource(venue, venue, "rate_limit = true\n");
  }
  sections += duckSource("free", "v31") + recordingSink(rec);  // rate_limit = false
  std::string host = hostConfig();
  host.pop_back();
  writeFile(config_, host + "workers = 2\n\n" + sections);

  FerryProcess ferry({"run", "--config", config_}, dir_.path());
  auto has = [&](const std::string& id, const std::string& version) {
    for (const auto& l : readSinkLines(rec))
      if (l.key == id && l.version == version) return true;
    return false;
  };
  ASSERT_TRUE(waitUntil([&] { return readSinkLines(rec).size() >= 62; }, 60s)) << ferry.err();
  std::this_thread::sleep_for(std::chrono::seconds(2));  // the limited venues queue for grants
  double worst = 0;
  for (int i = 0; i < 8; ++i) {
    const std::string id = sim.change(1, "v31").front();
    const std::string version = ofVenue(sim.state(), "v31").at(id).updated_at;
    const auto made = std::chrono::steady_clock::now();
    ASSERT_TRUE(waitUntil([&] { return has(id, version); }, 30s)) << id << "\n" << ferry.err();
    worst = std::max(worst, std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                                          made).count());
  }
  EXPECT_LT(worst, 1.5) << "seconds from a change of the free venue to the sink, at worst";
  auto q = sim.requests();
  EXPECT_LE(count(q, "max_in_1s"), 10 + 6) << "the limited venues (plus the free one) in 1 s";
  ferry.signal(SIGTERM);
  EXPECT_EQ(ferry.wait(60s), 0) << ferry.err();
}

// ---------------------------------------------------------------------------------------------
// Many venues on a few workers
// ---------------------------------------------------------------------------------------------

// A remote stuck in every request: it accepts connections and never answers (on 127.0.0.1).
class SilentServer {
 public:
  SilentServer() : socket_(Poco::Net::SocketAddress("127.0.0.1", 0), 64) {
    thread_ = std::thread([this] {
      while (!stop_) {
        if (!socket_.poll(Poco::Timespan(0, 50000), Poco::Net::Socket::SELECT_READ)) continue;
        held_.push_back(socket_.acceptConnection());
        ++accepted_;
      }
    });
  }
  ~SilentServer() {
    stop_ = true;
    thread_.join();
  }
  std::string baseUrl() const {
    return "http://127.0.0.1:" + std::to_string(socket_.address().port()) + "/v1";
  }
  int accepted() const { return accepted_.load(); }

 private:
  Poco::Net::ServerSocket socket_;
  std::vector<Poco::Net::StreamSocket> held_;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

// A field of /proc/<pid>/status ("Threads"), -1 when unreadable.
int64_t procStatus(pid_t pid, const std::string& field) {
  std::istringstream in(readFile("/proc/" + std::to_string(pid) + "/status"));
  std::string line;
  while (std::getline(in, line))
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1));
  return -1;
}

int64_t openFiles(pid_t pid) {
  std::error_code ec;
  int64_t n = 0;
  for (auto it = fs::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != fs::directory_iterator(); it.increment(ec))
    ++n;
  return n;
}

// 300 venues and 3 venues whose remote never answers, on 6 workers: the stuck requests hold 3
// workers up to their timeout, again and again, and the 300 others keep their 4 s schedule on the
// rest, deliver every change, and the whole process keeps a handful of threads and connections
// (one thread and one connection per source before the scheduler and the pool).
TEST_F(DuckHubSourceTest, ThreeHundredVenuesOnSixWorkersStuckRemotesDelayNoOther) {
  constexpr int kVenues = 300, kWorkers = 6;
  constexpr int64_t kIntervalMs = 4000;
  Sim& sim = startSim({"--seed", "21", "--venues", std::to_string(kVenues), "--orders", "2",
                       "--no-rate-limit", "--quiet"});
  SilentServer stuck;
  const std::string rec = dir_.file("rec.jsonl");
  std::string sections;
  for (int v = 1; v <= kVenues; ++v) {
    const std::string venue = "v" + std::to_string(v);
    sections += duckSource(venue, venue, "interval = 4s\n");
  }
  for (int s = 1; s <= 3; ++s)
    sections += section("source.stuck" + std::to_string(s),
                        {{"plugin", "source_duckhub_orders"},
                         {"base_url", stuck.baseUrl()},
                         {"api_key", sim.key("v1")},
                         {"interval", "4s"},
                         {"timeout", "5s"},
                         {"start_from", kStartFrom},
                         {"rate_limit", "false"}},
                        "");
  sections += recordingSink(rec);
  std::string host = hostConfig();
  host.pop_back();  // still inside [host]
  writeFile(config_, host + "workers = " + std::to_string(kWorkers) + "\n\n" + sections);

  auto initial = sim.state();
  ASSERT_EQ(initial.size(), static_cast<size_t>(kVenues * 2));
  // Every order of the simulator in the sink at its current version.
  auto missing = [&](const std::map<std::string, Sim::Order>& state) {
    std::set<std::pair<std::string, std::string>> have;
    for (const auto& l : readSinkLines(rec)) have.insert({l.key, l.version});
    size_t n = 0;
    for (const auto& [id, o] : state) n += have.count({id, o.updated_at}) == 0;
    return n;
  };

  FerryProcess ferry({"run", "--config", config_}, dir_.path());
  ASSERT_TRUE(waitUntil([&] { return missing(initial) == 0; }, 60s))
      << missing(initial) << " orders missing after the first round\n" << ferry.err();
  ASSERT_TRUE(waitUntil([&] { return stuck.accepted() >= 3; }, 20s)) << "the stuck venues polled";

  // The schedule holds for the healthy venues while the stuck ones hold their workers.
  sim.control("POST", "/_sim/reset-stats", "{}");
  const auto window_start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(std::chrono::milliseconds(3 * kIntervalMs));
  const int64_t polls = count(sim.requests(), "total");
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                                       window_start).count();
  EXPECT_GE(polls, static_cast<int64_t>(0.85 * kVenues * seconds * 1000 / kIntervalMs))
      << "polls of the healthy venues in " << seconds << " s";

  // Changes in many venues all arrive within about an interval.
  sim.change(60);
  const auto changed_at = std::chrono::steady_clock::now();
  auto changed = sim.state();
  ASSERT_TRUE(waitUntil([&] { return missing(changed) == 0; }, 30s))
      << missing(changed) << " changes missing\n" << ferry.err();
  const auto delivered_s = std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                                         changed_at).count();
  EXPECT_LT(delivered_s, 2.0 * kIntervalMs / 1000 + 2) << "the last change took that long";

  // A handful of threads and connections, whatever the number of sources.
  const int64_t threads = procStatus(ferry.pid(), "Threads");
  const int64_t files = openFiles(ferry.pid());
  EXPECT_GT(threads, 0);
  EXPECT_LE(threads, kWorkers * 2 + 8) << "threads of ferry";
  EXPECT_LE(files, 64) << "open files of ferry (sockets included)";
  std::cerr << "ferry: " << threads << " threads, " << files << " open files, the last change "
            << delivered_s << " s after it was made, " << polls << " polls in " << seconds
            << " s\n";

  // The stuck venues say why they are behind.
  auto st = status();
  ASSERT_FALSE(st.isNull());
  auto s1 = instance(st, "sources", "stuck1");
  ASSERT_FALSE(s1.isNull());
  EXPECT_EQ(str(s1, "state"), "retrying");
  EXPECT_NE(str(s1, "message").find("timed out"), std::string::npos) << str(s1, "message");

  ferry.signal(SIGTERM);
  ASSERT_EQ(ferry.wait(60s), 0) << ferry.err();
  // The host's own account of how late the turns were against their schedule, at its stop.
  const std::string err = ferry.err();
  const std::regex summary(R"(scheduling: since the start (\d+) source turn\(s\), lateness p50 (\d+) ms, p99 (\d+) ms)");
  std::smatch m;
  for (auto it = std::sregex_iterator(err.begin(), err.end(), summary);
       it != std::sregex_iterator(); ++it)
    m = *it;
  ASSERT_FALSE(m.empty()) << err.substr(err.size() > 4000 ? err.size() - 4000 : 0);
  std::cerr << m[0] << "\n";
  EXPECT_GT(std::stoll(m[1]), 900) << m[0];
  EXPECT_LE(std::stoll(m[3]), 1000) << m[0];
}

TEST_F(DuckHubSourceTest, UsesOnlyDocumentedEndpointsAndParameters) {
  // Logged requests (no --quiet): one source at a time, so log lines never interleave.
  Sim& sim = startSim({"--seed", "6", "--venues", "1", "--orders", "80", "--no-rate-limit"});
  writeDuckConfig(
      duckSource("v1", "v1", "page_size = 7\nconfirm_delivered_as = confirmed\n") + csvSink() +
      duckSource("v1-done", "v1", "status = completed\nenabled = false\n"));
  sim.fault("503");
  sim.control("POST", "/_sim/change-while-paging", "{\"after_requests\":2,\"count\":2}");
  runOk("backfill with confirmations");
  sim.change(10, "v1");
  runOk("second cycle");
  writeDuckConfig(duckSource("v1", "v1", "enabled = false\n") + csvSink() +
                  duckSource("v1-done", "v1", "status = completed\npage_size = 9\n"));
  runOk("a status-filtered source");

  const std::regex line(R"(^(GET|PATCH|POST|PUT|DELETE|HEAD) (\S+) -> (\d+)$)");
  const std::regex get_orders(R"(^/v1/orders\?(.*)$)");
  const std::regex patch_status(R"(^/v1/orders/c[0-9a-z]{24}/status$)");
  const std::regex instant(R"(^\d{4}-\d\d-\d\dT\d\d(%3A|:)\d\d(%3A|:)\d\d(\.\d+)?(Z|%2B\d\d(%3A|:)\d\d|-\d\d(%3A|:)\d\d)$)");
  const std::set<std::string> statuses{"new", "confirmed", "preparing",
                                       "delivering", "completed", "cancelled"};
  std::istringstream log(sim.log());
  int gets = 0, patches = 0, with_status = 0;
  for (std::string text; std::getline(log, text);) {
    std::smatch m;
    if (!std::regex_match(text, m, line)) continue;  // not a request line
    const std::string method = m[1], uri = m[2], code = m[3];
    if (uri.rfind("/_sim/", 0) == 0) continue;
    SCOPED_TRACE(text);
    EXPECT_NE(code, "400") << "the API refused a request as invalid";
    EXPECT_NE(code, "404");
    std::smatch q;
    if (method == "PATCH") {
      EXPECT_TRUE(std::regex_match(uri, patch_status));
      ++patches;
      continue;
    }
    ASSERT_EQ(method, "GET");
    ASSERT_TRUE(std::regex_match(uri, q, get_orders));
    ++gets;
    std::map<std::string, std::string> params;
    std::stringstream query(q[1].str());
    for (std::string kv; std::getline(query, kv, '&');) {
      auto eq = kv.find('=');
      ASSERT_NE(eq, std::string::npos) << kv;
      EXPECT_TRUE(params.emplace(kv.substr(0, eq), kv.substr(eq + 1)).second) << "twice: " << kv;
    }
    for (const auto& [k, v] : params)
      EXPECT_TRUE(k == "updatedSince" || k == "limit" || k == "page" || k == "status")
          << "undocumented parameter " << k;
    ASSERT_TRUE(params.count("updatedSince") && params.count("limit") && params.count("page"));
    EXPECT_TRUE(std::regex_match(params["updatedSince"], instant)) << params["updatedSince"];
    const int limit = std::stoi(params["limit"]), page = std::stoi(params["page"]);
    EXPECT_TRUE(limit >= 1 && limit <= 100);
    EXPECT_GE(page, 1);
    if (params.count("status")) {
      ++with_status;
      EXPECT_EQ(params["status"], "completed");
    }
  }
  EXPECT_GT(gets, 10);
  EXPECT_GT(patches, 0) << "precondition: confirmations were sent";
  EXPECT_GT(with_status, 0) << "precondition: the status filter was used";
  auto q = sim.requests();
  EXPECT_EQ(count(q->getObject("by_status"), "400"), 0);
  auto all = q->getArray("patches");
  EXPECT_EQ(static_cast<int>(all->size()), patches);
  for (size_t i = 0; i < all->size(); ++i)
    EXPECT_EQ(all->getObject(static_cast<unsigned>(i))->getValue<std::string>("status"),
              "confirmed")
        << "the PATCH body is exactly {\"status\": \"confirmed\"}";
}

// ---------------------------------------------------------------------------------------------
// 10. The journal in PostgreSQL
// ---------------------------------------------------------------------------------------------

// The same runs with `[host] journal = postgresql://…`: a private schema of the PostgreSQL server
// scripts/test starts (FERRY_TEST_PG, a libpq keyword string), read back with psql. Without
// FERRY_TEST_PG, or with the server unreachable, the tests FAIL.
class DuckHubOnPostgresJournalTest : public DuckHubSourceTest {
 protected:
  void SetUp() override {
    DuckHubSourceTest::SetUp();
    const char* base = std::getenv("FERRY_TEST_PG");
    ASSERT_TRUE(base != nullptr && *base != '\0')
        << "FERRY_TEST_PG is not set: run the tests with scripts/test, which starts a PostgreSQL "
           "server and sets it";
    admin_ = base;
    std::map<std::string, std::string> parts;
    std::istringstream in(admin_);
    std::string item;
    while (in >> item)
      if (auto eq = item.find('='); eq != std::string::npos)
        parts[item.substr(0, eq)] = item.substr(eq + 1);
    std::mt19937_64 gen(std::random_device{}());
    schema_ = "j_";
    for (int i = 0; i < 12; ++i) schema_ += "abcdefghijklmnopqrstuvwxyz0123456789"[gen() % 36];
    journal_ = "postgresql://" + parts["user"] + "@" + parts["host"] + ":" + parts["port"] + "/" +
               parts["dbname"] + "?options=-csearch_path%3D" + schema_;
    RunResult r = runCommand({"psql", admin_, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c",
                              "CREATE SCHEMA " + schema_},
                             dir_.path(), 60s);
    ASSERT_EQ(r.exit_code, 0) << "PostgreSQL at '" << admin_ << "' is unreachable: " << describe(r);
    created_ = true;
  }
  void TearDown() override {
    if (created_)
      runCommand({"psql", admin_, "-X", "-q", "-c", "DROP SCHEMA " + schema_ + " CASCADE"},
                 dir_.path(), 60s);
  }

  // psql in the journal's schema: the rows as tab-separated lines.
  std::string psql(const std::string& sql) {
    RunResult r = runCommand({"psql", admin_ + " options='-csearch_path=" + schema_ + "'", "-X",
                              "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-c", sql},
                             dir_.path(), 60s);
    EXPECT_EQ(r.exit_code, 0) << sql << ": " << describe(r);
    return r.out;
  }
  int64_t journalled() { return std::stoll(psql("SELECT count(*) FROM events")); }

  // The SQL sink into a SQLite file: one row per order, its latest version.
  std::string sqlSink() const {
    return section("sink.sql",
                   {{"plugin", "sink_sql"},
                    {"connector", "sqlite"},
                    {"connection", sql_db_},
                    {"changes", "false"},
                    {"table", "orders"},
                    {"batch_delay", "100ms"}},
                   "");
  }
  // Every order of the simulator is a row of `orders` with its current version and status, none
  // twice.
  void expectSqlMatchesState(const std::map<std::string, Sim::Order>& state,
                             const std::string& what) {
    RunResult r = runCommand({"sqlite3", "-batch", "-bail", "-separator", "\t", sql_db_,
                              "SELECT order_id, updated_at, status FROM orders"},
                             dir_.path(), 60s);
    ASSERT_EQ(r.exit_code, 0) << what << ": " << describe(r);
    std::map<std::string, std::pair<std::string, std::string>> rows;
    size_t lines = 0;
    std::istringstream in(r.out);
    for (std::string line; std::getline(in, line);) {
      std::istringstream cells(line);
      std::string id, updated_at, status;
      std::getline(cells, id, '\t');
      std::getline(cells, updated_at, '\t');
      std::getline(cells, status, '\t');
      rows[id] = {updated_at, status};
      ++lines;
    }
    EXPECT_EQ(lines, rows.size()) << what << ": an order has two rows";
    EXPECT_EQ(rows.size(), state.size()) << what;
    int wrong = 0;
    for (const auto& [id, o] : state) {
      auto it = rows.find(id);
      if (it == rows.end() || it->second != std::make_pair(o.updated_at, o.status))
        if (++wrong <= 3)
          ADD_FAILURE() << what << ": order " << id << " is " << o.updated_at << " " << o.status
                        << " at the simulator, "
                        << (it == rows.end() ? "missing"
                                             : it->second.first + " " + it->second.second)
                        << " in the table";
    }
    EXPECT_EQ(wrong, 0) << what;
  }

  std::string admin_, schema_;
  std::string sql_db_ = dir_.file("target.db");
  bool created_ = false;
};

TEST_F(DuckHubOnPostgresJournalTest, BackfillIntoCsvAndSqlDeliversEveryOrderOnceAndCommandsWork) {
  Sim& sim = startSim({"--seed", "11", "--venues", "2", "--orders", "150", "--no-rate-limit",
                       "--quiet"});
  writeDuckConfig(duckSource("v1", "v1", "page_size = 25\n") +
                  duckSource("v2", "v2", "page_size = 25\n") + csvSink() + sqlSink());
  runOk("backfill");

  auto state = sim.state();
  ASSERT_EQ(state.size(), 300u);
  expectCsvMatchesState(state, "after the backfill");
  DropFolder f = csv();
  EXPECT_EQ(f.rows.size(), state.size()) << "one row per order, none twice";
  EXPECT_TRUE(f.duplicates().empty()) << "written twice: " << f.duplicates().front();
  expectSqlMatchesState(state, "after the backfill");
  EXPECT_EQ(journalled(), 300) << "the events are in PostgreSQL";
  EXPECT_FALSE(fs::exists(dir_.file("journal.db"))) << "no SQLite journal was made";

  // `ferry status`: the journal by its URL, every cursor at the newest order, both sinks at the
  // last sequence.
  auto st = status();
  ASSERT_FALSE(st.isNull());
  EXPECT_EQ(str(st, "journal"), journal_);
  EXPECT_EQ(num(st, "last_sequence"), 300);
  EXPECT_FALSE(st->getValue<bool>("running"));
  for (const char* venue : {"v1", "v2"}) {
    std::string newest;
    for (const auto& [id, o] : ofVenue(state, venue)) newest = std::max(newest, o.updated_at);
    auto src = instance(st, "sources", venue);
    ASSERT_FALSE(src.isNull()) << venue;
    EXPECT_EQ(str(src, "state"), "idle") << venue << ": " << str(src, "message");
    ASSERT_FALSE(src->getObject("cursor").isNull()) << venue;
    EXPECT_EQ(src->getObject("cursor")->getValue<std::string>("since"), newest) << venue;
  }
  for (const char* sink : {"erp", "sql"}) {
    auto snk = instance(st, "sinks", sink);
    ASSERT_FALSE(snk.isNull()) << sink;
    EXPECT_EQ(num(snk, "offset"), 300) << sink;
    EXPECT_EQ(num(snk, "backlog"), 0) << sink;
  }

  // `ferry trace` finds an order's version; `ferry dead-letters list` has none.
  const auto& [some_id, some_order] = *state.begin();
  const auto traced = traceEchoes(some_id);
  EXPECT_EQ(traced.count(some_order.updated_at), 1u) << "ferry trace " << some_id;
  auto dead = deadLetters();
  ASSERT_FALSE(dead.isNull());
  EXPECT_EQ(dead->size(), 0u);
  RunResult positions = ferry({"positions", "--config", config_}, 60s);
  EXPECT_EQ(positions.exit_code, 0) << describe(positions);
  EXPECT_NE(positions.out.find("last sequence 300"), std::string::npos) << positions.out;

  // A command that moves positions, with no ferry running: it takes the journal itself.
  RunResult pause = ferry({"sinks", "pause", "sql", "--config", config_}, 60s);
  ASSERT_EQ(pause.exit_code, 0) << describe(pause);
  EXPECT_EQ(psql("SELECT paused FROM sink_controls WHERE sink = 'sql'"), "t\n");
  RunResult rewind =
      ferry({"sinks", "rewind", "erp", "--to-sequence", "200", "--config", config_}, 60s);
  ASSERT_EQ(rewind.exit_code, 0) << describe(rewind);
  EXPECT_EQ(psql("SELECT sequence FROM sink_offsets WHERE sink = 'erp'"), "200\n");
  // The paused SQL sink writes nothing; the CSV sink catches up from 200.
  sim.change(5);
  runOk("second pass");
  EXPECT_EQ(journalled(), 305);
  st = status();
  EXPECT_EQ(num(instance(st, "sinks", "erp"), "offset"), 305);
  EXPECT_EQ(num(instance(st, "sinks", "sql"), "offset"), 300) << "paused";
  EXPECT_TRUE(instance(st, "sinks", "sql")->getValue<bool>("paused"));
  RunResult resume = ferry({"sinks", "resume", "sql", "--config", config_}, 60s);
  ASSERT_EQ(resume.exit_code, 0) << describe(resume);
  runOk("third pass");
  expectSqlMatchesState(sim.state(), "after the resume");
  expectCsvMatchesState(sim.state(), "after the third pass");
}

// The journal URL's password is a secret: taken from the environment, it never shows in the log,
// `ferry status` (text or JSON) or an error; the URL shows with "***" in its place. (The test
// server trusts local logins, so it lets the password pass unchecked.)
TEST_F(DuckHubOnPostgresJournalTest, ThePasswordInTheJournalUrlNeverShows) {
  startSim({"--seed", "2", "--venues", "1", "--orders", "20", "--no-rate-limit", "--quiet"});
  const std::string password = "Journal-Passw0rd-7f3a";
  ::setenv("FERRY_TEST_JOURNAL_PASSWORD", password.c_str(), 1);
  const std::string shown = journal_.substr(0, journal_.find('@'));  // postgresql://user
  const std::string rest = journal_.substr(journal_.find('@'));
  journal_ = shown + ":${system.env.FERRY_TEST_JOURNAL_PASSWORD}" + rest;
  writeDuckConfig(duckSource("v1", "v1") + csvSink());
  RunResult run = runOnce();
  RunResult status_text = ferry({"status", "--config", config_}, 60s);
  RunResult status_json = ferry({"status", "--config", config_, "--json"}, 60s);
  FerryProcess owner({"run", "--config", config_}, dir_.path());
  RunResult busy;
  ASSERT_TRUE(waitUntil([&] {
    busy = runOnce();
    return busy.exit_code == 75;
  })) << describe(busy);
  owner.signal(SIGTERM);
  EXPECT_EQ(owner.wait(), 0) << owner.err();
  ::unsetenv("FERRY_TEST_JOURNAL_PASSWORD");
  ASSERT_EQ(run.exit_code, 0) << describe(run);
  EXPECT_EQ(status_text.exit_code, 0) << describe(status_text);
  EXPECT_NE(status_text.out.find("journal " + shown + ":***" + rest), std::string::npos)
      << status_text.out;
  EXPECT_NE(status_json.out.find(shown + ":***" + rest), std::string::npos) << status_json.out;
  EXPECT_NE(run.err.find(shown + ":***" + rest), std::string::npos) << run.err;
  for (const RunResult* r : {&run, &status_text, &status_json, &busy})
    EXPECT_EQ((r->out + r->err).find(password), std::string::npos) << describe(*r);
  EXPECT_EQ(owner.err().find(password), std::string::npos) << owner.err();
}

// One ferry owns a PostgreSQL journal: a second `ferry run` on it is refused with the owner named
// (until leases let hosts share it), and a command beside the running one is carried out by it.
TEST_F(DuckHubOnPostgresJournalTest, ASecondFerryIsRefusedAndCommandsGoThroughTheOwner) {
  startSim({"--seed", "3", "--venues", "1", "--orders", "50", "--no-rate-limit", "--quiet"});
  writeDuckConfig(duckSource("v1", "v1") + csvSink());
  FerryProcess running({"run", "--config", config_}, dir_.path());
  Poco::JSON::Object::Ptr st;
  ASSERT_TRUE(waitUntil([&] {
    st = tryStatus();
    return !st.isNull() && st->getValue<bool>("running") &&
           num(instance(st, "sinks", "erp"), "offset") == 50;
  })) << running.err();
  EXPECT_EQ(num(st, "pid"), running.pid());

  RunResult second = runOnce();
  EXPECT_EQ(second.exit_code, 75) << describe(second);
  EXPECT_NE(second.err.find("is in use by another ferry (ferry/"), std::string::npos) << second.err;
  EXPECT_NE(second.err.find("/" + std::to_string(running.pid()) + ","), std::string::npos)
      << second.err;

  RunResult pause = ferry({"sinks", "pause", "erp", "--config", config_}, 60s);
  EXPECT_EQ(pause.exit_code, 0) << describe(pause);
  EXPECT_EQ(psql("SELECT state FROM commands"), "done\n") << "answered by the running ferry";
  running.signal(SIGTERM);
  EXPECT_EQ(running.wait(), 0) << running.err();
}

// PostgreSQL restarts or fails over: every connection of the running ferry is cut, again and
// again, while orders change. Sources and sinks retry (their status says "retrying", the log
// "journal: … retry 1 in …"), the owner takes
// its lock again, and the running ferry delivers everything by itself: nothing lost, nothing
// journalled twice, one row per order.
TEST_F(DuckHubOnPostgresJournalTest, CutJournalConnectionsAreRetriedAndNothingIsLostOrRepeated) {
  Sim& sim = startSim({"--seed", "5", "--venues", "1", "--orders", "300", "--no-rate-limit",
                       "--live-rate", "20", "--quiet"});
  host_extra_ = "host_id = " + schema_ + "\n";  // so that only this ferry's connections are cut
  writeDuckConfig(duckSource("v1", "v1", "page_size = 20\n") + csvSink() + sqlSink());
  FerryProcess running({"run", "--config", config_}, dir_.path());
  int cut = 0;
  for (int i = 0; i < 12; ++i) {
    std::this_thread::sleep_for(250ms);
    cut += std::stoi(psql("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                          "application_name LIKE 'ferry/" + schema_ + "/%'"));
  }
  EXPECT_GE(cut, 6) << "precondition: connections were cut";
  ASSERT_TRUE(running.running()) << running.err();
  sim.control("POST", "/_sim/live", "{\"rate\":0}");
  sim.change(3);
  const auto state = sim.state();
  std::string newest;
  for (const auto& [id, o] : state) newest = std::max(newest, o.updated_at);
  const bool caught_up = waitUntil([&] {
    auto st = tryStatus();
    if (st.isNull()) return false;
    auto src = instance(st, "sources", "v1");
    const int64_t last = num(st, "last_sequence");
    return !src.isNull() && !src->getObject("cursor").isNull() &&
           src->getObject("cursor")->getValue<std::string>("since") == newest &&
           num(instance(st, "sinks", "erp"), "offset") == last &&
           num(instance(st, "sinks", "sql"), "offset") == last;
  });
  EXPECT_TRUE(caught_up) << "the running ferry did not catch up: " << running.err();
  running.signal(SIGTERM);
  EXPECT_EQ(running.wait(), 0) << running.err();
  // e.g. "sink sql: journal: journal postgresql://…: advancing sink 'sql' to 306: server closed
  // the connection unexpectedly …; retry 1 in 35ms"
  EXPECT_NE(running.err().find(": journal: journal " + journal_), std::string::npos)
      << running.err();
  EXPECT_NE(running.err().find("; retry 1 in "), std::string::npos) << running.err();
  expectCsvMatchesState(state, "after the cuts");
  expectSqlMatchesState(state, "after the cuts");
  EXPECT_EQ(psql("SELECT count(*) FROM (SELECT key, version FROM events GROUP BY key, version "
                 "HAVING count(*) > 1) d"),
            "0\n");
}

// kill -9 at random moments while orders change, on the PostgreSQL journal: after a final pass
// every order's current version is in the CSV folder and the SQL table, none twice in the table.
TEST_F(DuckHubOnPostgresJournalTest, KilledAtRandomMomentsNothingMissingNothingStale) {
  Sim& sim = startSim({"--seed", "8", "--venues", "2", "--orders", "600", "--no-rate-limit",
                       "--live-rate", "20", "--quiet"});
  writeDuckConfig(duckSource("v1", "v1", "page_size = 50\ntimeout = 2s\n") +
                  duckSource("v2", "v2", "page_size = 50\ntimeout = 2s\n") +
                  csvSink("batch_size = 300\n") + sqlSink());
  const unsigned seed = 20261203;
  std::mt19937 rng(seed);
  std::cerr << "[ seed     ] " << seed << "\n";
  for (int round = 0; round < 6; ++round) {
    FerryProcess ferry({"run", "--config", config_}, dir_.path());
    std::this_thread::sleep_for(std::chrono::milliseconds(300 + rng() % 1500));
    ASSERT_TRUE(ferry.running()) << "round " << round << ": ferry ended early: " << ferry.err();
    ferry.kill9();
  }
  sim.control("POST", "/_sim/live", "{\"rate\":0}");
  sim.change(3);
  auto state = sim.state();
  RunResult r = ferry({"run", "--config", config_, "--once"}, 180s);
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_GT(count(sim.requests(), "changes_applied"), 20) << "precondition: orders changed";
  expectCsvMatchesState(state, "after 6 kills and a final pass");
  expectSqlMatchesState(state, "after 6 kills and a final pass");
  // Nothing twice in the journal: one event per (order, version).
  EXPECT_EQ(psql("SELECT count(*) FROM (SELECT key, version FROM events GROUP BY key, version "
                 "HAVING count(*) > 1) d"),
            "0\n");
}

// ---------------------------------------------------------------------------------------------
// Several hosts on one PostgreSQL journal
// ---------------------------------------------------------------------------------------------

// Hosts h1, h2, h3: `ferry run` each, with the same config but its own [host] host_id, on one
// PostgreSQL journal. Two DuckHub simulators (two API hosts: two request budgets, so two lease
// groups of two venues each) feed three sinks: the CSV drop folder all hosts share, the SQL table
// and a REST receiver. 5 lease groups for 3 hosts.
class SeveralHostsTest : public DuckHubOnPostgresJournalTest {
 protected:
  void SetUp() override {
    DuckHubOnPostgresJournalTest::SetUp();
    fs::copy_file(SINK_REST_FORWARDER_PLUGIN, plugins_ + "/sink_rest_forwarder.so");
  }

  // Starts both simulators with live changes.
  void startSims(int orders, int live_rate) {
    const std::vector<std::string> args{"--venues", "2", "--orders", std::to_string(orders),
                                        "--no-rate-limit", "--live-rate",
                                        std::to_string(live_rate), "--quiet"};
    auto with_seed = [&](const char* seed) {
      std::vector<std::string> a{"--seed", seed};
      a.insert(a.end(), args.begin(), args.end());
      return a;
    };
    startSim(with_seed("21"));
    fs::create_directories(dir_.file("sim2"));
    sim2_ = std::make_unique<Sim>(dir_.file("sim2"), with_seed("22"));
  }
  std::string sources() const {
    std::string out;
    for (const auto* sim : {sim_.get(), sim2_.get()})
      for (const char* venue : {"v1", "v2"})
        out += section(std::string("source.") + (sim == sim_.get() ? "a" : "b") + venue,
                       {{"plugin", "source_duckhub_orders"},
                        {"base_url", sim->baseUrl()},
                        {"api_key", sim->key(venue)},
                        {"interval", "200ms"},
                        {"start_from", kStartFrom},
                        {"page_size", "50"},
                        {"timeout", "2s"},
                        {"rate_limit", "false"}},
                       "");
    return out;
  }
  // Each host's requests say which host sent them (X-Ferry-Host), for the test alone.
  std::string restSink(const std::string& h) const {
    return section("sink.rest",
                   {{"plugin", "sink_rest_forwarder"},
                    {"url", receiver_.url()},
                    {"batch_delay", "100ms"},
                    {"timeout", "5s"},
                    {"headers", "X-Ferry-Host: " + h}},
                   "");
  }
  // The config of every host: config_ with host_id h1 (the commands use it), h2.ini, h3.ini.
  void writeHostConfigs(const std::string& lease_time) {
    host_extra_ = "lease_time = " + lease_time + "\n";
    const std::string body = sources() + csvSink() + sqlSink();
    for (const char* h : {"h1", "h2", "h3"}) {
      admin_ports_[h] = freePort();
      writeFile(configOf(h), hostConfig() + "host_id = " + schema_ + "-" + h +
                                 "\nadmin_listen = 127.0.0.1:" +
                                 std::to_string(admin_ports_[h]) + "\n" + body + restSink(h));
    }
  }
  // The instances host `h`'s /healthz reports (empty when it does not answer).
  std::set<std::string> healthzInstances(const std::string& h) {
    std::set<std::string> out;
    auto a = httpGet(admin_ports_.at(h), "/healthz");
    if (a.status != 200 && a.status != 503) return out;
    auto list = parseObject(a.body)->getArray("instances");
    for (size_t i = 0; i < list->size(); ++i)
      out.insert(list->getObject(static_cast<unsigned>(i))->getValue<std::string>("name"));
    return out;
  }
  std::set<std::string> ranBy(const std::map<std::string, std::string>& owners,
                              const std::string& h) {
    std::set<std::string> out;
    for (const auto& [name, host] : owners)
      if (host == hostId(h)) out.insert(name);
    return out;
  }
  std::string configOf(const std::string& h) const {
    return h == "h1" ? config_ : dir_.file(h + ".ini");
  }
  std::string hostId(const std::string& h) const { return schema_ + "-" + h; }
  std::unique_ptr<FerryProcess> startHost(const std::string& h) {
    return std::make_unique<FerryProcess>(std::vector<std::string>{"run", "--config", configOf(h)},
                                          dir_.path());
  }

  // instance -> the host_id running it ("" when none), from `ferry status --json`.
  std::map<std::string, std::string> owners() {
    std::map<std::string, std::string> out;
    auto st = tryStatus();
    if (st.isNull()) return out;
    for (const char* list : {"sources", "sinks"}) {
      auto a = st->getArray(list);
      for (size_t i = 0; i < a->size(); ++i) {
        auto o = a->getObject(static_cast<unsigned>(i));
        out[str(o, "name")] = o->isNull("host") ? "" : o->getValue<std::string>("host");
      }
    }
    return out;
  }
  std::set<std::string> hostsRunning(const std::map<std::string, std::string>& owners) {
    std::set<std::string> out;
    for (const auto& [name, host] : owners)
      if (!host.empty()) out.insert(host);
    return out;
  }
  bool everyInstanceRun(const std::map<std::string, std::string>& o) {
    return o.size() == 7 && std::all_of(o.begin(), o.end(), [](const auto& e) {
             return !e.second.empty();
           });
  }

  // Every source's cursor at its simulator's newest order, every sink at the last sequence.
  bool caughtUp(const std::map<std::string, Sim::Order>& a,
                const std::map<std::string, Sim::Order>& b) {
    auto st = tryStatus();
    if (st.isNull()) return false;
    for (const auto& [prefix, state] : {std::pair{"a", &a}, std::pair{"b", &b}})
      for (const char* venue : {"v1", "v2"}) {
        std::string newest;
        for (const auto& [id, o] : ofVenue(*state, venue)) newest = std::max(newest, o.updated_at);
        auto src = instance(st, "sources", std::string(prefix) + venue);
        if (src.isNull() || src->isNull("cursor") ||
            src->getObject("cursor")->getValue<std::string>("since") != newest)
          return false;
      }
    const int64_t last = num(st, "last_sequence");
    for (const char* sink : {"erp", "sql", "rest"})
      if (num(instance(st, "sinks", sink), "offset") != last) return false;
    return true;
  }

  // The REST receiver: every order's current version arrived; the first arrival of each event
  // (a redelivery after a move repeats events, with their Idempotency-Key) is in per-key order.
  void expectRestMatchesState(const std::map<std::string, Sim::Order>& state,
                              const std::string& what) {
    std::set<std::string> seen_ids;
    std::map<std::string, std::pair<std::string, int64_t>> last_of_key;  // (version, sequence)
    int out_of_order = 0;
    std::string example;
    for (const auto& r : receiver_.requests()) {
      auto e = parseObject(r.body);
      const std::string id = e->getValue<std::string>("id");
      if (!seen_ids.insert(id).second) continue;  // a redelivery: deduplicated on the key
      const std::string key = e->getValue<std::string>("key");
      const std::string version = e->getValue<std::string>("version");
      const int64_t sequence = e->getValue<int64_t>("sequence");
      auto it = last_of_key.find(key);
      if (it != last_of_key.end() &&
          (version <= it->second.first || sequence <= it->second.second)) {
        if (++out_of_order <= 3)
          example += " " + key + ": " + version + " (#" + std::to_string(sequence) + ") after " +
                     it->second.first + " (#" + std::to_string(it->second.second) + ");";
      }
      last_of_key[key] = {version, sequence};
    }
    EXPECT_EQ(out_of_order, 0) << what << ": per-key order broken at the receiver:" << example;
    int missing = 0, stale = 0;
    for (const auto& [id, o] : state) {
      auto it = last_of_key.find(id);
      if (it == last_of_key.end()) ++missing;
      else if (it->second.first != o.updated_at) ++stale;
    }
    EXPECT_EQ(missing, 0) << what << ": orders the receiver never got";
    EXPECT_EQ(stale, 0) << what << ": orders whose newest version did not arrive";
  }

  void expectEverySinkMatches(const std::map<std::string, Sim::Order>& state,
                              const std::string& what) {
    expectCsvMatchesState(state, what);
    expectSqlMatchesState(state, what);
    expectRestMatchesState(state, what);
    EXPECT_EQ(psql("SELECT count(*) FROM (SELECT source, key, version FROM events GROUP BY "
                   "source, key, version HAVING count(*) > 1) d"),
              "0\n")
        << what << ": an event journalled twice";
  }

  std::unique_ptr<Sim> sim2_;
  Receiver receiver_;
  std::map<std::string, uint16_t> admin_ports_;
};

// Three hosts share the work and survive kill -9, restarts and a host frozen past its lease: the
// sources and sinks are spread over the hosts; a killed host's work moves to the others after
// lease_time (or back to it when it restarts first); the frozen host, once continued, finds its
// leases taken over, says so, and writes nothing more for them. After a quiet period every sink
// holds every order's current version: none missing or stale, no SQL row twice, per-key order at
// the REST receiver.
TEST_F(SeveralHostsTest, ThreeHostsShareTheWorkAndSurviveKillsAndAFrozenHost) {
  startSims(150, 15);
  writeHostConfigs("3s");
  std::map<std::string, std::unique_ptr<FerryProcess>> hosts;
  for (const char* h : {"h1", "h2", "h3"}) hosts[h] = startHost(h);
  auto errors = [&] {
    std::string out;
    for (auto& [h, p] : hosts) out += "\n--- " + h + ":\n" + p->err().substr(0, 6000);
    return out;
  };

  // Spread: every instance runs, on all three hosts (5 groups: 2, 2 and 1).
  std::map<std::string, std::string> o;
  ASSERT_TRUE(waitUntil([&] {
    o = owners();
    return everyInstanceRun(o) && hostsRunning(o).size() == 3;
  }, 30s)) << "not spread over the hosts" << errors();
  EXPECT_EQ(o["av1"], o["av2"]) << "the venues of one API host share one budget, on one host";
  EXPECT_EQ(o["bv1"], o["bv2"]);
  sim_->fault("500", 3);
  sim2_->fault("drop", 2);

  // kill -9 the host of the SQL sink and restart it at once: it takes its own leases back.
  auto hostOf = [&](const std::string& instance) {
    const std::string id = owners()[instance];
    for (const char* h : {"h1", "h2", "h3"})
      if (hostId(h) == id) return std::string(h);
    return std::string();
  };
  std::string victim = hostOf("sql");
  ASSERT_FALSE(victim.empty());
  hosts[victim]->kill9();
  hosts[victim] = startHost(victim);
  std::this_thread::sleep_for(1500ms);

  // kill -9 the host of budget a for longer than lease_time: the others take its groups over.
  victim = hostOf("av1");
  ASSERT_FALSE(victim.empty());
  hosts[victim]->kill9();
  ASSERT_TRUE(waitUntil([&] {
    o = owners();
    return everyInstanceRun(o) && hostsRunning(o).count(hostId(victim)) == 0;
  }, 20s)) << "the killed host's work did not move" << errors();
  hosts[victim] = startHost(victim);
  ASSERT_TRUE(waitUntil([&] { return hostsRunning(owners()).size() == 3; }, 20s))
      << "the restarted host got no share back" << errors();

  // Freeze the host of the REST sink past its lease while its request is at the receiver (held
  // there 1.5 s), then continue it.
  const std::string frozen = hostOf("rest");
  ASSERT_FALSE(frozen.empty());
  std::set<std::string> frozen_ran;
  for (const auto& [name, host] : owners())
    if (host == hostId(frozen)) frozen_ran.insert(name);
  std::atomic<bool> hold{true}, held{false};
  receiver_.setScript([&](const Request& r, size_t) {
    Answer a;
    if (hold.load() && r.header("x-ferry-host") == frozen) {
      a.sleep_ms = 1500;
      held = true;
    }
    return a;
  });
  ASSERT_TRUE(waitUntil([&] { return held.load(); }, 20s)) << "no request to hold" << errors();
  hosts[frozen]->signal(SIGSTOP);
  hold = false;
  const bool moved = waitUntil([&] {
    o = owners();
    return everyInstanceRun(o) && hostsRunning(o).count(hostId(frozen)) == 0;
  }, 20s);
  const size_t resumed_at = receiver_.requests().size();
  hosts[frozen]->signal(SIGCONT);
  ASSERT_TRUE(moved) << "the frozen host's work did not move" << errors();
  // Continued, it finds every lease it held taken over, and stops those instances. The offset of
  // the request it had in flight is refused by the fencing token, and it sends nothing more.
  ASSERT_TRUE(waitUntil([&] {
    const std::string err = hosts[frozen]->err();
    return std::all_of(frozen_ran.begin(), frozen_ran.end(), [&](const std::string& name) {
      return err.find("stops and writes nothing more for") != std::string::npos &&
             err.find(name) != std::string::npos;
    });
  }, 20s)) << errors();
  const auto after_resume = receiver_.requests();
  const std::string frozen_log = hosts[frozen]->err();
  EXPECT_NE(frozen_log.find("lease of sink rest lost: "), std::string::npos) << errors();
  // "…: writing for 'rest': refused: the lease of group sink rest is now held by <h> (token 3,
  // this host's was 2)…", or "…: refused: host <h> holds no lease for it" once the host knew.
  EXPECT_NE(frozen_log.find("writing for 'rest': refused: "), std::string::npos) << errors();
  int sent_after_resume = 0;
  for (size_t i = resumed_at; i < after_resume.size(); ++i)
    sent_after_resume += after_resume[i].header("x-ferry-host") == frozen;
  EXPECT_EQ(sent_after_resume, 0) << "the frozen host wrote to the receiver after it was continued";
  EXPECT_TRUE(hosts[frozen]->running()) << "a refused host goes on (and may win leases again)";

  // Quiet: no more live changes, a last change in each simulator, and every host running.
  sim_->control("POST", "/_sim/live", "{\"rate\":0}");
  sim2_->control("POST", "/_sim/live", "{\"rate\":0}");
  sim_->change(3);
  sim2_->change(3);
  const auto a = sim_->state();
  const auto b = sim2_->state();
  ASSERT_TRUE(waitUntil([&] { return caughtUp(a, b); }, 60s)) << "not caught up" << errors();
  EXPECT_GT(
      count(sim_->requests(), "changes_applied") + count(sim2_->requests(), "changes_applied"), 20)
      << "precondition: orders changed while the hosts ran";
  for (auto& [h, p] : hosts) p->signal(SIGTERM);
  for (auto& [h, p] : hosts) EXPECT_EQ(p->wait(), 0) << h << errors();

  std::map<std::string, Sim::Order> both = a;
  both.insert(b.begin(), b.end());
  ASSERT_EQ(both.size(), a.size() + b.size()) << "order ids of the two simulators overlap";
  expectEverySinkMatches(both, "after kills and a frozen host");
}

// A host stopped with SIGTERM hands its leases over at once: the other host runs everything
// within seconds (the lease time is 30 s: no expiry explains it), and nothing is delivered twice.
TEST_F(SeveralHostsTest, AGracefulStopHandsTheWorkOverWithinSecondsAndNothingIsRepeated) {
  startSims(100, 0);
  writeHostConfigs("30s");
  auto h1 = startHost("h1");
  auto h2 = startHost("h2");
  std::map<std::string, std::string> o;
  ASSERT_TRUE(waitUntil([&] {
    o = owners();
    return everyInstanceRun(o) && hostsRunning(o).size() == 2;
  }, 30s)) << h1->err() << h2->err();
  const auto a1 = sim_->state();
  const auto b1 = sim2_->state();
  ASSERT_TRUE(waitUntil([&] { return caughtUp(a1, b1); }, 60s)) << h1->err() << h2->err();

  // Each host's /healthz reports the instances it runs, and only those.
  o = owners();
  ASSERT_TRUE(waitUntil([&] {
    return healthzInstances("h1") == ranBy(o, "h1") && healthzInstances("h2") == ranBy(o, "h2");
  }, 10s)) << "h1 runs " << ranBy(o, "h1").size() << ", reports " << healthzInstances("h1").size();
  EXPECT_FALSE(ranBy(o, "h1").empty());
  EXPECT_FALSE(ranBy(o, "h2").empty());
  // `ferry status` names the live hosts, and for each instance its host and lease.
  RunResult text = ferry({"status", "--config", config_}, 60s);
  EXPECT_EQ(text.exit_code, 0) << describe(text);
  EXPECT_NE(text.out.find("hosts: " + hostId("h1") + " (live) " + hostId("h2") + " (live)"),
            std::string::npos)
      << text.out;
  EXPECT_NE(text.out.find("    run by host " + o["rest"] + ", lease renewed until "),
            std::string::npos)
      << text.out;

  const auto stopped_at = std::chrono::steady_clock::now();
  h2->signal(SIGTERM);
  ASSERT_TRUE(waitUntil([&] {
    o = owners();
    return everyInstanceRun(o) && hostsRunning(o) == std::set<std::string>{hostId("h1")};
  }, 20s)) << h1->err() << h2->err();
  const auto moved_after = std::chrono::duration_cast<std::chrono::milliseconds>(
      std::chrono::steady_clock::now() - stopped_at);
  EXPECT_LT(moved_after.count(), 5000) << "the work took " << moved_after.count() << " ms to move";
  EXPECT_EQ(h2->wait(), 0) << h2->err();
  EXPECT_NE(h2->err().find(" released"), std::string::npos) << h2->err();
  EXPECT_TRUE(waitUntil([&] { return healthzInstances("h1").size() == 7; }, 10s))
      << "h1's /healthz after the move: " << healthzInstances("h1").size() << " instance(s)";
  const std::string metrics = httpGet(admin_ports_.at("h1"), "/metrics").body;
  for (const char* series :
       {"ferry_lease_held{sink=\"rest\"} 1", "ferry_lease_held{sink=\"erp\"} 1",
        "ferry_lease_held{source=\"av1\"} 1", "# TYPE ferry_lease_held gauge"})
    EXPECT_NE(metrics.find(series), std::string::npos) << series << " in h1's /metrics";

  // New changes after the move are delivered by h1 alone.
  sim_->change(5);
  sim2_->change(5);
  const auto a2 = sim_->state();
  const auto b2 = sim2_->state();
  ASSERT_TRUE(waitUntil([&] { return caughtUp(a2, b2); }, 60s)) << h1->err();
  h1->signal(SIGTERM);
  EXPECT_EQ(h1->wait(), 0) << h1->err();

  std::map<std::string, Sim::Order> both = a2;
  both.insert(b2.begin(), b2.end());
  expectEverySinkMatches(both, "after the hand-over");
  // Nothing repeated: every event reached the REST receiver once, and the CSV folder once.
  std::map<std::string, int> arrivals;
  for (const auto& r : receiver_.requests()) ++arrivals[r.header("idempotency-key")];
  int repeated = 0;
  for (const auto& [key, n] : arrivals) repeated += n > 1;
  EXPECT_EQ(repeated, 0) << "events sent twice to the REST receiver";
  EXPECT_EQ(static_cast<int64_t>(arrivals.size()), std::stoll(psql("SELECT count(*) FROM events")));
  EXPECT_TRUE(csv().duplicates().empty()) << "a CSV row written twice";
}

// A host runs a thousand venues, each polling now and then: between two polls an instance keeps
// no buffer sized for the last page it read. A page of about 1 MiB, read after a small one,
// leaves the heap as it found it.
TEST(DuckHubMemory, APollKeepsNoBufferOfItsPageAfterwards) {
  auto item = [](int i, size_t padding) {
    return R"({"id":"o)" + std::to_string(i) +
           R"(","updatedAt":"2026-07-05T10:00:00.000Z","note":")" + std::string(padding, 'x') +
           R"("})";
  };
  std::string page = item(0, 10);
  ferry::testing::FakeHost host;
  host.onHttp([&](const ferry::testing::HttpCall&) {
    return ferry::testing::CannedResponse::json(200, R"({"items":[)" + page + "]}");
  });
  auto source = host.create(ferry::testing::Plugin::load(DUCKHUB_PLUGIN),
                            {{"base_url", "http://duckhub.test/v1"},
                             {"api_key", "dk_test_0123456789abcdefghijABCDEFGHIJKL"},
                             {"rate_limit", "false"}});
  ASSERT_EQ(source.fetch("2026-07-05T00:00:00.000Z").status, FERRY_FETCH_OK);
  std::string big;
  for (int i = 1; i <= 100; ++i) big += (i > 1 ? "," : "") + item(i, 10000);
  const size_t kept = heapKeptAfter(page, big, [&] {
    auto got = source.fetch("2026-07-05T00:00:00.000Z");
    ASSERT_EQ(got.status, FERRY_FETCH_OK) << got.message;
    EXPECT_EQ(got.items.size(), 100u);
  });
  EXPECT_LT(kept, 64u * 1024) << "the instance keeps " << kept << " bytes after a page of "
                              << big.size();
}

// Retention is applied by one host, which need not run every source. A source's delivered hook
// that waits on another host (here its log's folder is missing, so the hook answers RETRY) keeps
// the source's events, although every sink has passed them. Three hosts, one source and one sink
// (two lease groups): after h1, which holds the sink and with it the retention, is killed, h3
// takes both over without running the source, which h2 runs.
TEST_F(SeveralHostsTest, RetentionOnAHostNotRunningASourceKeepsWhatItsDeliveredHookStillNeeds) {
  fs::copy_file(testPluginDir() + "/test_source.so", plugins_ + "/test_source.so");
  std::string data;
  for (int i = 0; i < 20; ++i) data += itemLine("k" + std::to_string(i), versionAt(i * 1000));
  writeFile(dir_.file("data.jsonl"), data);
  const std::string hook_dir = dir_.file("hook");
  host_extra_ = "lease_time = 3s\nretention = 0s\n";
  for (const char* h : {"h1", "h2", "h3"})
    writeFile(configOf(h),
              hostConfig() + "host_id = " + hostId(h) + "\n\n" +
                  sourceSection("src", dir_.file("data.jsonl"),
                                "delivered_log = " + hook_dir + "/delivered.log\n") +
                  sinkSection("out", dir_.file("out.jsonl")));
  std::map<std::string, std::unique_ptr<FerryProcess>> hosts;
  auto errors = [&] {
    std::string out;
    for (auto& [h, p] : hosts) out += "\n--- " + h + ":\n" + p->err().substr(0, 6000);
    return out;
  };

  // h1 alone: every event journalled and written by the sink; the hook waits.
  hosts["h1"] = startHost("h1");
  ASSERT_TRUE(waitUntil([&] {
    auto st = tryStatus();
    return !st.isNull() && num(st, "last_sequence") == 20 &&
           num(instance(st, "sinks", "out"), "offset") == 20;
  }, 30s)) << errors();
  // h2 joins and is handed the source (h1 gives up its last group by name); then h3 joins.
  hosts["h2"] = startHost("h2");
  ASSERT_TRUE(waitUntil([&] {
    auto o = owners();
    return o["src"] == hostId("h2") && o["out"] == hostId("h1");
  }, 20s)) << errors();
  hosts["h3"] = startHost("h3");
  ASSERT_TRUE(waitUntil([&] {
    auto st = tryStatus();
    if (st.isNull() || !st->has("hosts")) return false;
    int live = 0;
    auto list = st->getArray("hosts");
    for (size_t i = 0; i < list->size(); ++i)
      live += list->getObject(static_cast<unsigned>(i))->getValue<bool>("live") ? 1 : 0;
    return live == 3;
  }, 20s)) << errors();

  // h1 killed: after the lease time h3 runs the sink and applies the retention at once.
  hosts["h1"]->kill9();
  ASSERT_TRUE(waitUntil([&] { return owners()["out"] == hostId("h3"); }, 20s)) << errors();
  EXPECT_EQ(owners()["src"], hostId("h2"));
  std::this_thread::sleep_for(1500ms);
  EXPECT_EQ(journalled(), 20) << "retention removed events the source's hook still needs"
                              << errors();

  // The hook can write again: it is called for every event.
  fs::create_directories(hook_dir);
  std::set<std::string> hooked;
  EXPECT_TRUE(waitUntil([&] {
    std::istringstream in(readFile(hook_dir + "/delivered.log"));
    for (std::string line; std::getline(in, line);) hooked.insert(line);
    return hooked.size() == 20;
  }, 20s)) << hooked.size() << " of 20 events reached the delivered hook" << errors();
}

}  // namespace
}  // namespace ferry::it
