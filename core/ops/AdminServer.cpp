#include "ops/AdminServer.h"

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/Net/SocketAddress.h>

#include <sstream>

#include "delivery/Delivery.h"

namespace ferry::core {
namespace {

using Poco::Net::HTTPResponse;

class Handler : public Poco::Net::HTTPRequestHandler {
 public:
  Handler(const Config& config, HostServices& services) : config_(config), services_(services) {}

  void handleRequest(Poco::Net::HTTPServerRequest& request,
                     Poco::Net::HTTPServerResponse& response) override {
    std::string body;
    std::string type = "text/plain; charset=utf-8";
    try {
      if (request.getURI() == "/healthz") {
        std::ostringstream out;
        bool healthy = true;
        out << "{\"instances\":[";
        bool first = true;
        for (const auto& s : services_.instance_state.statuses()) {
          if (!first) out << ",";
          first = false;
          healthy = healthy && s.state != "stopped";
          out << "{\"name\":\"" << s.name << "\",\"kind\":\"" << s.kind << "\",\"state\":\""
              << s.state << "\"}";
        }
        out << "],\"healthy\":" << (healthy ? "true" : "false") << "}\n";
        body = out.str();
        type = "application/json";
        response.setStatus(healthy ? HTTPResponse::HTTP_OK
                                   : HTTPResponse::HTTP_SERVICE_UNAVAILABLE);
      } else if (request.getURI() == "/metrics") {
        std::ostringstream out;
        out << services_.metrics.render();
        EventLog& log = services_.event_log;
        SinkLedger& ledger = services_.ledger;
        out << "# TYPE ferry_journal_last_sequence gauge\nferry_journal_last_sequence "
            << log.lastSequence() << "\n# TYPE ferry_sink_offset gauge\n";
        for (const auto& sink : config_.sinks)
          if (sink.enabled)
            out << "ferry_sink_offset{instance=\"" << sink.name << "\"} "
                << ledger.sinkOffset(sink.name) << "\n";
        out << "# TYPE ferry_sink_backlog gauge\n";
        for (const auto& sink : config_.sinks)
          if (sink.enabled)
            out << "ferry_sink_backlog{instance=\"" << sink.name << "\"} "
                << backlog(log, ledger, sink) << "\n";
        out << "# TYPE ferry_dead_letters gauge\n";
        for (const auto& sink : config_.sinks)
          if (sink.enabled)
            out << "ferry_dead_letters{instance=\"" << sink.name << "\"} "
                << ledger.deadLetters(sink.name).size() << "\n";
        body = out.str();
        type = "text/plain; version=0.0.4";
        response.setStatus(HTTPResponse::HTTP_OK);
      } else {
        body = "not found: try /healthz or /metrics\n";
        response.setStatus(HTTPResponse::HTTP_NOT_FOUND);
      }
    } catch (const std::exception& e) {
      body = std::string("error: ") + e.what() + "\n";
      response.setStatus(HTTPResponse::HTTP_INTERNAL_SERVER_ERROR);
    }
    response.setContentType(type);
    response.setContentLength(static_cast<std::streamsize>(body.size()));
    response.send() << body;
  }

 private:
  const Config& config_;
  HostServices& services_;
};

class Factory : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  Factory(const Config& config, HostServices& services) : config_(config), services_(services) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(
      const Poco::Net::HTTPServerRequest&) override {
    return new Handler(config_, services_);
  }

 private:
  const Config& config_;
  HostServices& services_;
};

}  // namespace

AdminServer::AdminServer(const Config& config, HostServices& services,
                         const std::string& listen) {
  try {
    Poco::Net::ServerSocket socket{Poco::Net::SocketAddress(listen)};
    auto* params = new Poco::Net::HTTPServerParams;
    params->setMaxThreads(2);
    server_ = std::make_unique<Poco::Net::HTTPServer>(new Factory(config, services), socket,
                                                      params);
    server_->start();
  } catch (const Poco::Exception& e) {
    throw ConfigError(config.file + ": [host] admin_listen: cannot listen on '" + listen +
                      "': " + e.displayText());
  }
}

AdminServer::~AdminServer() {
  if (server_) server_->stopAll(true);
}

uint16_t AdminServer::port() const { return server_->port(); }

}  // namespace ferry::core
