// HTTPS without certificate verification, for `tls_verify = false` only.
//
// Why the sink carries this at all: the host's HTTP service (ferry::Host::http) verifies every
// certificate and the host API has no per-request switch yet (see the README, "TLS"). An
// operator who explicitly turns verification off for one endpoint (a test receiver with a
// self-signed certificate) gets this small client instead; everything else goes through the host.
// Drop it once ferry_http_request can carry the switch.
#pragma once

#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPSClientSession.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace ferry::rest {

// What came back from one request, whichever client sent it.
struct Reply {
  int status = 0;               // 0: no response arrived
  bool transient = false;       // 408/425/429/5xx, timeouts, refused or dropped connections
  int64_t retry_after_ms = -1;  // Retry-After, -1 when absent
  std::string body;
  std::string location;         // Location header (for the message of a redirect)
  std::string error;            // transport error when status == 0
};

class InsecureHttps {
 public:
  InsecureHttps(std::string host, uint16_t port);
  ~InsecureHttps();
  InsecureHttps(const InsecureHttps&) = delete;
  InsecureHttps& operator=(const InsecureHttps&) = delete;

  // POSTs `body` to `path_and_query` with `headers`. Never throws.
  Reply post(const std::string& path_and_query,
             const std::vector<std::pair<std::string, std::string>>& headers,
             const std::string& body, int64_t timeout_ms);

 private:
  std::string host_;
  uint16_t port_;
  Poco::Net::Context::Ptr context_;
  std::unique_ptr<Poco::Net::HTTPSClientSession> session_;
};

}  // namespace ferry::rest
