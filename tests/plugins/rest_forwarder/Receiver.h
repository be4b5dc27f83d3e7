// A webhook receiver for the sink_rest_forwarder tests: a real Poco HTTP(S) server on 127.0.0.1
// (ephemeral port) that records every request it receives (headers and exact body bytes) and
// answers from a script the test supplies.
#pragma once

#include <Poco/Net/Context.h>
#include <Poco/Net/HTTPServer.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace ferry::it {

// What the receiver answers to one request.
struct Answer {
  int status = 200;
  std::string body;
  std::string retry_after;  // Retry-After header value, omitted when empty
  int64_t sleep_ms = 0;     // wait this long before answering (to provoke a client timeout)
};

// One request as it arrived.
struct Request {
  std::string method;
  std::string uri;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string body;                            // exact bytes
  Answer answer;                               // what the receiver answered

  std::string header(const std::string& lower_name) const {
    auto it = headers.find(lower_name);
    return it == headers.end() ? std::string() : it->second;
  }
};

class Receiver {
 public:
  // `index` counts requests from 0 in arrival order. The default script answers 200.
  using Script = std::function<Answer(const Request& request, size_t index)>;

  // Plain HTTP; with `tls` (a server Context) HTTPS.
  explicit Receiver(Poco::Net::Context::Ptr tls = nullptr);
  ~Receiver();
  Receiver(const Receiver&) = delete;
  Receiver& operator=(const Receiver&) = delete;

  void setScript(Script script);
  std::string url(const std::string& path = "/hook") const;
  uint16_t port() const { return port_; }
  // A copy of everything recorded so far.
  std::vector<Request> requests() const;

 private:
  friend class RecordingHandler;
  Answer record(Request request);

  mutable std::mutex mutex_;
  std::vector<Request> requests_;
  Script script_;
  bool tls_ = false;
  uint16_t port_ = 0;
  std::unique_ptr<Poco::Net::HTTPServer> server_;
};

// A server Context with a fresh self-signed certificate for 127.0.0.1, which no client trusts
// (key.pem and cert.pem written into `dir` by openssl). Call Poco::Net::initializeSSL() first.
// Throws std::runtime_error when openssl fails.
Poco::Net::Context::Ptr selfSignedContext(const std::string& dir);

}  // namespace ferry::it
