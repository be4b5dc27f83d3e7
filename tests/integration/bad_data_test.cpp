// End to end, data a remote should never send, against the real DuckHub source and a
// DuckHub-like server on 127.0.0.1 whose items the test writes by hand:
//   - items the source cannot read (an id of the wrong type, no change time, not an object, a
//     key holding NUL, a version that is no instant): after a bounded number of fetches each one
//     is set aside as a source dead letter, the source delivers the rest and goes on, and once
//     the cause is fixed a replay reads them again;
//   - an order stamped far in the future: delivered with a warning, and the cursor does not
//     follow it past this host's clock.
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/URI.h>
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <mutex>
#include <set>

#include "FerryTest.h"

namespace ferry::it {
namespace {

namespace fs = std::filesystem;

// GET /v1/orders?updatedSince=&limit=&page= over a list of raw items the test writes, each
// placed at an instant of the server's own (its text may say anything): ascending, inclusive.
class HandWrittenDuckHub {
 public:
  HandWrittenDuckHub()
      : server_(new Factory(*this), Poco::Net::ServerSocket(Poco::Net::SocketAddress("127.0.0.1", 0)),
                new Poco::Net::HTTPServerParams) {
    server_.start();
  }
  ~HandWrittenDuckHub() { server_.stopAll(true); }

  uint16_t port() const { return server_.port(); }
  // Places `raw` at `at` (UTC text "YYYY-MM-DDThh:mm:ss.sssZ"), replacing what was there.
  void put(const std::string& at, const std::string& raw) {
    std::lock_guard lock(mutex_);
    items_[at] = raw;
  }
  int pageRequests() const { return page_requests_.load(); }

 private:
  struct Factory : Poco::Net::HTTPRequestHandlerFactory {
    explicit Factory(HandWrittenDuckHub& owner) : owner(owner) {}
    Poco::Net::HTTPRequestHandler* createRequestHandler(
        const Poco::Net::HTTPServerRequest&) override {
      return new Handler(owner);
    }
    HandWrittenDuckHub& owner;
  };
  struct Handler : Poco::Net::HTTPRequestHandler {
    explicit Handler(HandWrittenDuckHub& owner) : owner(owner) {}
    void handleRequest(Poco::Net::HTTPServerRequest& request,
                       Poco::Net::HTTPServerResponse& response) override {
      Poco::URI uri(request.getURI());
      std::string since;
      int limit = 20, page = 1;
      for (const auto& [k, v] : uri.getQueryParameters()) {
        if (k == "updatedSince") since = v;
        if (k == "limit") limit = std::stoi(v);
        if (k == "page") page = std::stoi(v);
      }
      std::string body;
      if (uri.getPath() != "/v1/orders") {
        response.setStatus(Poco::Net::HTTPResponse::HTTP_NOT_FOUND);
        body = "{\"statusCode\":404,\"message\":\"Not found\"}";
      } else {
        ++owner.page_requests_;
        std::vector<std::string> matching;
        {
          std::lock_guard lock(owner.mutex_);
          for (auto it = owner.items_.lower_bound(since); it != owner.items_.end(); ++it)
            matching.push_back(it->second);
        }
        body = "{\"items\":[";
        const size_t first = static_cast<size_t>((page - 1) * limit);
        for (size_t i = first; i < matching.size() && i < first + limit; ++i)
          body += (i > first ? "," : "") + matching[i];
        body += "],\"total\":" + std::to_string(matching.size()) + ",\"totalPages\":" +
                std::to_string((matching.size() + limit - 1) / limit) + "}";
      }
      response.setContentType("application/json");
      response.setContentLength(static_cast<std::streamsize>(body.size()));
      response.send() << body;
    }
    HandWrittenDuckHub& owner;
  };

  std::mutex mutex_;
  std::map<std::string, std::string> items_;
  std::atomic<int> page_requests_{0};
  Poco::Net::HTTPServer server_;
};

std::string at(int second) {
  return "2026-07-05T10:00:0" + std::to_string(second) + ".000Z";
}
std::string order(const std::string& id, int second) {
  return "{\"id\":\"" + id + "\",\"orderNumber\":" + std::to_string(second) +
         ",\"status\":\"new\",\"updatedAt\":\"" + at(second) + "\"}";
}

class BadDataTest : public FerryTest {
 protected:
  void SetUp() override {
    const std::string plugins = dir_.file("plugins");
    fs::create_directories(plugins);
    fs::copy_file(DUCKHUB_PLUGIN, plugins + "/source_duckhub_orders.so");
    fs::copy_file(testPluginDir() + "/test_sink.so", plugins + "/test_sink.so");
    std::string host = hostSection(dir_);
    host = host.replace(host.find("plugin_dir = "), host.find('\n', host.find("plugin_dir = ")) -
                                                        host.find("plugin_dir = "),
                        "plugin_dir = " + plugins);
    writeFile(config_, host + source() + sinkSection("out", out_));
  }
  std::string source() const {
    return section("source.venue",
                   {{"plugin", "source_duckhub_orders"},
                    {"base_url", "http://127.0.0.1:" + std::to_string(remote_.port()) + "/v1"},
                    {"api_key", "dk_test_" + std::string(32, 'A')},
                    {"interval", "200ms"},
                    {"lookback", "0s"},
                    {"set_aside_after", "3"},
                    {"start_from", "2026-07-05T00:00:00Z"},
                    {"rate_limit", "false"}},
                   "");
  }
  // Good orders around every kind of unreadable item.
  void serveBadItems() {
    remote_.put(at(1), order("o1", 1));
    remote_.put(at(2), "{\"id\":42,\"updatedAt\":\"" + at(2) + "\"}");  // id of the wrong type
    remote_.put(at(3), "{\"id\":\"o3\\u0000x\",\"updatedAt\":\"" + at(3) + "\"}");  // NUL in key
    remote_.put(at(4), "{\"id\":\"o4\",\"status\":\"new\"}");  // no change time
    remote_.put(at(5), "\"just a string\"");                   // not an object
    remote_.put(at(6), "{\"id\":\"o6\",\"updatedAt\":\"yesterday\"}");  // no instant
    remote_.put(at(7), order("o7", 7));
  }
  // The source dead letters of `ferry dead-letters list --json`, by reason text.
  std::vector<Poco::JSON::Object::Ptr> sourceLetters() {
    std::vector<Poco::JSON::Object::Ptr> out;
    auto all = deadLetters();
    if (all.isNull()) return out;
    for (size_t i = 0; i < all->size(); ++i) {
      auto o = all->getObject(static_cast<unsigned>(i));
      if (str(o, "kind") == "source") out.push_back(o);
    }
    return out;
  }
  static std::string reasons(const std::vector<Poco::JSON::Object::Ptr>& letters) {
    std::string out;
    for (const auto& l : letters) out += str(l, "id") + ": " + str(l, "reason") + "\n";
    return out;
  }

  HandWrittenDuckHub remote_;
  std::string out_ = dir_.file("out.jsonl");
};

// Five unreadable items among good ones: `run --once` sets each aside after set_aside_after
// fetches, delivers the good orders, and exits 2 for the new dead letters, which list each
// item's reason and raw text; the key holding NUL is never cut into another order's key.
TEST_F(BadDataTest, UnreadableItemsAreSetAsideAfterBoundedTriesAndTheRestIsDelivered) {
  serveBadItems();
  RunResult r = runOnce();
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  EXPECT_NE(r.err.find("new dead letter(s)"), std::string::npos) << r.err;

  auto counts = countKeys(readSinkLines(out_));
  EXPECT_EQ(counts, (std::map<std::string, int>{{"o1", 1}, {"o7", 1}}))
      << "only the readable orders are delivered, each once";
  // Three fetches of the one page before the items were set aside, then nothing more.
  EXPECT_EQ(remote_.pageRequests(), 3);

  auto letters = sourceLetters();
  ASSERT_EQ(letters.size(), 5u) << reasons(letters);
  const std::string text = reasons(letters);
  for (const char* why : {"id is 42, not a string", "control character in its key",
                          "no updatedAt", "not an object", "'yesterday', which is not an ISO"})
    EXPECT_NE(text.find(why), std::string::npos) << "missing \"" << why << "\" in:\n" << text;
  for (const auto& l : letters) {
    EXPECT_EQ(str(l, "source"), "venue");
    EXPECT_EQ(str(l, "id").front(), 's');
    EXPECT_FALSE(str(l, "raw").empty());
  }
  auto nul = std::find_if(letters.begin(), letters.end(),
                          [](const auto& l) { return str(l, "key").rfind("o3", 0) == 0; });
  ASSERT_NE(nul, letters.end()) << text;
  EXPECT_NE(str(*nul, "key"), "o3") << "the key was cut at the NUL";

  // The text as received, with control characters escaped.
  RunResult show = ferry({"dead-letters", "show", str(letters[3], "id"), "--config", config_});
  EXPECT_EQ(show.exit_code, 0) << describe(show);
  EXPECT_NE(show.out.find("\"just a string\""), std::string::npos) << show.out;
  RunResult list = ferry({"dead-letters", "list", "--source", "venue", "--config", config_});
  EXPECT_NE(list.out.find("#s1  source venue"), std::string::npos) << list.out;
  auto venue = instance(status(), "sources", "venue");
  ASSERT_FALSE(venue.isNull());
  EXPECT_EQ(num(venue, "dead_letters"), 5);

  // A second run reads nothing new: the items already set aside are skipped at once, not
  // fetched three more times, and no dead letter is added.
  remote_.put(at(8), order("o8", 8));
  const int before = remote_.pageRequests();
  r = runOnce();
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(sourceLetters().size(), 5u);
  EXPECT_EQ(countKeys(readSinkLines(out_)),
            (std::map<std::string, int>{{"o1", 1}, {"o7", 1}, {"o8", 1}}));
  EXPECT_LE(remote_.pageRequests() - before, 2);
}

// The only change of a poll is an unreadable item (nothing to journal, the cursor unmoved): it
// is still kept, not lost with an idle poll that writes nothing.
TEST_F(BadDataTest, AnUnreadableItemAloneIsKept) {
  remote_.put(at(1), order("o1", 1));
  RunResult r = runOnce();
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  remote_.put(at(2), "{\"id\":42,\"updatedAt\":\"" + at(2) + "\"}");
  r = runOnce();
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  auto letters = sourceLetters();
  ASSERT_EQ(letters.size(), 1u) << reasons(letters);
  EXPECT_NE(str(letters[0], "reason").find("id is 42"), std::string::npos) << reasons(letters);
}

// Once the cause is fixed at the remote (the same items, now readable, at the same instants),
// `dead-letters replay --source` reads them again: they are delivered, what is still unreadable
// is set aside again, and nothing delivered before is delivered twice.
TEST_F(BadDataTest, ReplayReadsTheItemsAgainOnceFixed) {
  serveBadItems();
  RunResult r = runOnce();
  ASSERT_EQ(r.exit_code, 2) << describe(r);
  ASSERT_EQ(sourceLetters().size(), 5u);

  remote_.put(at(2), order("o2", 2));
  remote_.put(at(4), order("o4", 4));
  RunResult replay = ferry({"dead-letters", "replay", "--source", "venue", "--config", config_});
  EXPECT_EQ(replay.exit_code, 0) << describe(replay);
  EXPECT_NE(replay.out.find("5 dead letter(s) of source venue replayed"), std::string::npos)
      << replay.out;
  EXPECT_TRUE(sourceLetters().empty());

  r = runOnce();
  EXPECT_EQ(r.exit_code, 2) << "the three still unreadable are set aside again: " << describe(r);
  EXPECT_EQ(countKeys(readSinkLines(out_)),
            (std::map<std::string, int>{{"o1", 1}, {"o2", 1}, {"o4", 1}, {"o7", 1}}));
  auto letters = sourceLetters();
  EXPECT_EQ(letters.size(), 3u) << reasons(letters);

  // Dropped, they are gone for good (and not read again).
  std::vector<std::string> drop{"dead-letters", "drop"};
  for (const auto& l : letters) drop.push_back(str(l, "id"));
  drop.insert(drop.end(), {"--config", config_});
  RunResult dropped = ferry(drop);
  EXPECT_EQ(dropped.exit_code, 0) << describe(dropped);
  EXPECT_TRUE(sourceLetters().empty());
}

// While ferry runs, an operator learns of the items set aside from /metrics (a counter per
// source, present at 0 from the start), `ferry status` and the log; the source keeps polling.
TEST_F(BadDataTest, MetricsStatusAndLogCountTheItemsSetAside) {
  const uint16_t port = freePort();
  std::string config = readFile(config_);
  config.replace(config.find("\n\n"), 2,
                 "\nadmin_listen = 127.0.0.1:" + std::to_string(port) + "\n\n");
  writeFile(config_, config);
  remote_.put(at(1), order("o1", 1));
  FerryProcess running({"run", "--config", config_}, dir_.path());
  HttpAnswer metrics;
  ASSERT_TRUE(waitUntil([&] {
    metrics = httpGet(port, "/metrics");
    return metrics.body.find("ferry_source_set_aside_total{source=\"venue\"} 0") !=
           std::string::npos;
  })) << metrics.body << running.err();
  EXPECT_NE(metrics.body.find("# HELP ferry_source_set_aside_total "), std::string::npos);

  serveBadItems();
  ASSERT_TRUE(waitUntil([&] {
    metrics = httpGet(port, "/metrics");
    return metrics.body.find("ferry_source_set_aside_total{source=\"venue\"} 5") !=
           std::string::npos;
  })) << metrics.body << running.err();
  EXPECT_NE(running.err().find("source venue: 5 unreadable item(s) set aside as dead letters"),
            std::string::npos)
      << running.err();
  RunResult text = ferry({"status", "--config", config_});
  EXPECT_NE(text.out.find("5 item(s) set aside (ferry dead-letters list)"), std::string::npos)
      << text.out;
  ASSERT_TRUE(waitUntil([&] { return countKeys(readSinkLines(out_)).count("o7") == 1; }))
      << running.err();
  // The source goes on: a later order still arrives.
  remote_.put(at(8), order("o8", 8));
  EXPECT_TRUE(waitUntil([&] { return countKeys(readSinkLines(out_)).count("o8") == 1; }))
      << running.err();
  EXPECT_EQ(httpGet(port, "/healthz").status, 200);
  running.signal(SIGTERM);
  EXPECT_EQ(running.wait(60s), 0) << running.err();
}

// One order stamped 2200-01-01 (a remote's bad clock, a typo): delivered, with a warning in the
// log, the status and a metric naming it, but the cursor stays at this host's clock plus
// clock_skew, so a change made afterwards (stamped now, before 2200) is still fetched.
TEST_F(BadDataTest, AnOrderStampedInTheFarFutureIsDeliveredButCannotPoisonTheCursor) {
  const uint16_t port = freePort();
  std::string config = readFile(config_);
  config.replace(config.find("\n\n"), 2,
                 "\nadmin_listen = 127.0.0.1:" + std::to_string(port) + "\n\n");
  writeFile(config_, config);
  remote_.put(at(1), order("o1", 1));
  remote_.put("2200-01-01T00:00:00.000Z",
              "{\"id\":\"o2\",\"status\":\"new\",\"updatedAt\":\"2200-01-01T00:00:00.000Z\"}");
  FerryProcess running({"run", "--config", config_}, dir_.path());
  ASSERT_TRUE(waitUntil([&] { return countKeys(readSinkLines(out_)).size() == 2; }))
      << running.err();
  const std::string warning =
      "1 item(s) stamped more than 1h (clock_skew) ahead of this host's clock, e.g. order 'o2' "
      "stamped 2200-01-01T00:00:00.000Z: delivered, but the cursor does not follow them";
  EXPECT_NE(running.err().find("source venue: " + warning), std::string::npos) << running.err();
  auto venue = waitForState("sources", "venue", "idle");
  ASSERT_FALSE(venue.isNull());
  EXPECT_NE(str(venue, "message").find(warning), std::string::npos) << str(venue, "message");
  EXPECT_EQ(str(venue->getObject("cursor"), "since"), at(1));
  const HttpAnswer metrics = httpGet(port, "/metrics");
  EXPECT_NE(metrics.body.find("ferry_source_future_items_total{source=\"venue\"} 1"),
            std::string::npos)
      << metrics.body;

  // A change made now is still found, and the order from 2200 is not delivered again.
  remote_.put(at(5), order("o3", 5));
  EXPECT_TRUE(waitUntil([&] { return countKeys(readSinkLines(out_)).count("o3") == 1; }))
      << running.err();
  running.signal(SIGTERM);
  EXPECT_EQ(running.wait(60s), 0) << running.err();
  EXPECT_EQ(countKeys(readSinkLines(out_)),
            (std::map<std::string, int>{{"o1", 1}, {"o2", 1}, {"o3", 1}}));
}

// An order nesting deeper than a DOM parser allows (3,000 levels in a field the source does not
// read) is read where its id and change time stand and delivered as received, not retried.
TEST_F(BadDataTest, AnItemNestedDeeperThanParsersAllowIsDeliveredAsReceived) {
  remote_.put(at(1), order("o1", 1));
  remote_.put(at(2), "{\"id\":\"o2\",\"updatedAt\":\"" + at(2) + "\",\"x\":" +
                         std::string(3000, '[') + std::string(3000, ']') + "}");
  remote_.put(at(3), order("o3", 3));
  RunResult r = runOnce();
  EXPECT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(countKeys(readSinkLines(out_)),
            (std::map<std::string, int>{{"o1", 1}, {"o2", 1}, {"o3", 1}}));
  EXPECT_TRUE(sourceLetters().empty());
}

}  // namespace
}  // namespace ferry::it
