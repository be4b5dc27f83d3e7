#include "services/Http.h"

#include <Poco/DateTime.h>
#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeFormatter.h>
#include <Poco/DateTimeParser.h>
#include <Poco/Exception.h>
#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPSClientSession.h>
#include <Poco/Net/NetException.h>
#include <Poco/Net/SSLException.h>
#include <Poco/Net/SSLManager.h>
#include <Poco/Net/Socket.h>
#include <Poco/URI.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>

#include "services/Time.h"

namespace ferry::core {
namespace {

using Clock = std::chrono::steady_clock;

// Poco's SSL layer must be initialised once per process before the first Context is built; plugin
// instances create clients from several threads.
void ensureSslInitialised() {
  static std::once_flag once;
  std::call_once(once, [] { Poco::Net::initializeSSL(); });
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

// RFC 9110 token characters: what a method and a header name may consist of.
bool isToken(std::string_view s) {
  if (s.empty()) return false;
  for (unsigned char c : s) {
    if (c <= 0x20 || c >= 0x7f ||
        std::string_view("\"(),/:;<=>?@[\\]{}").find(static_cast<char>(c)) !=
            std::string_view::npos)
      return false;
  }
  return true;
}

// A header value must not smuggle a second header or a second request in.
bool isSafeHeaderValue(std::string_view s) {
  return s.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos;
}

struct Target {
  std::string scheme;  // "http" or "https"
  std::string host;    // as Poco connects to it (no brackets for IPv6)
  uint16_t port = 0;
  std::string request_target;  // path and query exactly as the caller encoded them
  std::string host_port;       // for messages
  std::string display;         // scheme://host:port/path, no query and no user info: messages
                               // must not leak tokens that some APIs take in the query string
};

std::optional<Target> parseTarget(const std::string& url, std::string& why) {
  for (unsigned char c : url) {
    if (c <= 0x20 || c == 0x7f) {
      why = "the URL contains a space or a control character (encode it)";
      return std::nullopt;
    }
  }
  Poco::URI uri;
  try {
    uri = Poco::URI(url);
  } catch (const Poco::Exception& e) {
    why = "cannot parse the URL: " + e.message();
    return std::nullopt;
  }
  Target t;
  t.scheme = lower(uri.getScheme());
  if (t.scheme.empty()) {
    why = "the URL is not absolute (it needs http:// or https://)";
    return std::nullopt;
  }
  if (t.scheme != "http" && t.scheme != "https") {
    why = "unsupported scheme '" + t.scheme + "' (only http and https)";
    return std::nullopt;
  }
  t.host = uri.getHost();
  if (t.host.empty()) {
    why = "the URL has no host";
    return std::nullopt;
  }
  t.port = uri.getPort();
  if (t.port == 0) {
    why = "the URL has port 0";
    return std::nullopt;
  }
  // Poco::URI decodes the path and encodes it again on the way out, which turns an encoded
  // "%2F" inside an id into a real "/": take the caller's bytes instead.
  size_t authority = url.find("://") + 3;
  size_t start = url.find_first_of("/?#", authority);
  std::string rest = start == std::string::npos ? std::string() : url.substr(start);
  if (size_t hash = rest.find('#'); hash != std::string::npos) rest.resize(hash);
  if (rest.empty() || rest.front() == '?') rest.insert(0, "/");
  t.request_target = rest;
  bool ipv6 = t.host.find(':') != std::string::npos;
  t.host_port = (ipv6 ? "[" + t.host + "]" : t.host) + ":" + std::to_string(t.port);
  t.display = t.scheme + "://" + t.host_port + rest.substr(0, rest.find('?'));
  return t;
}

struct ProxySpec {
  std::string host;
  uint16_t port = 0;
  std::string user;
  std::string password;
};

std::string envVar(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

// A proxy cannot reach this machine's loopback interface, so loopback is never proxied (Go's
// net/http does the same); tests and local simulators keep working on machines with a proxy.
bool isLoopback(const std::string& host) {
  std::string h = lower(host);
  return h == "localhost" || h == "::1" || h.rfind("127.", 0) == 0 ||
         (h.size() > 10 && h.compare(h.size() - 10, 10, ".localhost") == 0);
}

// curl's reading of no_proxy: comma-separated host names or domain suffixes, "*" for all.
bool noProxyMatches(const std::string& host) {
  std::string list = envVar("no_proxy");
  if (list.empty()) list = envVar("NO_PROXY");
  std::string h = lower(host);
  size_t pos = 0;
  while (pos <= list.size()) {
    size_t comma = list.find(',', pos);
    std::string entry =
        lower(trim(list.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos)));
    pos = comma == std::string::npos ? list.size() + 1 : comma + 1;
    if (entry.empty()) continue;
    if (entry == "*") return true;
    if (std::count(entry.begin(), entry.end(), ':') == 1) entry.resize(entry.find(':'));
    if (entry.front() == '.') entry.erase(0, 1);
    if (h == entry) return true;
    if (h.size() > entry.size() && h.compare(h.size() - entry.size(), entry.size(), entry) == 0 &&
        h[h.size() - entry.size() - 1] == '.')
      return true;
  }
  return false;
}

// Parses "http://user:pass@host:port", "host:port" or "host" (port 80 for plain http proxies).
std::optional<ProxySpec> parseProxy(const std::string& text, std::string& why) {
  std::string s = trim(text);
  if (s.find("://") == std::string::npos) s = "http://" + s;
  try {
    Poco::URI uri(s);
    if (lower(uri.getScheme()) != "http") {
      why = "only http:// proxies are supported";
      return std::nullopt;
    }
    ProxySpec p;
    p.host = uri.getHost();
    p.port = uri.getPort();
    if (p.host.empty() || p.port == 0) {
      why = "the proxy has no host or port";
      return std::nullopt;
    }
    std::string info = uri.getUserInfo();
    if (!info.empty()) {
      size_t colon = info.find(':');
      Poco::URI::decode(info.substr(0, colon), p.user);
      if (colon != std::string::npos) Poco::URI::decode(info.substr(colon + 1), p.password);
    }
    return p;
  } catch (const Poco::Exception&) {
    why = "cannot parse the proxy URL";
    return std::nullopt;
  }
}

// What the perform loop needs from a session beyond Poco's public API: the buffered raw reads
// (the body is read by hand, see readBody) and whether Poco will reconnect on its own.
class Connection {
 public:
  virtual ~Connection() = default;
  virtual Poco::Net::HTTPClientSession& http() = 0;
  virtual int rawGet() = 0;
  virtual int rawRead(char* buffer, std::streamsize length) = 0;
  virtual bool willReconnect() const = 0;
};

template <class Base>
class ConnectionOf final : public Base, public Connection {
 public:
  template <class... Args>
  explicit ConnectionOf(Args&&... args) : Base(std::forward<Args>(args)...) {}
  Poco::Net::HTTPClientSession& http() override { return *this; }
  int rawGet() override { return Base::get(); }
  int rawRead(char* buffer, std::streamsize length) override { return Base::read(buffer, length); }
  bool willReconnect() const override { return Base::mustReconnect(); }
};

// The body was cut short or is not valid HTTP framing; nothing usable arrived.
struct BodyError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Enforces the call's timeout as one deadline for the whole exchange, not per socket read: a
// server that trickles a byte every few seconds would otherwise hold the caller forever.
class Deadline {
 public:
  Deadline(Connection& conn, int64_t timeout_ms)
      : conn_(conn), end_(Clock::now() + std::chrono::milliseconds(timeout_ms)) {}

  Poco::Timespan remaining() const {
    auto left = std::chrono::duration_cast<std::chrono::microseconds>(end_ - Clock::now()).count();
    if (left <= 0) throw Poco::TimeoutException("deadline passed");
    return Poco::Timespan(std::max<int64_t>(left, 1000));
  }

  // Re-arms the socket's receive timeout before a read; only every 100 ms, because a chunk
  // header is read one byte at a time (from Poco's buffer, mostly).
  void arm() {
    auto now = Clock::now();
    if (now - armed_at_ < std::chrono::milliseconds(100)) return;
    conn_.http().socket().setReceiveTimeout(remaining());
    armed_at_ = now;
  }

 private:
  Connection& conn_;
  Clock::time_point end_;
  Clock::time_point armed_at_{};
};

std::string readLine(Connection& conn, Deadline& deadline, const char* where) {
  std::string line;
  for (;;) {
    deadline.arm();
    int ch = conn.rawGet();
    if (ch == std::char_traits<char>::eof())
      throw BodyError(std::string("connection closed in the middle of the ") + where);
    if (ch == '\n') break;
    if (line.size() > 8192) throw BodyError("chunked body framing line too long");
    line.push_back(static_cast<char>(ch));
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

// A body over the limit is refused: a hostile or broken server must not fill the host's memory.
void checkLimit(uint64_t size, int64_t limit, const char* what) {
  if (size > static_cast<uint64_t>(limit))
    throw BodyError(std::string(what) + " " + std::to_string(size) +
                    " bytes, over the limit of " + std::to_string(limit) + " bytes");
}

// Reads the status line and headers by hand, under the call's one deadline: Poco's
// receiveResponse gives every socket read the whole timeout again, so a server trickling its head
// a byte at a time would hold the caller for as long as it likes.
void readHead(Connection& conn, Deadline& deadline, Poco::Net::HTTPResponse& response) {
  constexpr size_t kMaxHead = 64 * 1024;
  do {
    std::string head;
    for (;;) {
      deadline.arm();
      const int ch = conn.rawGet();
      if (ch == std::char_traits<char>::eof()) {
        if (head.empty()) throw Poco::Net::NoMessageException();
        throw BodyError("connection closed in the middle of the response head");
      }
      head.push_back(static_cast<char>(ch));
      if (head.size() > kMaxHead) throw BodyError("response head larger than 64 KiB");
      if (head.size() >= 2 && head.back() == '\n' &&
          (head[head.size() - 2] == '\n' ||
           (head.size() >= 4 && head.compare(head.size() - 4, 4, "\r\n\r\n") == 0)))
        break;
    }
    response.clear();
    std::istringstream in(head);
    response.read(in);
  } while (response.getStatus() == Poco::Net::HTTPResponse::HTTP_CONTINUE);
}

void readExactly(Connection& conn, Deadline& deadline, size_t n, std::string& out,
                 const std::string& what) {
  char buffer[16384];
  size_t got = 0;
  while (got < n) {
    deadline.arm();
    int r = conn.rawRead(buffer, static_cast<std::streamsize>(std::min(sizeof buffer, n - got)));
    if (r <= 0)
      throw BodyError("connection closed after " + std::to_string(got) + " of " +
                      std::to_string(n) + " " + what);
    out.append(buffer, static_cast<size_t>(r));
    got += static_cast<size_t>(r);
  }
}

// Reads the body by hand instead of through Poco's body streams: those end quietly at EOF, so a
// connection dropped mid-body would look like a complete (truncated) page.
void readBody(Connection& conn, Deadline& deadline, const Poco::Net::HTTPResponse& response,
              bool head, int64_t limit, std::string& body) {
  int status = static_cast<int>(response.getStatus());
  if (head || status < 200 || status == 204 || status == 304) return;
  if (response.getChunkedTransferEncoding()) {
    for (;;) {
      std::string line = readLine(conn, deadline, "chunk size");
      std::string size_text = trim(line.substr(0, line.find(';')));
      size_t size = 0;
      if (size_text.empty() || size_text.size() > 15 ||
          size_text.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
        throw BodyError("malformed chunk size '" + size_text.substr(0, 20) + "'");
      size = std::stoull(size_text, nullptr, 16);
      if (size == 0) break;
      checkLimit(body.size() + size, limit, "a chunked body of at least");
      readExactly(conn, deadline, size, body, "bytes of a chunk");
      if (!readLine(conn, deadline, "chunk end").empty())
        throw BodyError("malformed chunked body (no line end after a chunk)");
    }
    // Trailers, up to the empty line that ends the message.
    while (!readLine(conn, deadline, "trailer").empty()) {
    }
    return;
  }
  if (response.getContentLength64() != Poco::Net::HTTPMessage::UNKNOWN_CONTENT_LENGTH) {
    int64_t length = response.getContentLength64();
    if (length < 0) throw BodyError("negative Content-Length");
    checkLimit(static_cast<uint64_t>(length), limit, "a body of");
    body.reserve(static_cast<size_t>(std::min<int64_t>(length, 64 << 20)));
    readExactly(conn, deadline, static_cast<size_t>(length), body, "body bytes");
    return;
  }
  // Neither length nor chunks: the body ends when the server closes the connection.
  char buffer[16384];
  for (;;) {
    deadline.arm();
    int r = conn.rawRead(buffer, sizeof buffer);
    if (r <= 0) break;
    body.append(buffer, static_cast<size_t>(r));
    checkLimit(body.size(), limit, "a body of at least");
  }
  conn.http().reset();
}

enum class Stage { kConnecting, kWaiting, kReadingBody };

std::string stageText(Stage stage, const std::string& host_port) {
  switch (stage) {
    case Stage::kConnecting:
      return "connecting to " + host_port + " and sending the request";
    case Stage::kWaiting:
      return "waiting for the response from " + host_port;
    case Stage::kReadingBody:
      return "reading the response body from " + host_port;
  }
  return host_port;
}

bool mentionsCertificate(const std::string& text) {
  std::string l = lower(text);
  return l.find("certificate") != std::string::npos;
}

}  // namespace

bool isTransientStatus(int status) {
  return status == 408 || status == 425 || status == 429 || (status >= 500 && status <= 599);
}

namespace {

// An HTTP-date in any of the three forms RFC 9110 allows; nullopt for anything else. Poco's
// parser alone is lenient (it reads "soon" as a date): only text that formats back to itself is
// accepted. HTTP dates are always GMT.
std::optional<int64_t> parseHttpDateMs(const std::string& text) {
  static const std::string* const kFormats[] = {&Poco::DateTimeFormat::HTTP_FORMAT,
                                                &Poco::DateTimeFormat::RFC850_FORMAT,
                                                &Poco::DateTimeFormat::ASCTIME_FORMAT};
  for (const std::string* format : kFormats) {
    Poco::DateTime when;
    int tzd = 0;
    if (Poco::DateTimeParser::tryParse(*format, text, when, tzd) && tzd == 0 &&
        Poco::DateTimeFormatter::format(when, *format, Poco::DateTimeFormatter::UTC) == text)
      return when.timestamp().epochMicroseconds() / 1000;
  }
  return std::nullopt;
}

}  // namespace

int64_t parseRetryAfterMs(std::string_view value, int64_t now_ms) {
  std::string v = trim(value);
  if (v.empty()) return -1;
  if (v.find_first_not_of("0123456789") == std::string::npos) {
    // Anything past a year is nonsense or an attack on our wait; clamp instead of overflowing.
    if (v.size() > 8) return int64_t{365} * 86400 * 1000;
    return std::min<int64_t>(std::stoll(v), int64_t{365} * 86400) * 1000;
  }
  std::optional<int64_t> at_ms = parseHttpDateMs(v);
  if (!at_ms) return -1;
  return std::max<int64_t>(0, *at_ms - now_ms);
}

// Kept connections per scheme://host:port, shared by every caller of the client. A call borrows
// an idle one (the most recently used first, so that a quiet period lets the others time out at
// the server), or opens one while the origin has fewer than max_connections_per_origin, or
// waits (within its deadline) for one to come back.
struct HttpClient::Impl {
  HttpSettings settings;
  struct Pool {
    std::vector<std::unique_ptr<Connection>> idle;
    size_t open = 0;  // idle and borrowed
  };
  std::mutex mutex;  // pools, tls
  std::condition_variable returned;
  std::map<std::string, Pool> pools;
  Poco::Net::Context::Ptr tls;

  HttpResult perform(const HttpCall& call);
  // A connection to `target` for this call alone, or null with `why` (proxy setting, TLS set-up,
  // no connection free before `end`).
  std::unique_ptr<Connection> borrow(const Target& target, Clock::time_point end,
                                     std::string& why);
  void giveBack(const Target& target, std::unique_ptr<Connection> conn);
  std::unique_ptr<Connection> connect(const Target& target, std::string& why);  // mutex held
};

std::string originOf(const Target& target) { return target.scheme + "://" + target.host_port; }

std::unique_ptr<Connection> HttpClient::Impl::borrow(const Target& target, Clock::time_point end,
                                                     std::string& why) {
  std::unique_lock lock(mutex);
  Pool& pool = pools[originOf(target)];
  const size_t cap = static_cast<size_t>(std::max<int64_t>(1, settings.max_connections_per_origin));
  for (;;) {
    if (!pool.idle.empty()) {
      auto conn = std::move(pool.idle.back());
      pool.idle.pop_back();
      return conn;
    }
    if (pool.open < cap) {
      auto conn = connect(target, why);
      if (conn) ++pool.open;
      return conn;
    }
    if (returned.wait_until(lock, end) == std::cv_status::timeout && pool.idle.empty()) {
      why = "no connection to " + target.host_port + " became free in time (all " +
            std::to_string(cap) + " in use)";
      return nullptr;
    }
  }
}

void HttpClient::Impl::giveBack(const Target& target, std::unique_ptr<Connection> conn) {
  {
    std::lock_guard lock(mutex);
    // A connection reset after an error reconnects on its next use: it stays in the pool.
    pools[originOf(target)].idle.push_back(std::move(conn));
  }
  returned.notify_one();
}

std::unique_ptr<Connection> HttpClient::Impl::connect(const Target& target, std::string& why) {

  std::optional<ProxySpec> proxy;
  if (!isLoopback(target.host)) {
    std::string proxy_text = settings.proxy;
    if (proxy_text.empty() && !noProxyMatches(target.host)) {
      proxy_text = target.scheme == "https" ? envVar("https_proxy") : envVar("http_proxy");
      // Upper-case HTTP_PROXY is ignored on purpose (as curl does): CGI puts a request's
      // "Proxy:" header there.
      if (proxy_text.empty() && target.scheme == "https") proxy_text = envVar("HTTPS_PROXY");
    }
    if (!proxy_text.empty()) {
      std::string proxy_why;
      proxy = parseProxy(proxy_text, proxy_why);
      if (!proxy) {
        why = "invalid proxy setting: " + proxy_why;
        return nullptr;
      }
    }
  }

  std::unique_ptr<Connection> conn;
  if (target.scheme == "https") {
    if (!tls) {
      ensureSslInitialised();
      try {
        using Poco::Net::Context;
        if (!settings.tls_verify) {
          tls = new Context(Context::TLS_CLIENT_USE, "", Context::VERIFY_NONE, 9, false);
        } else if (!settings.ca_file.empty()) {
          tls = new Context(Context::TLS_CLIENT_USE, settings.ca_file, Context::VERIFY_STRICT, 9,
                            false);
        } else {
          // OpenSSL's default paths are Debian's /etc/ssl/certs (and honour SSL_CERT_FILE).
          tls = new Context(Context::TLS_CLIENT_USE, "", Context::VERIFY_STRICT, 9, true);
        }
        tls->requireMinimumProtocol(Context::PROTO_TLSV1_2);
      } catch (const Poco::Exception& e) {
        tls.reset();
        why = settings.ca_file.empty()
                  ? "cannot set up TLS: " + e.displayText()
                  : "cannot load ca_file '" + settings.ca_file + "': " + e.displayText();
        return nullptr;
      }
    }
    conn = std::make_unique<ConnectionOf<Poco::Net::HTTPSClientSession>>(target.host, target.port,
                                                                         tls);
  } else {
    conn = std::make_unique<ConnectionOf<Poco::Net::HTTPClientSession>>(target.host, target.port);
  }
  conn->http().setKeepAlive(true);
  if (proxy) {
    conn->http().setProxy(proxy->host, proxy->port);
    if (!proxy->user.empty()) conn->http().setProxyCredentials(proxy->user, proxy->password);
  }
  return conn;
}

HttpResult HttpClient::Impl::perform(const HttpCall& call) {
  HttpResult result;
  std::string why;
  std::optional<Target> target = parseTarget(call.url, why);
  if (!target) {
    result.malformed = true;
    result.error = "malformed request: " + why;
    return result;
  }
  if (!isToken(call.method)) {
    result.malformed = true;
    result.error = "malformed request: invalid method '" + call.method.substr(0, 32) + "'";
    return result;
  }
  for (const auto& [name, value] : call.headers) {
    if (!isToken(name) || !isSafeHeaderValue(value)) {
      result.malformed = true;
      // The value is never echoed: it may be a credential.
      result.error = "malformed request: invalid header '" + name.substr(0, 64) +
                     "' (header names are tokens, values must not contain CR, LF or NUL)";
      return result;
    }
  }
  const std::string prefix = call.method + " " + target->display + ": ";
  const int64_t timeout_ms = call.timeout_ms > 0 ? call.timeout_ms : settings.default_timeout_ms;
  // One deadline for the whole exchange, the wait for a free connection included.
  const Clock::time_point end = Clock::now() + std::chrono::milliseconds(timeout_ms);

  std::unique_ptr<Connection> borrowed = borrow(*target, end, why);
  if (!borrowed) {
    result.transient = !why.empty() && why.rfind("no connection", 0) == 0;
    result.error = prefix + why;
    return result;
  }
  // Back to the pool however the exchange ends.
  struct Return {
    Impl& impl;
    const Target& target;
    std::unique_ptr<Connection>& conn;
    ~Return() { impl.giveBack(target, std::move(conn)); }
  } give_back{*this, *target, borrowed};
  Connection* conn = borrowed.get();

  for (int attempt = 0; attempt < 2; ++attempt) {
    Poco::Net::HTTPClientSession& session = conn->http();
    // An idle kept connection that has become readable was closed (or spoken to) by the server:
    // drop it now rather than find out after sending.
    bool reused = false;
    try {
      if (session.connected() && !conn->willReconnect()) {
        if (session.socket().poll(Poco::Timespan(0),
                                  Poco::Net::Socket::SELECT_READ | Poco::Net::Socket::SELECT_ERROR))
          session.reset();
        else
          reused = true;
      }
    } catch (const Poco::Exception&) {
      session.reset();
    }

    Stage stage = Stage::kConnecting;
    const int64_t left_ms = std::max<int64_t>(
        1, std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count());
    Deadline deadline(*conn, left_ms);
    try {
      Poco::Timespan span(left_ms * 1000);
      session.setTimeout(span, span, span);
      if (session.connected()) {
        session.socket().setReceiveTimeout(span);
        session.socket().setSendTimeout(span);
      }
      Poco::Net::HTTPRequest request(call.method, target->request_target,
                                     Poco::Net::HTTPMessage::HTTP_1_1);
      bool has_agent = false;
      for (const auto& [name, value] : call.headers) {
        if (iequals(name, "Content-Length") || iequals(name, "Transfer-Encoding")) continue;
        if (iequals(name, "User-Agent")) has_agent = true;
        if (iequals(name, "Host")) {
          request.setHost(value);
          continue;
        }
        request.add(name, value);
      }
      if (!has_agent && !settings.user_agent.empty())
        request.set("User-Agent", settings.user_agent);
      const bool head = iequals(call.method, "HEAD");
      if (!call.body.empty() || call.method == "POST" || call.method == "PUT" ||
          call.method == "PATCH")
        request.setContentLength64(static_cast<Poco::Int64>(call.body.size()));

      std::ostream& out = session.sendRequest(request);
      out.write(call.body.data(), static_cast<std::streamsize>(call.body.size()));
      out.flush();
      if (!out) {
        if (session.networkException()) session.networkException()->rethrow();
        throw Poco::IOException("sending the request failed");
      }

      stage = Stage::kWaiting;
      Poco::Net::HTTPResponse response;
      readHead(*conn, deadline, response);

      stage = Stage::kReadingBody;
      std::string body;
      readBody(*conn, deadline, response, head, settings.max_body_bytes, body);
      // The head was read by hand, so Poco does not know the server ends the connection.
      if (!response.getKeepAlive()) session.reset();

      result.status = static_cast<int>(response.getStatus());
      for (const auto& [name, value] : response) result.headers.emplace_back(name, value);
      result.body = std::move(body);
      result.transient = isTransientStatus(result.status);
      if (response.has("Retry-After")) {
        // Relative to the server's own Date when it sends one: immune to our clock's skew.
        int64_t now_ms = nowMs();
        if (response.has("Date"))
          now_ms = parseHttpDateMs(trim(response.get("Date"))).value_or(now_ms);
        result.retry_after_ms = parseRetryAfterMs(response.get("Retry-After"), now_ms);
      }
      return result;
    } catch (const Poco::TimeoutException&) {
      session.reset();
      result.transient = true;
      result.error = prefix + "timed out after " + std::to_string(timeout_ms) + " ms " +
                     stageText(stage, target->host_port);
      return result;
    } catch (const Poco::Net::ConnectionRefusedException&) {
      session.reset();
      result.transient = true;
      result.error =
          prefix + "connection refused by " + target->host_port + " (nothing listening there?)";
      return result;
    } catch (const Poco::Net::DNSException& e) {
      session.reset();
      result.transient = true;
      result.error = prefix + "cannot resolve host '" + target->host + "': " + e.displayText();
      return result;
    } catch (const Poco::Net::CertificateValidationException& e) {
      session.reset();
      // Not transient: retrying will not make the certificate trusted; the operator must act.
      result.error = prefix + "TLS certificate of " + target->host_port +
                     " not accepted (not trusted, or not issued for '" + target->host +
                     "'): " + e.displayText() +
                     " (set ca_file for a private CA, or tls_verify=false to accept any)";
      return result;
    } catch (const Poco::Net::SSLConnectionUnexpectedlyClosedException&) {
      session.reset();
      result.transient = true;
      result.error = prefix + "connection closed by " + target->host_port + " while " +
                     stageText(stage, target->host_port);
      return result;
    } catch (const Poco::Net::SSLException& e) {
      session.reset();
      if (mentionsCertificate(e.displayText())) {
        result.error = prefix + "TLS handshake with " + target->host_port +
                       " failed, the server's certificate is not trusted: " + e.displayText() +
                       " (set ca_file for a private CA, or tls_verify=false to accept any)";
      } else {
        result.transient = true;
        result.error = prefix + "TLS error while " + stageText(stage, target->host_port) + ": " +
                       e.displayText();
      }
      return result;
    } catch (const Poco::Net::NoMessageException&) {
      session.reset();
      if (reused && attempt == 0) continue;  // the server had closed the kept connection
      result.transient = true;
      result.error = prefix + target->host_port + " closed the connection without a response";
      return result;
    } catch (const Poco::Net::ConnectionResetException&) {
      session.reset();
      if (reused && attempt == 0 && stage != Stage::kReadingBody) continue;
      result.transient = true;
      result.error = prefix + "connection reset by " + target->host_port + " while " +
                     stageText(stage, target->host_port);
      return result;
    } catch (const Poco::Net::ConnectionAbortedException&) {
      session.reset();
      if (reused && attempt == 0 && stage != Stage::kReadingBody) continue;
      result.transient = true;
      result.error = prefix + "connection aborted while " + stageText(stage, target->host_port);
      return result;
    } catch (const BodyError& e) {
      session.reset();
      result.transient = true;
      result.error = prefix + "incomplete response from " + target->host_port + ": " + e.what();
      return result;
    } catch (const Poco::Net::MessageException& e) {
      session.reset();
      result.transient = true;
      result.error =
          prefix + "malformed response from " + target->host_port + ": " + e.displayText();
      return result;
    } catch (const Poco::Exception& e) {
      session.reset();
      result.transient = true;
      result.error =
          prefix + "error while " + stageText(stage, target->host_port) + ": " + e.displayText();
      return result;
    } catch (const std::exception& e) {
      session.reset();
      result.transient = true;
      result.error =
          prefix + "error while " + stageText(stage, target->host_port) + ": " + e.what();
      return result;
    }
  }
  result.transient = true;
  result.error = prefix + target->host_port + " closed the connection twice without a response";
  return result;
}

HttpClient::HttpClient(HttpSettings settings) : impl_(std::make_unique<Impl>()) {
  impl_->settings = std::move(settings);
}

HttpClient::~HttpClient() = default;

HttpResult HttpClient::perform(const HttpCall& call) {
  const auto start = std::chrono::steady_clock::now();
  HttpResult result = performUnobserved(call);
  if (impl_->settings.on_exchange && !result.malformed)
    impl_->settings.on_exchange(
        result.status,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  return result;
}

HttpResult HttpClient::performUnobserved(const HttpCall& call) {
  try {
    return impl_->perform(call);
  } catch (const std::exception& e) {
    HttpResult result;
    result.transient = true;
    result.error = std::string("internal error in the HTTP client: ") + e.what();
    return result;
  } catch (...) {
    HttpResult result;
    result.transient = true;
    result.error = "internal error in the HTTP client";
    return result;
  }
}

}  // namespace ferry::core
