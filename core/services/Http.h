// HTTP for plugins: Poco::Net over keep-alive connections, HTTPS verified against the system CA
// store, timeouts, proxies from the environment, and the classification the retry loop needs.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ferry::core {

struct HttpCall {
  std::string method = "GET";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  int64_t timeout_ms = 0;  // 0: HttpSettings::default_timeout_ms. One deadline for connecting,
                           // sending and reading the whole response (not per socket read).
};

struct HttpResult {
  int status = 0;  // 0: no response arrived
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  bool transient = false;       // isTransientStatus(status), or no response at all
  int64_t retry_after_ms = -1;  // from Retry-After, -1 when absent or unparseable
  std::string error;            // transport error when status == 0
  bool malformed = false;       // the call itself is wrong (bad URL, unsupported scheme)
};

struct HttpSettings {
  int64_t default_timeout_ms = 30000;
  bool tls_verify = true;
  std::string ca_file;  // "" = the system store (/etc/ssl/certs)
  std::string proxy;    // "" = from https_proxy / http_proxy (and no_proxy) in the environment
  std::string user_agent = std::string("ferry/") + FERRY_VERSION;
  // Kept connections per scheme://host:port, shared by every caller of one client; a call that
  // finds them all in use waits for one (within its timeout).
  int64_t max_connections_per_origin = 16;
  // The largest response body accepted; a larger one fails the call (transient) unread.
  int64_t max_body_bytes = 64 << 20;
  // Told of every exchange that was attempted (not of a malformed call): the status (0: no
  // response) and the seconds from the start of the call to its end. Called on the caller's
  // thread; must not throw.
  std::function<void(int status, double seconds)> on_exchange;
};

// One client per host, shared by every plugin instance: it keeps a pool of keep-alive
// connections per scheme://host:port (at most max_connections_per_origin each; a thousand
// sources polling one API share a handful) and reconnects once when a kept connection turns out
// closed. Thread-safe. Never throws: every failure is an HttpResult.
class HttpClient {
 public:
  explicit HttpClient(HttpSettings settings = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  HttpResult perform(const HttpCall& call);

 private:
  HttpResult performUnobserved(const HttpCall& call);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// 408, 425, 429 and every 5xx.
bool isTransientStatus(int status);

// Retry-After as delta-seconds ("120") or an HTTP-date; -1 when unparseable. A date in the past
// gives 0.
int64_t parseRetryAfterMs(std::string_view value, int64_t now_ms);

}  // namespace ferry::core
