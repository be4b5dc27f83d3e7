// What the host shares with every plugin instance through the host API: logging, metrics, shared
// rate limits, HTTP settings, durable per-instance state, in-memory state shared per scope, and
// the stop flag. The pipeline's HostServices adds what only the runners need.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "journal/InstanceState.h"
#include "services/Http.h"
#include "services/Metrics.h"
#include "services/RateLimiter.h"

namespace Poco {
class Logger;
}

namespace ferry::core {

// In-memory state shared by every instance naming the same scope.
struct SharedScope {
  std::recursive_mutex mutex;  // shared_lock/shared_unlock
  std::mutex data_mutex;
  std::map<std::string, std::string> values;
};

struct PluginServices {
  PluginServices(InstanceState& instance_state, Poco::Logger& logger)
      : instance_state(instance_state), logger(logger) {}

  InstanceState& instance_state;
  Poco::Logger& logger;
  std::string journal_id;  // Journal::identity(), for the host API's journal_id
  RateLimiterRegistry rate_limiters;
  Metrics metrics;
  HttpSettings http_settings;
  std::atomic<bool> stopping{false};
  // Whether instance `name` may talk to the outside now (a sink's target, a source's remote, its
  // delivered hook): false once its lease may have run out (several hosts on one journal,
  // app/LeaseKeeper.h). Every HTTP request of a plugin is checked (the host refuses it as
  // transient), and the runners check before each write. Set before the runners start; unset:
  // always.
  std::function<bool(const std::string& name)> lease_valid;
  bool mayWrite(const std::string& name) const { return !lease_valid || lease_valid(name); }

  std::shared_ptr<SharedScope> scope(const std::string& name);
  // The host's HTTP client (made with http_settings on first use), with its connections pooled
  // per origin for every instance; `verified` false: the one for skip_tls_verify requests.
  HttpClient& httpClient(bool verified);

 private:
  std::mutex http_mutex_;
  std::unique_ptr<HttpClient> http_, http_unverified_;
  std::mutex scopes_mutex_;
  std::map<std::string, std::shared_ptr<SharedScope>> scopes_;
};

}  // namespace ferry::core
