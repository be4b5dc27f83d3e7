#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeFormatter.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/StreamSocket.h>
#include <Poco/StreamCopier.h>
#include <Poco/Timestamp.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "services/Http.h"

namespace ferry::core {
namespace {

using Clock = std::chrono::steady_clock;
using Poco::Net::HTTPServerRequest;
using Poco::Net::HTTPServerResponse;

int64_t msSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

std::string headerOf(const HttpResult& r, const std::string& name) {
  for (const auto& [n, v] : r.headers) {
    if (Poco::icompare(n, name) == 0) return v;
  }
  return "";
}

// What the server saw of one request.
struct Received {
  std::string method;
  std::string uri;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
};

using Handler = std::function<void(HTTPServerRequest&, HTTPServerResponse&)>;

// A real Poco HTTP server on an ephemeral 127.0.0.1 port that records every request.
class TestServer {
 public:
  explicit TestServer(Handler handler, Poco::Net::Context::Ptr tls = nullptr)
      : handler_(std::move(handler)) {
    Poco::Net::SocketAddress address("127.0.0.1", 0);
    Poco::Net::ServerSocket socket = tls ? Poco::Net::SecureServerSocket(address, 64, tls)
                                         : Poco::Net::ServerSocket(address, 64);
    port_ = socket.address().port();
    auto* params = new Poco::Net::HTTPServerParams;
    params->setKeepAlive(true);
    params->setMaxKeepAliveRequests(1000);
    params->setKeepAliveTimeout(Poco::Timespan(30, 0));
    params->setMaxThreads(8);
    server_ = std::make_unique<Poco::Net::HTTPServer>(new Factory(*this), socket, params);
    server_->start();
  }
  ~TestServer() { server_->stopAll(true); }

  uint16_t port() const { return port_; }
  std::string url(const std::string& path, const std::string& scheme = "http") const {
    return scheme + "://127.0.0.1:" + std::to_string(port_) + path;
  }
  int connections() const { return server_->totalConnections(); }
  std::vector<Received> received() const {
    std::lock_guard lock(mutex_);
    return received_;
  }

 private:
  class Handle : public Poco::Net::HTTPRequestHandler {
   public:
    explicit Handle(TestServer& server) : server_(server) {}
    void handleRequest(HTTPServerRequest& request, HTTPServerResponse& response) override {
      Received r;
      r.method = request.getMethod();
      r.uri = request.getURI();
      for (const auto& [name, value] : request) r.headers[Poco::toLower(name)] = value;
      Poco::StreamCopier::copyToString(request.stream(), r.body);
      {
        std::lock_guard lock(server_.mutex_);
        server_.received_.push_back(r);
      }
      server_.handler_(request, response);
    }

   private:
    TestServer& server_;
  };
  class Factory : public Poco::Net::HTTPRequestHandlerFactory {
   public:
    explicit Factory(TestServer& server) : server_(server) {}
    Poco::Net::HTTPRequestHandler* createRequestHandler(const HTTPServerRequest&) override {
      return new Handle(server_);
    }

   private:
    TestServer& server_;
  };

  Handler handler_;
  uint16_t port_ = 0;
  mutable std::mutex mutex_;
  std::vector<Received> received_;
  std::unique_ptr<Poco::Net::HTTPServer> server_;
};

void reply(HTTPServerResponse& response, int status, const std::string& body,
           const std::map<std::string, std::string>& headers = {}) {
  response.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(status));
  for (const auto& [n, v] : headers) response.set(n, v);
  response.setContentLength64(static_cast<Poco::Int64>(body.size()));
  response.send() << body;
}

// A bare TCP server that runs `script` for each accepted connection, for the misbehaviours a
// real HTTP server will not produce.
class RawServer {
 public:
  using Script = std::function<void(Poco::Net::StreamSocket&, int index)>;
  explicit RawServer(Script script)
      : socket_(Poco::Net::SocketAddress("127.0.0.1", 0), 16), script_(std::move(script)) {
    thread_ = std::thread([this] { run(); });
  }
  ~RawServer() {
    stop_ = true;
    thread_.join();
  }
  std::string url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(socket_.address().port()) + path;
  }
  int connections() const { return accepted_.load(); }

 private:
  void run() {
    while (!stop_) {
      if (!socket_.poll(Poco::Timespan(0, 50000), Poco::Net::Socket::SELECT_READ)) continue;
      Poco::Net::StreamSocket conn = socket_.acceptConnection();
      int index = accepted_++;
      try {
        script_(conn, index);
      } catch (const Poco::Exception&) {
      }
      try {
        conn.close();
      } catch (const Poco::Exception&) {
      }
    }
  }

  Poco::Net::ServerSocket socket_;
  Script script_;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::thread thread_;
};

// Reads one request (head and Content-Length body); "" when the peer closed first.
std::string readRequest(Poco::Net::StreamSocket& socket) {
  socket.setReceiveTimeout(Poco::Timespan(10, 0));
  std::string data;
  char c;
  while (!contains(data, "\r\n\r\n")) {
    if (socket.receiveBytes(&c, 1) <= 0) return "";
    data.push_back(c);
  }
  std::string lower = Poco::toLower(data);
  size_t at = lower.find("content-length:");
  if (at != std::string::npos) {
    size_t length = std::stoul(data.substr(at + 15));
    std::string body(length, '\0');
    size_t got = 0;
    while (got < length) {
      int n = socket.receiveBytes(body.data() + got, static_cast<int>(length - got));
      if (n <= 0) return "";
      got += static_cast<size_t>(n);
    }
    data += body;
  }
  return data;
}

void sendAll(Poco::Net::StreamSocket& socket, const std::string& data) {
  socket.sendBytes(data.data(), static_cast<int>(data.size()));
}

std::string okResponse(const std::string& body) {
  return "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\n\r\n" + body;
}

// ---------------------------------------------------------------------------------------------

TEST(Http, GetArrivesAsSent) {
  TestServer server([](auto&, auto& response) {
    reply(response, 200, R"({"items":[]})",
          {{"X-Reply", "yes"}, {"Content-Type", "application/json"}});
  });
  HttpClient client;
  HttpCall call;
  call.url = server.url("/v1/orders/a%2Fb?updatedSince=2025-04-23T10%3A01%3A53.812Z&limit=100");
  call.headers = {{"Authorization", "Bearer dk_test_secret"}, {"Accept", "application/json"}};
  HttpResult r = client.perform(call);

  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, R"({"items":[]})");
  EXPECT_EQ(headerOf(r, "X-Reply"), "yes");
  EXPECT_FALSE(r.transient);
  EXPECT_EQ(r.retry_after_ms, -1);
  EXPECT_EQ(r.error, "");

  auto got = server.received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].method, "GET");
  // The encoded slash and the query arrive byte for byte.
  EXPECT_EQ(got[0].uri, "/v1/orders/a%2Fb?updatedSince=2025-04-23T10%3A01%3A53.812Z&limit=100");
  EXPECT_EQ(got[0].headers["authorization"], "Bearer dk_test_secret");
  EXPECT_EQ(got[0].headers["accept"], "application/json");
  EXPECT_EQ(got[0].headers["user-agent"], std::string("ferry/") + FERRY_VERSION);
  EXPECT_EQ(got[0].headers["host"], "127.0.0.1:" + std::to_string(server.port()));
  EXPECT_EQ(got[0].headers.count("content-length"), 0u);
  EXPECT_EQ(got[0].body, "");
}

TEST(Http, PostBodyAndHeadersArriveAsSent) {
  TestServer server([](auto&, auto& response) { reply(response, 201, "created"); });
  HttpClient client;
  HttpCall call;
  call.method = "POST";
  call.url = server.url("/v2/order-search/poll");
  call.body =
      R"({"filters":{"lastUpdatedAfter":"2025-01-01T00:00:00.000Z"},"offset":0,"limit":100})";
  call.headers = {{"Content-Type", "application/json"},
                  {"User-Agent", "my-plugin/2.0"},
                  {"Idempotency-Key", "src/order/4711/2025-04-23T10:01:53.812Z"}};
  HttpResult r = client.perform(call);
  ASSERT_EQ(r.status, 201) << r.error;
  EXPECT_EQ(r.body, "created");

  auto got = server.received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].method, "POST");
  EXPECT_EQ(got[0].uri, "/v2/order-search/poll");
  EXPECT_EQ(got[0].body, call.body);
  EXPECT_EQ(got[0].headers["content-length"], std::to_string(call.body.size()));
  EXPECT_EQ(got[0].headers["content-type"], "application/json");
  EXPECT_EQ(got[0].headers["user-agent"], "my-plugin/2.0");  // the call's own, not ours
  EXPECT_EQ(got[0].headers["idempotency-key"], "src/order/4711/2025-04-23T10:01:53.812Z");
}

TEST(Http, PatchWithEmptyBodySendsContentLengthZero) {
  TestServer server([](auto&, auto& response) { reply(response, 200, "{}"); });
  HttpClient client;
  HttpResult r = client.perform({"PATCH", server.url("/v1/orders/x/status"), {}, "", 0});
  ASSERT_EQ(r.status, 200) << r.error;
  auto got = server.received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].method, "PATCH");
  EXPECT_EQ(got[0].headers["content-length"], "0");
}

TEST(Http, ChunkedAndLargeBodiesAreReadWhole) {
  std::string big;
  for (int i = 0; big.size() < 300000; ++i) big += "{\"id\":" + std::to_string(i) + "},";
  TestServer server([&big](HTTPServerRequest& request, HTTPServerResponse& response) {
    if (request.getURI() == "/chunked") {
      response.setChunkedTransferEncoding(true);
      std::ostream& out = response.send();
      for (size_t at = 0; at < big.size(); at += 7000) out << big.substr(at, 7000) << std::flush;
    } else {
      reply(response, 200, big);
    }
  });
  HttpClient client;
  HttpResult chunked = client.perform({"GET", server.url("/chunked"), {}, "", 0});
  ASSERT_EQ(chunked.status, 200) << chunked.error;
  EXPECT_EQ(chunked.body, big);
  HttpResult fixed = client.perform({"GET", server.url("/fixed"), {}, "", 0});
  ASSERT_EQ(fixed.status, 200) << fixed.error;
  EXPECT_EQ(fixed.body, big);
  EXPECT_EQ(server.connections(), 1);  // both bodies fully consumed: the connection stays usable
}

TEST(Http, KeepAliveReusesOneConnection) {
  TestServer server([](auto& request, auto& response) { reply(response, 200, request.getURI()); });
  HttpClient client;
  for (int i = 0; i < 5; ++i) {
    HttpResult r = client.perform({"GET", server.url("/page/" + std::to_string(i)), {}, "", 0});
    ASSERT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(r.body, "/page/" + std::to_string(i));
  }
  EXPECT_EQ(server.received().size(), 5u);
  EXPECT_EQ(server.connections(), 1);
}

// Many callers of one client share its connections to an origin, never more than the cap, and
// one that finds them all busy waits for one instead of opening another.
TEST(Http, CallersShareAPoolOfConnectionsPerOriginUpToItsCap) {
  TestServer server([](HTTPServerRequest&, HTTPServerResponse& response) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    reply(response, 200, "ok");
  });
  HttpSettings settings;
  settings.max_connections_per_origin = 2;
  HttpClient client(settings);
  std::atomic<int> ok{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 8; ++t)
    callers.emplace_back([&] {
      for (int i = 0; i < 5; ++i) {
        HttpCall call;
        call.url = server.url("/x");
        if (client.perform(call).status == 200) ++ok;
      }
    });
  for (auto& t : callers) t.join();
  EXPECT_EQ(ok.load(), 40);
  EXPECT_EQ(server.received().size(), 40u);
  EXPECT_EQ(server.connections(), 2);
}

// The wait for a free connection is part of the call's one deadline.
TEST(Http, WaitingForAFreeConnectionEndsAtTheDeadline) {
  TestServer server([](HTTPServerRequest&, HTTPServerResponse& response) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));
    reply(response, 200, "late");
  });
  HttpSettings settings;
  settings.max_connections_per_origin = 1;
  HttpClient client(settings);
  auto busy = std::async(std::launch::async, [&] {
    HttpCall call;
    call.url = server.url("/slow");
    return client.perform(call);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  HttpCall call;
  call.url = server.url("/other");
  call.timeout_ms = 300;
  const auto start = Clock::now();
  HttpResult r = client.perform(call);
  EXPECT_LT(msSince(start), 1000);
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(r.transient);
  EXPECT_TRUE(contains(r.error, "no connection to 127.0.0.1:")) << r.error;
  EXPECT_EQ(busy.get().status, 200);
}

TEST(Http, TooManyRequestsWithRetryAfterSeconds) {
  TestServer server([](auto&, auto& response) {
    reply(response, 429, "ThrottlerException: Too Many Requests", {{"Retry-After", "7"}});
  });
  HttpClient client;
  HttpResult r = client.perform({"GET", server.url("/v1/orders"), {}, "", 0});
  EXPECT_EQ(r.status, 429);
  EXPECT_TRUE(r.transient);
  EXPECT_EQ(r.retry_after_ms, 7000);
  EXPECT_EQ(r.body, "ThrottlerException: Too Many Requests");
  EXPECT_FALSE(r.malformed);
}

TEST(Http, TooManyRequestsWithRetryAfterDate) {
  TestServer server([](auto&, auto& response) {
    Poco::Timestamp now;
    response.set("Date", Poco::DateTimeFormatter::format(now, Poco::DateTimeFormat::HTTP_FORMAT));
    Poco::Timestamp later = now + Poco::Timespan(30, 0);
    reply(response, 429, "slow down",
          {{"Retry-After",
            Poco::DateTimeFormatter::format(later, Poco::DateTimeFormat::HTTP_FORMAT)}});
  });
  HttpClient client;
  HttpResult r = client.perform({"GET", server.url("/"), {}, "", 0});
  EXPECT_EQ(r.status, 429);
  EXPECT_TRUE(r.transient);
  EXPECT_GE(r.retry_after_ms, 25000);
  EXPECT_LE(r.retry_after_ms, 31000);
}

TEST(Http, TransientAndPermanentStatuses) {
  TestServer server([](auto& request, auto& response) {
    reply(response, std::stoi(request.getURI().substr(1)), "status");
  });
  HttpClient client;
  for (int status : {500, 502, 503, 504, 408, 425}) {
    HttpResult r = client.perform({"GET", server.url("/" + std::to_string(status)), {}, "", 0});
    EXPECT_EQ(r.status, status) << r.error;
    EXPECT_TRUE(r.transient) << status;
    EXPECT_EQ(r.retry_after_ms, -1);
  }
  for (int status : {400, 401, 403, 404, 422, 200, 204}) {
    HttpResult r = client.perform({"GET", server.url("/" + std::to_string(status)), {}, "", 0});
    EXPECT_EQ(r.status, status) << r.error;
    EXPECT_FALSE(r.transient) << status;
  }
  EXPECT_EQ(server.connections(), 1);
}

TEST(Http, TransientStatusClassification) {
  for (int s : {408, 425, 429, 500, 501, 503, 599}) EXPECT_TRUE(isTransientStatus(s)) << s;
  for (int s : {0, 200, 301, 400, 401, 404, 409, 422, 600}) EXPECT_FALSE(isTransientStatus(s)) << s;
}

TEST(Http, RetryAfterParsing) {
  const int64_t now_ms = int64_t{1745402513} * 1000;  // Wed, 23 Apr 2025 10:01:53 GMT
  EXPECT_EQ(parseRetryAfterMs("120", now_ms), 120000);
  EXPECT_EQ(parseRetryAfterMs(" 5 ", now_ms), 5000);
  EXPECT_EQ(parseRetryAfterMs("0", now_ms), 0);
  EXPECT_EQ(parseRetryAfterMs("Wed, 23 Apr 2025 10:02:03 GMT", now_ms), 10000);
  EXPECT_EQ(parseRetryAfterMs("Wednesday, 23-Apr-25 10:02:03 GMT", now_ms), 10000);
  EXPECT_EQ(parseRetryAfterMs("Wed Apr 23 10:02:03 2025", now_ms), 10000);
  EXPECT_EQ(parseRetryAfterMs("Wed, 23 Apr 2025 09:00:00 GMT", now_ms), 0);  // in the past
  EXPECT_EQ(parseRetryAfterMs("", now_ms), -1);
  EXPECT_EQ(parseRetryAfterMs("soon", now_ms), -1);
  EXPECT_EQ(parseRetryAfterMs("-5", now_ms), -1);
  EXPECT_EQ(parseRetryAfterMs("1.5", now_ms), -1);
  EXPECT_GT(parseRetryAfterMs("99999999999999999999999", now_ms), 0);  // clamped, no overflow
}

TEST(Http, SlowServerTimesOutWithoutRetrying) {
  TestServer server([](auto& request, auto& response) {
    if (request.getURI().rfind("/slow", 0) == 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(3000));
    reply(response, 200, "late");
  });
  HttpClient client;
  ASSERT_EQ(client.perform({"GET", server.url("/fast"), {}, "", 0}).status, 200);

  const auto start = Clock::now();
  HttpCall call{
      "GET", server.url("/slow?token=QUERYSECRET"), {{"Authorization", "Bearer SECRET"}}, "", 300};
  HttpResult r = client.perform(call);
  const int64_t took = msSince(start);
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(r.transient);
  EXPECT_FALSE(r.malformed);
  EXPECT_TRUE(contains(r.error, "timed out")) << r.error;
  EXPECT_TRUE(contains(r.error, "127.0.0.1:" + std::to_string(server.port()))) << r.error;
  EXPECT_FALSE(contains(r.error, "SECRET")) << r.error;
  EXPECT_GE(took, 300);
  EXPECT_LT(took, 2500);  // well before the server would have answered

  // A timed-out request is not sent again behind the caller's back.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(server.received().size(), 2u);
}

// A server that trickles its status line and headers a byte at a time: every single read
// succeeds, so only a deadline for the whole exchange ends the call on time.
TEST(Http, TricklingResponseHeadEndsAtTheDeadline) {
  RawServer raw([](Poco::Net::StreamSocket& socket, int) {
    readRequest(socket);
    const std::string head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Slow: yes\r\n";
    for (size_t i = 0; i < head.size() && i < 40; ++i) {
      sendAll(socket, head.substr(i, 1));
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  });
  HttpClient client;
  const auto start = Clock::now();
  HttpResult r = client.perform({"GET", raw.url("/v1/orders"), {}, "", 1500});
  const int64_t took = msSince(start);
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(r.transient);
  EXPECT_TRUE(contains(r.error, "timed out after 1500 ms")) << r.error;
  EXPECT_GE(took, 1500);
  EXPECT_LT(took, 4000) << "the trickle kept the call alive past its deadline";
}

// A response announcing more than the limit is refused before its body is read, and a chunked
// body that never ends is cut at the limit: a hostile server cannot fill the host's memory.
TEST(Http, ResponsesLargerThanTheLimitAreRefused) {
  RawServer raw([](Poco::Net::StreamSocket& socket, int index) {
    readRequest(socket);
    if (index == 0) {
      sendAll(socket, "HTTP/1.1 200 OK\r\nContent-Length: 5000000000\r\n\r\n");
    } else {
      sendAll(socket, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    }
    const std::string chunk = "10000\r\n" + std::string(0x10000, 'x') + "\r\n";
    for (int i = 0; i < 200; ++i) sendAll(socket, index == 0 ? std::string(0x10000, 'x') : chunk);
  });
  HttpSettings settings;
  settings.max_body_bytes = 1 << 20;
  HttpClient client(settings);
  HttpResult announced = client.perform({"GET", raw.url("/a"), {}, "", 5000});
  EXPECT_EQ(announced.status, 0);
  EXPECT_TRUE(announced.body.empty());
  EXPECT_TRUE(contains(announced.error, "5000000000 bytes")) << announced.error;
  EXPECT_TRUE(contains(announced.error, "limit of 1048576")) << announced.error;
  HttpResult endless = client.perform({"GET", raw.url("/b"), {}, "", 5000});
  EXPECT_EQ(endless.status, 0);
  EXPECT_TRUE(endless.body.empty());
  EXPECT_TRUE(contains(endless.error, "limit of 1048576")) << endless.error;
}

TEST(Http, DefaultTimeoutComesFromSettings) {
  TestServer server([](auto&, auto& response) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2000));
    reply(response, 200, "late");
  });
  HttpSettings settings;
  settings.default_timeout_ms = 200;
  HttpClient client(settings);
  const auto start = Clock::now();
  HttpResult r = client.perform({"GET", server.url("/"), {}, "", 0});
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(contains(r.error, "timed out after 200 ms")) << r.error;
  EXPECT_GE(msSince(start), 200);
  EXPECT_LT(msSince(start), 1800);
}

TEST(Http, ServerClosingWithoutAnswerIsTransient) {
  RawServer raw([](Poco::Net::StreamSocket& socket, int) { readRequest(socket); });
  HttpClient client;
  HttpResult r = client.perform({"GET", raw.url("/v1/orders"), {}, "", 2000});
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(r.transient);
  EXPECT_TRUE(contains(r.error, "without a response")) << r.error;
  EXPECT_TRUE(contains(r.error, raw.url("").substr(7))) << r.error;
  EXPECT_EQ(raw.connections(), 1);  // a fresh connection that fails is not retried
}

TEST(Http, ConnectionDroppedMidBodyIsTransient) {
  RawServer raw([](Poco::Net::StreamSocket& socket, int) {
    readRequest(socket);
    sendAll(socket, "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789");
  });
  HttpClient client;
  HttpResult r = client.perform({"GET", raw.url("/v1/orders"), {}, "", 2000});
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(r.transient);
  EXPECT_EQ(r.body, "");
  EXPECT_TRUE(contains(r.error, "10 of 1000")) << r.error;
}

TEST(Http, ChunkedBodyDroppedMidChunkIsTransient) {
  RawServer raw([](Poco::Net::StreamSocket& socket, int) {
    readRequest(socket);
    sendAll(socket,
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n100\r\n0123456789");
  });
  HttpClient client;
  HttpResult r = client.perform({"GET", raw.url("/"), {}, "", 2000});
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(r.transient);
  EXPECT_TRUE(contains(r.error, "closed")) << r.error;
}

TEST(Http, ConnectionRefused) {
  uint16_t port;
  {
    Poco::Net::ServerSocket probe(Poco::Net::SocketAddress("127.0.0.1", 0));
    port = probe.address().port();
  }
  HttpClient client;
  HttpResult r = client.perform({"GET",
                                 "http://127.0.0.1:" + std::to_string(port) + "/x",
                                 {{"Authorization", "Basic c2VjcmV0"}},
                                 "",
                                 2000});
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(r.transient);
  EXPECT_FALSE(r.malformed);
  EXPECT_TRUE(contains(r.error, "refused")) << r.error;
  EXPECT_TRUE(contains(r.error, "127.0.0.1:" + std::to_string(port))) << r.error;
  EXPECT_FALSE(contains(r.error, "c2VjcmV0")) << r.error;
}

TEST(Http, ReconnectsWhenTheServerClosedTheIdleConnection) {
  std::promise<void> closed;
  RawServer raw([&closed](Poco::Net::StreamSocket& socket, int index) {
    readRequest(socket);
    sendAll(socket, okResponse(index == 0 ? "first" : "second"));
    if (index == 0) {
      socket.close();
      closed.set_value();
    }
  });
  HttpClient client;
  HttpResult one = client.perform({"GET", raw.url("/a"), {}, "", 3000});
  ASSERT_EQ(one.status, 200) << one.error;
  EXPECT_EQ(one.body, "first");
  closed.get_future().wait();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  HttpResult two = client.perform({"GET", raw.url("/b"), {}, "", 3000});
  ASSERT_EQ(two.status, 200) << two.error;
  EXPECT_EQ(two.body, "second");
  EXPECT_EQ(raw.connections(), 2);
}

TEST(Http, RetriesOnceWhenTheKeptConnectionDiesUnderTheRequest) {
  // The race the idle check cannot see: the server drops the kept connection just as the next
  // request arrives, having answered nothing.
  RawServer raw([](Poco::Net::StreamSocket& socket, int index) {
    if (index == 0) {
      readRequest(socket);
      sendAll(socket, okResponse("first"));
      readRequest(socket);  // ... and close without answering
    } else {
      readRequest(socket);
      sendAll(socket, okResponse("second"));
    }
  });
  HttpClient client;
  HttpResult one = client.perform({"GET", raw.url("/a"), {}, "", 3000});
  ASSERT_EQ(one.status, 200) << one.error;
  HttpResult two = client.perform({"GET", raw.url("/b"), {}, "", 3000});
  ASSERT_EQ(two.status, 200) << two.error;
  EXPECT_EQ(two.body, "second");
  EXPECT_EQ(raw.connections(), 2);
}

TEST(Http, MalformedCallsAreRefusedWithoutConnecting) {
  HttpClient client;
  for (const char* url : {"not a url", "ftp://example.com/file", "http://", "/v1/orders",
                          "http://127.0.0.1:0/", "http://exa mple.com/", "mailto:someone@x"}) {
    HttpResult r = client.perform({"GET", url, {}, "", 500});
    EXPECT_TRUE(r.malformed) << url;
    EXPECT_EQ(r.status, 0) << url;
    EXPECT_FALSE(r.transient) << url;
    EXPECT_FALSE(r.error.empty()) << url;
  }
  HttpResult bad_scheme = client.perform({"GET", "ftp://example.com/file", {}, "", 500});
  EXPECT_TRUE(contains(bad_scheme.error, "ftp")) << bad_scheme.error;

  HttpResult injected = client.perform(
      {"GET", "http://127.0.0.1:9/", {{"Authorization", "Bearer SECRET\r\nX-Evil: 1"}}, "", 500});
  EXPECT_TRUE(injected.malformed);
  EXPECT_FALSE(contains(injected.error, "SECRET")) << injected.error;
  HttpResult bad_method = client.perform({"GE T", "http://127.0.0.1:9/", {}, "", 500});
  EXPECT_TRUE(bad_method.malformed);
}

TEST(Http, ExplicitProxyReceivesAbsoluteUri) {
  TestServer proxy([](auto&, auto& response) { reply(response, 200, "via proxy"); });
  HttpSettings settings;
  settings.proxy = "http://127.0.0.1:" + std::to_string(proxy.port());
  HttpClient client(settings);
  HttpResult r = client.perform({"GET", "http://api.example.invalid/v1/orders?page=2", {}, "", 0});
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, "via proxy");
  auto got = proxy.received();
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].uri, "http://api.example.invalid:80/v1/orders?page=2");
}

class EnvGuard {
 public:
  EnvGuard(const char* name, const std::string& value) : name_(name) {
    const char* old = std::getenv(name);
    if (old) old_ = old;
    had_ = old != nullptr;
    setenv(name, value.c_str(), 1);
  }
  ~EnvGuard() {
    if (had_)
      setenv(name_, old_.c_str(), 1);
    else
      unsetenv(name_);
  }

 private:
  const char* name_;
  std::string old_;
  bool had_ = false;
};

TEST(Http, ProxyFromEnvironmentAndNoProxy) {
  TestServer proxy([](auto&, auto& response) { reply(response, 200, "via env proxy"); });
  EnvGuard http_proxy("http_proxy", "http://127.0.0.1:" + std::to_string(proxy.port()));
  EnvGuard no_proxy("no_proxy", "localhost, .internal.invalid");
  {
    HttpClient client;
    HttpResult r = client.perform({"GET", "http://api.example.invalid/x", {}, "", 2000});
    ASSERT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(r.body, "via env proxy");
  }
  {
    // Listed in no_proxy: goes direct (and cannot resolve), the proxy sees nothing.
    HttpClient client;
    HttpResult r = client.perform({"GET", "http://db.internal.invalid/x", {}, "", 2000});
    EXPECT_EQ(r.status, 0);
    EXPECT_TRUE(r.transient);
  }
  {
    // Loopback never goes through a proxy.
    TestServer direct([](auto&, auto& response) { reply(response, 200, "direct"); });
    HttpClient client;
    HttpResult r = client.perform({"GET", direct.url("/"), {}, "", 2000});
    ASSERT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(r.body, "direct");
  }
  EXPECT_EQ(proxy.received().size(), 1u);
}

// ---------------------------------------------------------------------------------------------
// HTTPS against a self-signed certificate made for the test.

class HttpsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    Poco::Net::initializeSSL();
    char pattern[] = "/tmp/ferry-https-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
    std::string cmd =
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
        "-keyout '" +
        dir_ + "/key.pem' -out '" + dir_ +
        "/cert.pem' -days 2 "
        "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1,DNS:localhost "
        ">'" +
        dir_ + "/openssl.log' 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << "openssl failed, see " << dir_ << "/openssl.log";
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(dir_);
    Poco::Net::uninitializeSSL();
  }

  static Poco::Net::Context::Ptr serverContext() {
    return new Poco::Net::Context(Poco::Net::Context::TLS_SERVER_USE, dir_ + "/key.pem",
                                  dir_ + "/cert.pem", "", Poco::Net::Context::VERIFY_NONE);
  }

  static std::string dir_;
};
std::string HttpsTest::dir_;

TEST_F(HttpsTest, SelfSignedIsRejectedByDefault) {
  TestServer server([](auto&, auto& response) { reply(response, 200, "secret data"); },
                    serverContext());
  HttpClient client;
  HttpResult r = client.perform({"GET", server.url("/", "https"), {}, "", 5000});
  EXPECT_EQ(r.status, 0);
  EXPECT_EQ(r.body, "");
  EXPECT_TRUE(contains(r.error, "not trusted")) << r.error;
  EXPECT_TRUE(contains(r.error, "127.0.0.1:" + std::to_string(server.port()))) << r.error;
  EXPECT_TRUE(server.received().empty());
}

TEST_F(HttpsTest, TrustedThroughCaFile) {
  TestServer server([](auto& request, auto& response) { reply(response, 200, request.getURI()); },
                    serverContext());
  HttpSettings settings;
  settings.ca_file = dir_ + "/cert.pem";
  HttpClient client(settings);
  for (int i = 0; i < 3; ++i) {
    HttpResult r =
        client.perform({"GET", server.url("/tls/" + std::to_string(i), "https"), {}, "", 5000});
    ASSERT_EQ(r.status, 200) << r.error;
    EXPECT_EQ(r.body, "/tls/" + std::to_string(i));
  }
  EXPECT_EQ(server.connections(), 1);
}

TEST_F(HttpsTest, AnyCertificateWhenVerificationIsOff) {
  TestServer server([](auto&, auto& response) { reply(response, 200, "ok"); }, serverContext());
  HttpSettings settings;
  settings.tls_verify = false;
  HttpClient client(settings);
  HttpResult r = client.perform({"POST", server.url("/", "https"), {}, "x", 5000});
  ASSERT_EQ(r.status, 200) << r.error;
  EXPECT_EQ(r.body, "ok");
  ASSERT_EQ(server.received().size(), 1u);
  EXPECT_EQ(server.received()[0].body, "x");
}

TEST_F(HttpsTest, MissingCaFileIsNamed) {
  HttpSettings settings;
  settings.ca_file = dir_ + "/does-not-exist.pem";
  HttpClient client(settings);
  HttpResult r = client.perform({"GET", "https://127.0.0.1:9/", {}, "", 1000});
  EXPECT_EQ(r.status, 0);
  EXPECT_TRUE(contains(r.error, "does-not-exist.pem")) << r.error;
}

}  // namespace
}  // namespace ferry::core
