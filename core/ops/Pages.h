// What the admin endpoint serves (AdminServer.h), rendered from the running host.
//
// GET /healthz: 200 when every source and sink is healthy (services/Health.h says when one is
// not), else 503; the body (JSON) names each instance, its state and, when unhealthy, why:
//   {"healthy":false,"unhealthy_after":"5m","instances":[{"name":"tc-orders","kind":"source",
//    "state":"retrying","healthy":false,"reason":"retrying for 6m (…): HTTP 503 …",
//    "message":"HTTP 503 …","last_success":"2026-07-05T12:00:00.000Z"}, …]}
//
// GET /metrics: Prometheus text (version 0.0.4): the host's counters and HTTP histograms
// (services/Metrics.h), each instance's health, state and last success, each source's cursor
// lag, each sink's offset, backlog, oldest pending event and dead letters, the journal's last
// sequence, build information and the process's own figures (process_*).
#pragma once

#include <string>

#include "config/Config.h"
#include "pipeline/HostServices.h"

namespace ferry::core {

struct Page {
  int status = 200;
  std::string content_type;
  std::string body;
};

Page healthPage(const Config& config, HostServices& services);
Page metricsPage(const Config& config, HostServices& services);

}  // namespace ferry::core
