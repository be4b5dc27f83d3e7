#include "Receiver.h"

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/SecureServerSocket.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>
#include <Poco/StreamCopier.h>

#include <cctype>
#include <chrono>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "Harness.h"

namespace ferry::it {

class RecordingHandler : public Poco::Net::HTTPRequestHandler {
 public:
  explicit RecordingHandler(Receiver& receiver) : receiver_(receiver) {}

  void handleRequest(Poco::Net::HTTPServerRequest& in, Poco::Net::HTTPServerResponse& out) override {
    Request r;
    r.method = in.getMethod();
    r.uri = in.getURI();
    for (const auto& [name, value] : in) {
      std::string lower = name;
      for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r.headers[lower] = value;
    }
    std::ostringstream body;
    Poco::StreamCopier::copyStream(in.stream(), body);
    r.body = body.str();
    Answer a = receiver_.record(std::move(r));
    if (a.sleep_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(a.sleep_ms));
    try {
      out.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(a.status));
      if (!a.retry_after.empty()) out.set("Retry-After", a.retry_after);
      out.setContentType("text/plain");
      out.setContentLength64(static_cast<Poco::Int64>(a.body.size()));
      out.send() << a.body;
    } catch (...) {
      // The client gave up (timeout): nothing to answer to.
    }
  }

 private:
  Receiver& receiver_;
};

namespace {

class Factory : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit Factory(Receiver& receiver) : receiver_(receiver) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(
      const Poco::Net::HTTPServerRequest&) override {
    return new RecordingHandler(receiver_);
  }

 private:
  Receiver& receiver_;
};

}  // namespace

Receiver::Receiver(Poco::Net::Context::Ptr tls) : tls_(!tls.isNull()) {
  Poco::Net::SocketAddress address("127.0.0.1", 0);
  std::unique_ptr<Poco::Net::ServerSocket> socket;
  if (tls_)
    socket = std::make_unique<Poco::Net::SecureServerSocket>(address, 64, tls);
  else
    socket = std::make_unique<Poco::Net::ServerSocket>(address, 64);
  port_ = socket->address().port();
  auto* params = new Poco::Net::HTTPServerParams;
  params->setMaxThreads(8);
  params->setKeepAlive(true);
  server_ = std::make_unique<Poco::Net::HTTPServer>(new Factory(*this), *socket, params);
  server_->start();
}

Receiver::~Receiver() { server_->stopAll(true); }

void Receiver::setScript(Script script) {
  std::lock_guard<std::mutex> lock(mutex_);
  script_ = std::move(script);
}

std::string Receiver::url(const std::string& path) const {
  return std::string(tls_ ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_) + path;
}

std::vector<Request> Receiver::requests() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return requests_;
}

Answer Receiver::record(Request request) {
  std::lock_guard<std::mutex> lock(mutex_);
  Answer a = script_ ? script_(request, requests_.size()) : Answer{};
  request.answer = a;
  requests_.push_back(std::move(request));
  return a;
}

Poco::Net::Context::Ptr selfSignedContext(const std::string& dir) {
  RunResult gen = runCommand(
      {"openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", dir + "/key.pem",
       "-out", dir + "/cert.pem", "-days", "2", "-subj", "/CN=127.0.0.1"},
      dir, 60s);
  if (gen.exit_code != 0) throw std::runtime_error("openssl req failed: " + gen.err);
  using Poco::Net::Context;
  return new Context(Context::SERVER_USE, dir + "/key.pem", dir + "/cert.pem", "",
                     Context::VERIFY_NONE);
}

}  // namespace ferry::it
