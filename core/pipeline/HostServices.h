// What the host shares with every plugin instance, and the per-instance context behind the C
// host-API table (ferry_host_ctx).
#pragma once

#include <ferry/abi.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "delivery/Handoff.h"
#include "journal/Journal.h"
#include "services/Http.h"
#include "services/RateLimiter.h"

namespace Poco {
class Logger;
}

namespace ferry::core {

// Counters and gauges, labelled by instance. Thread-safe.
class Metrics {
 public:
  void add(const std::string& name, const std::string& instance, double delta);
  void set(const std::string& name, const std::string& instance, double value);
  double get(const std::string& name, const std::string& instance) const;
  // Prometheus text exposition: ferry_<name>{instance="…"} value
  std::string render() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, std::string>, std::pair<bool, double>> values_;  // gauge?, value
};

// A level-triggered wake-up: sink runners wait on it for new events, source runners for sink
// progress. notify() bumps a generation; waitFor() returns early when it moved.
class Signal {
 public:
  void notify();
  // Waits until the generation differs from `seen` or `timeout_ms` passed; returns the current
  // generation.
  uint64_t waitFor(uint64_t seen, int64_t timeout_ms);
  uint64_t generation();

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  uint64_t generation_ = 0;
};

// In-memory state shared by every instance naming the same scope.
struct SharedScope {
  std::recursive_mutex mutex;  // shared_lock/shared_unlock
  std::mutex data_mutex;
  std::map<std::string, std::string> values;
};

struct HostServices {
  HostServices(Journal& journal, Poco::Logger& logger)
      : event_log(journal.events()),
        ledger(journal.ledger()),
        instance_state(journal.state()),
        logger(logger) {}

  // The journal's parts (Journal.h); each user takes the ones it needs.
  EventLog& event_log;
  SinkLedger& ledger;
  InstanceState& instance_state;
  Poco::Logger& logger;
  RateLimiterRegistry rate_limiters;
  Metrics metrics;
  HttpSettings http_settings;
  std::atomic<bool> stopping{false};
  // run --once: every source finished its cycle, so no event is coming that a sink could wait
  // for to fill a batch.
  std::atomic<bool> sources_finished{false};
  Signal new_events;    // a source committed events
  Signal sink_advanced; // a sink moved its offset
  // Just-committed events for the sinks that are caught up (bounded; the journal has them all).
  static constexpr size_t kHandoffBytes = 32u << 20;
  Handoff handoff{kHandoffBytes};

  std::shared_ptr<SharedScope> scope(const std::string& name);

 private:
  std::mutex scopes_mutex_;
  std::map<std::string, std::shared_ptr<SharedScope>> scopes_;
};

// One emitted item of the page being fetched.
struct FetchedItem {
  std::string entity;
  std::string key;
  std::string version;
  int64_t version_ns = 0;
  std::string body;
  bool echo = false;
};

// Replaces every occurrence of each secret with "***".
std::string redact(std::string text, const std::vector<std::string>& secrets);

// The C host-API table, the same for every instance.
const ferry_host_api* hostApi();

}  // namespace ferry::core

// The per-instance context handed to a plugin as an opaque pointer. One instance is called from
// one thread at a time, so the fields below need no lock.
struct ferry_host_ctx {
  ferry_host_ctx(ferry::core::HostServices& services, std::string name, std::string kind,
                 std::vector<std::string> secrets);

  ferry::core::HostServices& services;
  std::string name;  // instance name from the config
  std::string kind;  // "source" | "sink"
  std::vector<std::string> secrets;

  // The message and Retry-After of the last non-OK answer; cleared before each call.
  std::string last_error;
  int64_t retry_after_ms = -1;
  void clearError() {
    last_error.clear();
    retry_after_ms = -1;
  }

  // Set by the source runner during fetch(); emit() appends to it.
  std::vector<ferry::core::FetchedItem>* page = nullptr;
  std::string emit_error;

  // Requests sent through http_request, so that the host knows when a call into the plugin
  // changed something at the remote (the delivered hook's progress is then saved at once).
  uint64_t http_requests = 0;

  std::unique_ptr<ferry::core::HttpClient> http;
  std::unique_ptr<ferry::core::HttpClient> http_unverified;  // skip_tls_verify requests only
};
