// The local operations endpoint: GET /healthz and GET /metrics (ops/Pages.h says what they
// answer). One thread serves every connection without blocking on any: a request's head must
// arrive, and its answer leave, within a few seconds, or the connection is closed; at most a few
// dozen connections are kept (the oldest goes first). So clients that connect and send nothing,
// or trickle, cannot keep /healthz from answering. Every answer closes its connection.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "config/Config.h"
#include "pipeline/HostServices.h"

namespace ferry::core {

class AdminServer {
 public:
  // Listens on `listen` ("host:port"; port 0 picks one). Throws ConfigError naming
  // [host] admin_listen when the address is malformed or cannot be bound.
  AdminServer(const LiveConfig& config, HostServices& services, const std::string& listen);
  ~AdminServer();
  uint16_t port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ferry::core
