// The local operations endpoint: GET /healthz (200 while every source and sink runs, 503 with
// the stopped ones otherwise) and GET /metrics (Prometheus text: the host's counters and gauges,
// plus journal figures: last sequence, each sink's offset and backlog, dead letters).
#pragma once

#include <memory>
#include <string>

#include "config/Config.h"
#include "pipeline/HostServices.h"

namespace Poco::Net {
class HTTPServer;
}

namespace ferry::core {

class AdminServer {
 public:
  // Listens on `listen` ("host:port"; port 0 picks one). Throws ConfigError naming
  // [host] admin_listen when the address is malformed or cannot be bound.
  AdminServer(const Config& config, HostServices& services, const std::string& listen);
  ~AdminServer();
  uint16_t port() const;

 private:
  std::unique_ptr<Poco::Net::HTTPServer> server_;
};

}  // namespace ferry::core
