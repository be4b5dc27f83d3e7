// End to end, what an operator watches: /healthz and /metrics of a running host (also against a
// remote that stops answering, and beside clients that hold the admin port), and the log lines
// as journald and a log shipper get them.
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/StreamSocket.h>
#include <signal.h>

#include <atomic>
#include <filesystem>
#include <map>
#include <mutex>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include "FerryTest.h"

namespace ferry::it {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Talking to the admin endpoint
// ---------------------------------------------------------------------------------------------

// The value of the sample `series` (name and labels exactly as exposed), or NaN when absent.
double sample(const std::string& metrics, const std::string& series) {
  std::istringstream lines(metrics);
  for (std::string line; std::getline(lines, line);)
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
  return std::nan("");
}

// The instance named `name` in a /healthz body.
Poco::JSON::Object::Ptr healthOf(const std::string& body, const std::string& name) {
  try {
    return findNamed(parseObject(body)->getArray("instances"), name);
  } catch (const std::exception&) {
    return {};
  }
}

double nowSeconds() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// ---------------------------------------------------------------------------------------------
// A misbehaving HTTP server on 127.0.0.1: answers every request as `mode` says at that moment.
// ---------------------------------------------------------------------------------------------

class MisbehavingServer {
 public:
  enum class Mode { kSilent, kUnavailable, kEmptyPage };

  MisbehavingServer() : socket_(Poco::Net::SocketAddress("127.0.0.1", 0)) {
    acceptor_ = std::thread([this] { acceptLoop(); });
  }
  ~MisbehavingServer() { stop(); }

  // Closes the listener and every connection (a silent one ends for the client).
  void stop() {
    if (stopped_.exchange(true)) return;
    acceptor_.join();
    for (auto& t : workers_) t.join();
  }
  uint16_t port() const { return socket_.address().port(); }
  void setMode(Mode mode) { mode_ = mode; }
  int requests() const { return requests_.load(); }

 private:
  void acceptLoop() {
    while (!stopped_.load()) {
      if (!socket_.poll(Poco::Timespan(0, 100000), Poco::Net::Socket::SELECT_READ)) continue;
      Poco::Net::StreamSocket client = socket_.acceptConnection();
      workers_.emplace_back([this, client]() mutable { serve(client); });
    }
    socket_.close();
  }

  void serve(Poco::Net::StreamSocket client) {
    try {
      while (!stopped_.load()) {
        // Read one request head.
        std::string head;
        char c;
        while (head.find("\r\n\r\n") == std::string::npos && !stopped_.load()) {
          if (!client.poll(Poco::Timespan(0, 100000), Poco::Net::Socket::SELECT_READ)) continue;
          if (client.receiveBytes(&c, 1) <= 0) return;
          head += c;
        }
        if (stopped_.load()) break;
        ++requests_;
        const Mode mode = mode_.load();
        if (mode == Mode::kSilent) {
          while (!stopped_.load()) std::this_thread::sleep_for(50ms);
          break;
        }
        const std::string body = mode == Mode::kUnavailable
                                     ? "{\"statusCode\":503,\"message\":\"down for maintenance\"}"
                                     : "{\"items\":[],\"total\":0,\"totalPages\":0}";
        const std::string answer =
            std::string(mode == Mode::kUnavailable ? "HTTP/1.1 503 Service Unavailable\r\n"
                                                   : "HTTP/1.1 200 OK\r\n") +
            "Content-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
            "\r\n\r\n" + body;
        client.sendBytes(answer.data(), static_cast<int>(answer.size()));
      }
    } catch (const Poco::Exception&) {
    }
    client.close();
  }

  Poco::Net::ServerSocket socket_;
  std::atomic<Mode> mode_{Mode::kEmptyPage};
  std::atomic<bool> stopped_{false};
  std::atomic<int> requests_{0};
  std::thread acceptor_;
  std::vector<std::thread> workers_;
};

class HealthTest : public FerryTest {
 protected:
  // [host] with the admin endpoint on a free port and `extra` host keys.
  std::string adminHost(const std::string& extra = "", const std::string& plugin_dir = "") {
    port_ = freePort();
    std::string host = hostSection(dir_);
    if (!plugin_dir.empty())
      host = std::regex_replace(host, std::regex("plugin_dir = [^\n]*"),
                                "plugin_dir = " + plugin_dir);
    // hostSection ends with a blank line: the keys go before it.
    return host.substr(0, host.size() - 1) + "admin_listen = 127.0.0.1:" +
           std::to_string(port_) + "\n" + extra + "\n";
  }

  // A plugin folder with the real DuckHub source and the test sink.
  std::string duckHubPlugins() {
    const std::string dir = dir_.file("plugins");
    fs::create_directories(dir);
    fs::copy_file(DUCKHUB_PLUGIN, dir + "/source_duckhub_orders.so");
    fs::copy_file(testPluginDir() + "/test_sink.so", dir + "/test_sink.so");
    return dir;
  }
  static std::string duckHubSource(const std::string& name, uint16_t port,
                                   const std::string& extra = "") {
    return section("source." + name,
                   {{"plugin", "source_duckhub_orders"},
                    {"base_url", "http://127.0.0.1:" + std::to_string(port) + "/v1"},
                    {"api_key", "dk_test_" + std::string(32, 'A')},
                    {"interval", "200ms"},
                    {"start_from", "2026-07-05T00:00:00Z"},
                    {"rate_limit", "false"}},
                   extra);
  }

  // Waits until /healthz answers `status`; returns that answer (status 0 when it never did).
  HttpAnswer waitForHealth(int status) {
    HttpAnswer a;
    if (waitUntil([&] { return (a = httpGet(port_, "/healthz")).status == status; }, 30s)) return a;
    return {0, "", a.body};
  }

  uint16_t port_ = 0;
};

// ---------------------------------------------------------------------------------------------
// /healthz
// ---------------------------------------------------------------------------------------------

// A source that retries for longer than unhealthy_after turns the health red, with the reason
// and the real reason phrase; once the remote is back, green again.
TEST_F(HealthTest, ASourceRetryingLongerThanUnhealthyAfterTurnsHealthRed) {
  const std::string data = dir_.file("data.jsonl");
  writeFile(data, itemLine("k1", versionAt(0)));
  writeFile(config_, adminHost("unhealthy_after = 2s\n") +
                         sourceSection("src", data, "fail_file = " + dir_.file("src.fail") + "\n") +
                         sinkSection("a", dir_.file("a.jsonl")));
  FerryProcess ferry({"run", "--config", config_}, dir_.path());
  HttpAnswer ok = waitForHealth(200);
  ASSERT_EQ(ok.status, 200) << ok.body << ferry.err();
  EXPECT_EQ(ok.reason, "OK");
  auto src = healthOf(ok.body, "src");
  ASSERT_FALSE(src.isNull()) << ok.body;
  EXPECT_TRUE(src->getValue<bool>("healthy")) << ok.body;
  EXPECT_EQ(str(src, "kind"), "source");
  EXPECT_TRUE(parseObject(ok.body)->getValue<bool>("healthy"));

  writeFile(dir_.file("src.fail"), "retry\n");
  const auto started = std::chrono::steady_clock::now();
  HttpAnswer red = waitForHealth(503);
  ASSERT_EQ(red.status, 503) << "still green while the source retries: " << red.body
                             << ferry.err();
  // Not at the first failure: only once the source went without success for unhealthy_after
  // (counted from its last success, up to one interval before the outage began).
  EXPECT_GE(std::chrono::steady_clock::now() - started, 1500ms) << "red at the first retry";
  EXPECT_EQ(red.reason, "Service Unavailable");
  auto root = parseObject(red.body);
  EXPECT_FALSE(root->getValue<bool>("healthy"));
  EXPECT_EQ(str(root, "unhealthy_after"), "2s");
  src = healthOf(red.body, "src");
  ASSERT_FALSE(src.isNull()) << red.body;
  EXPECT_FALSE(src->getValue<bool>("healthy"));
  EXPECT_EQ(str(src, "state"), "retrying");
  EXPECT_NE(str(src, "reason").find("retrying for "), std::string::npos) << red.body;
  EXPECT_NE(str(src, "reason").find("scripted outage"), std::string::npos) << red.body;
  auto sink = healthOf(red.body, "a");
  ASSERT_FALSE(sink.isNull()) << red.body;
  EXPECT_TRUE(sink->getValue<bool>("healthy")) << "the sink is fine: " << red.body;

  removeFile(dir_.file("src.fail"));
  HttpAnswer back = waitForHealth(200);
  EXPECT_EQ(back.status, 200) << back.body;
  ferry.signal(SIGTERM);
  EXPECT_EQ(ferry.wait(), 0) << ferry.err();
}

TEST_F(HealthTest, AStoppedSinkTurnsHealthRedAtOnceAndIsNamed) {
  const std::string data = dir_.file("data.jsonl");
  writeFile(data, itemLine("k1", versionAt(0)));
  writeFile(dir_.file("b.fail"), "auth\n");
  writeFile(config_, adminHost() + sourceSection("src", data) +
                         sinkSection("b", dir_.file("b.jsonl"),
                                     "fail_file = " + dir_.file("b.fail") + "\n"));
  FerryProcess ferry({"run", "--config", config_}, dir_.path());
  HttpAnswer red = waitForHealth(503);
  ASSERT_EQ(red.status, 503) << red.body << ferry.err();
  EXPECT_EQ(red.reason, "Service Unavailable");
  auto b = healthOf(red.body, "b");
  ASSERT_FALSE(b.isNull()) << red.body;
  EXPECT_EQ(str(b, "state"), "stopped");
  EXPECT_EQ(str(b, "reason").rfind("stopped: authentication refused", 0), 0u) << red.body;
  EXPECT_TRUE(healthOf(red.body, "src")->getValue<bool>("healthy")) << red.body;
  ferry.signal(SIGTERM);
  EXPECT_EQ(ferry.wait(), 0) << ferry.err();
}

// A remote that accepts the request and never answers: the source is neither stopped nor
// retrying, it just never succeeds. The health turns red once unhealthy_after has passed.
TEST_F(HealthTest, ASourceStuckOnARemoteThatNeverAnswersTurnsHealthRed) {
  MisbehavingServer remote;
  remote.setMode(MisbehavingServer::Mode::kSilent);
  const std::string plugins = duckHubPlugins();
  writeFile(config_, adminHost("unhealthy_after = 1s\n", plugins) +
                         duckHubSource("dh", remote.port(), "timeout = 60s\n") +
                         sinkSection("a", dir_.file("a.jsonl")));
  FerryProcess ferry({"run", "--config", config_}, dir_.path());
  HttpAnswer red = waitForHealth(503);
  ASSERT_EQ(red.status, 503) << "green while the source waits for ever: " << red.body
                             << ferry.err();
  EXPECT_GE(remote.requests(), 1);
  auto dh = healthOf(red.body, "dh");
  ASSERT_FALSE(dh.isNull()) << red.body;
  EXPECT_EQ(str(dh, "state"), "running");
  EXPECT_NE(str(dh, "reason").find("no success since it started"), std::string::npos)
      << red.body;
  EXPECT_NE(str(dh, "reason").find("stuck"), std::string::npos) << red.body;
  EXPECT_TRUE(healthOf(red.body, "a")->getValue<bool>("healthy")) << red.body;

  // The remote answers again: the source succeeds and the health is green.
  remote.setMode(MisbehavingServer::Mode::kEmptyPage);
  remote.stop();  // ends the held request; the plugin reconnects and retries
  ferry.signal(SIGTERM);
  EXPECT_EQ(ferry.wait(30s), 0) << ferry.err();
}

// Clients that connect and send nothing, or trickle their request, must not keep /healthz from
// answering at once.
TEST_F(HealthTest, SlowClientsCannotBlockHealthz) {
  const std::string data = dir_.file("data.jsonl");
  writeFile(data, itemLine("k1", versionAt(0)));
  writeFile(config_, adminHost() + sourceSection("src", data) +
                         sinkSection("a", dir_.file("a.jsonl")));
  FerryProcess ferry({"run", "--config", config_}, dir_.path());
  ASSERT_EQ(waitForHealth(200).status, 200) << ferry.err();

  const Poco::Net::SocketAddress admin("127.0.0.1", port_);
  std::vector<Poco::Net::StreamSocket> silent;
  for (int i = 0; i < 2; ++i) silent.emplace_back(admin);
  std::atomic<bool> done{false};
  std::vector<std::thread> tricklers;
  for (int i = 0; i < 2; ++i)
    tricklers.emplace_back([&] {
      try {
        Poco::Net::StreamSocket s(admin);
        const std::string request = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
        for (size_t k = 0; !done.load(); ++k) {
          const char c = k < request.size() ? request[k] : 'a';
          s.sendBytes(&c, 1);
          std::this_thread::sleep_for(100ms);
        }
      } catch (const Poco::Exception&) {
        // the server closed it: fine
      }
    });
  std::this_thread::sleep_for(500ms);  // they hold their connections now

  for (int round = 0; round < 3; ++round) {
    const auto start = std::chrono::steady_clock::now();
    HttpAnswer a = httpGet(port_, "/healthz");
    const auto took = std::chrono::steady_clock::now() - start;
    EXPECT_EQ(a.status, 200) << "round " << round << ": " << a.body;
    EXPECT_LT(took, 1s) << "round " << round;
  }
  HttpAnswer metrics = httpGet(port_, "/metrics");
  EXPECT_EQ(metrics.status, 200);

  // A silent client is let go after a few seconds.
  silent[0].setReceiveTimeout(Poco::Timespan(15, 0));
  char byte;
  const auto start = std::chrono::steady_clock::now();
  int n = -1;
  try {
    n = silent[0].receiveBytes(&byte, 1);
  } catch (const Poco::Exception&) {
  }
  EXPECT_EQ(n, 0) << "the silent connection was not closed by the server";
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);

  done = true;
  for (auto& t : tricklers) t.join();
  ferry.signal(SIGTERM);
  EXPECT_EQ(ferry.wait(), 0) << ferry.err();
}

TEST_F(HealthTest, AdminEndpointAnswersOtherRequestsWithTheRightStatus) {
  const std::string data = dir_.file("data.jsonl");
  writeFile(data, "");
  writeFile(config_, adminHost() + sourceSection("src", data));
  FerryProcess ferry({"run", "--config", config_}, dir_.path());
  ASSERT_EQ(waitForHealth(200).status, 200) << ferry.err();
  HttpAnswer missing = httpGet(port_, "/nope");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.reason, "Not Found");

  Poco::Net::HTTPClientSession session("127.0.0.1", port_);
  session.setTimeout(Poco::Timespan(5, 0));
  Poco::Net::HTTPRequest post(Poco::Net::HTTPRequest::HTTP_POST, "/healthz");
  post.setContentLength(0);
  session.sendRequest(post);
  Poco::Net::HTTPResponse response;
  session.receiveResponse(response);
  EXPECT_EQ(response.getStatus(), 405);
  EXPECT_EQ(response.getReason(), "Method Not Allowed");
  EXPECT_EQ(response.get("Allow", ""), "GET, HEAD");
  ferry.signal(SIGTERM);
  EXPECT_EQ(ferry.wait(), 0) << ferry.err();
}

// ---------------------------------------------------------------------------------------------
// /metrics
// ---------------------------------------------------------------------------------------------

TEST_F(HealthTest, MetricsFollowPrometheusConventions) {
  const std::string data = dir_.file("data.jsonl");
  writeFile(data, "");
  writeFile(dir_.file("b.fail"), "auth\n");
  const double started = nowSeconds();
  writeFile(config_, adminHost() + sourceSection("src", data) +
                         sinkSection("a", dir_.file("a.jsonl")) +
                         sinkSection("b", dir_.file("b.jsonl"),
                                     "fail_file = " + dir_.file("b.fail") + "\n"));
  FerryProcess ferry({"run", "--config", config_}, dir_.path());
  HttpAnswer first;
  ASSERT_TRUE(waitUntil([&] { return (first = httpGet(port_, "/metrics")).status == 200; }))
      << ferry.err();
  const std::string& m0 = first.body;
  // Every series exists from the start, at zero, labelled by the kind of its instance.
  EXPECT_EQ(sample(m0, "ferry_source_events_total{source=\"src\"}"), 0) << m0;
  EXPECT_EQ(sample(m0, "ferry_source_retries_total{source=\"src\"}"), 0) << m0;
  EXPECT_EQ(sample(m0, "ferry_http_requests_total{source=\"src\"}"), 0) << m0;
  EXPECT_EQ(sample(m0, "ferry_sink_events_total{sink=\"a\"}"), 0) << m0;
  EXPECT_EQ(sample(m0, "ferry_sink_retries_total{sink=\"a\"}"), 0) << m0;
  EXPECT_EQ(sample(m0, "ferry_sink_dead_letters_total{sink=\"a\"}"), 0) << m0;
  EXPECT_EQ(sample(m0, "ferry_sink_backlog{sink=\"a\"}"), 0) << m0;
  EXPECT_EQ(m0.find("instance="), std::string::npos) << "the label collides with Prometheus's";
  // The same version and plugin ABI as `ferry --version` says.
  RunResult version = this->ferry({"--version"});
  std::smatch abi;
  ASSERT_TRUE(std::regex_search(version.out, abi, std::regex("plugin ABI ([0-9.]+)"))) << version.out;
  EXPECT_EQ(sample(m0, "ferry_build_info{version=\"" FERRY_EXPECTED_VERSION "\",abi=\"" +
                           abi[1].str() + "\"}"),
            1)
      << m0;

  writeFile(data, itemLine("k1", "2026-01-01T00:00:00.000Z") +
                      itemLine("k2", "2026-01-01T00:00:01.000Z"));
  HttpAnswer now;
  ASSERT_TRUE(waitUntil([&] {
    now = httpGet(port_, "/metrics");
    // (A sink counts its events just after its offset moved: wait for both.)
    return sample(now.body, "ferry_sink_offset{sink=\"a\"}") == 2 &&
           sample(now.body, "ferry_sink_events_total{sink=\"a\"}") == 2 &&
           sample(now.body, "ferry_source_events_total{source=\"src\"}") == 2 &&
           sample(now.body, "ferry_sink_state{sink=\"b\",state=\"stopped\"}") == 1;
  })) << now.body << ferry.err();
  const std::string& m = now.body;
  const double t = nowSeconds();
  EXPECT_EQ(sample(m, "ferry_source_events_total{source=\"src\"}"), 2) << m;
  EXPECT_EQ(sample(m, "ferry_sink_events_total{sink=\"a\"}"), 2) << m;
  EXPECT_EQ(sample(m, "ferry_journal_up"), 1) << m;
  EXPECT_EQ(sample(m, "ferry_journal_last_sequence"), 2) << m;
  // The source succeeded just now; its cursor is the newest version it saw.
  const double success = sample(m, "ferry_source_last_success_timestamp_seconds{source=\"src\"}");
  EXPECT_GE(success, started - 1) << m;
  EXPECT_LE(success, t + 1) << m;
  const double cursor = 1767225601.0;  // 2026-01-01T00:00:01Z
  EXPECT_NEAR(sample(m, "ferry_source_cursor_lag_seconds{source=\"src\"}"), t - cursor, 30) << m;
  // Sink a has everything, sink b (stopped) holds both events since they were fetched.
  EXPECT_EQ(sample(m, "ferry_sink_oldest_pending_age_seconds{sink=\"a\"}"), 0) << m;
  const double age = sample(m, "ferry_sink_oldest_pending_age_seconds{sink=\"b\"}");
  EXPECT_GE(age, 0) << m;
  EXPECT_LE(age, t - started + 1) << m;
  EXPECT_EQ(sample(m, "ferry_sink_backlog{sink=\"b\"}"), 2) << m;
  EXPECT_EQ(sample(m, "ferry_sink_healthy{sink=\"b\"}"), 0) << m;
  EXPECT_EQ(sample(m, "ferry_sink_state{sink=\"b\",state=\"running\"}"), 0) << m;
  EXPECT_EQ(sample(m, "ferry_sink_healthy{sink=\"a\"}"), 1) << m;
  EXPECT_EQ(sample(m, "ferry_source_healthy{source=\"src\"}"), 1) << m;
  EXPECT_EQ(sample(m, "ferry_healthy"), 0) << m;
  // The process's own figures.
  EXPECT_GT(sample(m, "process_resident_memory_bytes"), 1e6) << m;
  EXPECT_GT(sample(m, "process_open_fds"), 3) << m;
  EXPECT_GE(sample(m, "process_cpu_seconds_total"), 0) << m;
  EXPECT_NEAR(sample(m, "process_start_time_seconds"), started, 30) << m;

  // Every sample belongs to a family announced with # HELP and # TYPE before it.
  std::set<std::string> helped, typed;
  std::istringstream lines(m);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("# HELP ", 0) == 0) {
      helped.insert(line.substr(7, line.find(' ', 7) - 7));
      continue;
    }
    if (line.rfind("# TYPE ", 0) == 0) {
      typed.insert(line.substr(7, line.find(' ', 7) - 7));
      continue;
    }
    std::string name = line.substr(0, line.find_first_of("{ "));
    for (const char* suffix : {"_bucket", "_sum", "_count"})
      if (!helped.count(name) && name.size() > std::strlen(suffix) &&
          name.compare(name.size() - std::strlen(suffix), std::string::npos, suffix) == 0)
        name.erase(name.size() - std::strlen(suffix));
    EXPECT_TRUE(helped.count(name)) << "no # HELP before: " << line;
    EXPECT_TRUE(typed.count(name)) << "no # TYPE before: " << line;
  }
  ferry.signal(SIGTERM);
  EXPECT_EQ(ferry.wait(), 0) << ferry.err();
}

// HTTP request durations by status code, from a remote that first fails, then answers.
TEST_F(HealthTest, MetricsTimeHttpRequestsByStatusCode) {
  MisbehavingServer remote;
  remote.setMode(MisbehavingServer::Mode::kUnavailable);
  const std::string plugins = duckHubPlugins();
  writeFile(config_, adminHost("", plugins) + duckHubSource("dh", remote.port()) +
                         sinkSection("a", dir_.file("a.jsonl")));
  FerryProcess ferry({"run", "--config", config_}, dir_.path());
  const std::string count503 =
      "ferry_http_request_duration_seconds_count{source=\"dh\",code=\"503\"}";
  const std::string count200 =
      "ferry_http_request_duration_seconds_count{source=\"dh\",code=\"200\"}";
  HttpAnswer m;
  ASSERT_TRUE(waitUntil([&] {
    m = httpGet(port_, "/metrics");
    return sample(m.body, count503) >= 1;
  })) << m.body << ferry.err();
  remote.setMode(MisbehavingServer::Mode::kEmptyPage);
  ASSERT_TRUE(waitUntil([&] {
    m = httpGet(port_, "/metrics");
    return sample(m.body, count200) >= 1;
  })) << m.body << ferry.err();
  const double failed = sample(m.body, count503);
  EXPECT_EQ(sample(m.body, "ferry_http_request_duration_seconds_bucket{source=\"dh\",code=\"503\","
                           "le=\"+Inf\"}"),
            failed)
      << m.body;
  EXPECT_GE(sample(m.body, "ferry_http_request_duration_seconds_sum{source=\"dh\",code=\"200\"}"),
            0)
      << m.body;
  EXPECT_GE(sample(m.body, "ferry_http_requests_total{source=\"dh\"}"), failed + 1) << m.body;
  EXPECT_GE(sample(m.body, "ferry_http_transient_failures_total{source=\"dh\"}"), failed)
      << m.body;
  EXPECT_EQ(sample(m.body, "ferry_source_retries_total{source=\"dh\"}"), failed) << m.body;
  ferry.signal(SIGTERM);
  EXPECT_EQ(ferry.wait(), 0) << ferry.err();
}

// ---------------------------------------------------------------------------------------------
// Logs
// ---------------------------------------------------------------------------------------------

// `ferry run --once` whose source fails once (retried), then has its credentials refused.
class LogTest : public FerryTest {
 protected:
  void writeFailingConfig() {
    const std::string data = dir_.file("data.jsonl");
    writeFile(data, itemLine("k1", versionAt(0)));
    writeFile(dir_.file("src.fail"), "auth\n");
    writeConfig(sourceSection("src", data,
                                           "fail_first = 1\nfail_file = " +
                                               dir_.file("src.fail") + "\n") +
                sinkSection("a", dir_.file("a.jsonl")));
  }
};

// Under systemd, stderr is the journal (JOURNAL_STREAM names it): each line carries its
// priority, so that `journalctl -p warning` finds the warnings and errors.
TEST_F(LogTest, PrioritiesReachTheJournal) {
  writeFailingConfig();
  RunResult r = runCommand({"sh", "-c",
                            "JOURNAL_STREAM=$(stat -L -c %d:%i /proc/self/fd/2) exec \"$0\" \"$@\"",
                            ferryBinary(), "run", "--config", config_, "--once"},
                           dir_.path());
  EXPECT_EQ(r.exit_code, 1) << describe(r);
  const std::vector<std::string> lines = [&] {
    std::vector<std::string> v;
    std::istringstream in(r.err);
    for (std::string line; std::getline(in, line);) v.push_back(line);
    return v;
  }();
  ASSERT_FALSE(lines.empty());
  auto has = [&](const std::string& prefix, const std::string& text) {
    for (const auto& l : lines)
      if (l.rfind(prefix, 0) == 0 && l.find(text) != std::string::npos) return true;
    return false;
  };
  EXPECT_TRUE(has("<6>INFO ", "running with")) << r.err;
  EXPECT_TRUE(has("<4>WARN source src: ", "scripted start-up outage; retry 1 in")) << r.err;
  EXPECT_TRUE(has("<3>ERROR source src: stopped, ", "authentication refused")) << r.err;
  for (const auto& l : lines)
    EXPECT_TRUE(std::regex_match(l, std::regex("<[0-7]>[A-Z]+ .*"))) << "no priority: " << l;
}

// Elsewhere (a terminal, a file, stderr redirected away from the journal) no prefix, and the
// line has its time and a short level name.
TEST_F(LogTest, TextLinesHaveTimeAndShortLevelsOutsideTheJournal) {
  writeFailingConfig();
  RunResult r = runCommand({"env", "JOURNAL_STREAM=1:1", ferryBinary(), "run", "--config", config_,
                            "--once"},
                           dir_.path());
  EXPECT_EQ(r.exit_code, 1) << describe(r);
  const std::string ts = "\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z ";
  EXPECT_TRUE(std::regex_search(r.err, std::regex("(^|\n)" + ts + "WARN source src: scripted")))
      << r.err;
  EXPECT_TRUE(std::regex_search(r.err, std::regex("(^|\n)" + ts + "ERROR source src: stopped")))
      << r.err;
  EXPECT_TRUE(std::regex_search(r.err, std::regex("(^|\n)" + ts + "INFO ferry "))) << r.err;
  EXPECT_EQ(r.err.find("<4>"), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("Warning"), std::string::npos) << r.err;
}

TEST_F(LogTest, JsonFormatGivesOneObjectPerLine) {
  writeFailingConfig();
  writeFile(config_, std::regex_replace(readFile(config_), std::regex("log_level = info\n"),
                                        "log_level = info\nlog_format = json\n"));
  RunResult r = ferry({"run", "--config", config_, "--once"});
  EXPECT_EQ(r.exit_code, 1) << describe(r);
  std::map<std::string, int> levels;
  std::istringstream in(r.err);
  int count = 0;
  for (std::string line; std::getline(in, line);) {
    ++count;
    Poco::JSON::Object::Ptr o;
    try {
      o = parseObject(line);
    } catch (const std::exception&) {
      ADD_FAILURE() << "not a JSON object: " << line;
      continue;
    }
    EXPECT_TRUE(std::regex_match(str(o, "time"),
                                 std::regex("\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z")))
        << line;
    ++levels[str(o, "level")];
    if (str(o, "level") == "ERROR") {
      EXPECT_NE(str(o, "message").find("source src: stopped, authentication refused"),
                std::string::npos)
          << line;
    }
  }
  EXPECT_GT(count, 2) << r.err;
  EXPECT_GE(levels["INFO"], 1) << r.err;
  EXPECT_EQ(levels["WARN"], 1) << r.err;
  EXPECT_GE(levels["ERROR"], 1) << r.err;
}

TEST_F(LogTest, AnUnknownLogFormatIsAConfigError) {
  writeFile(config_, std::regex_replace(hostSection(dir_), std::regex("log_level = info\n"),
                                        "log_level = info\nlog_format = yaml\n") +
                         sourceSection("src", dir_.file("data.jsonl")));
  RunResult r = ferry({"check", "--config", config_});
  EXPECT_EQ(r.exit_code, 78) << describe(r);
  EXPECT_NE(r.err.find("[host] log_format"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("text|json"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace ferry::it
