// What the runners share: the plugin-facing services (runtime/PluginServices.h), the journal's
// parts, the wake-ups between sources and sinks, and the in-memory hand-off.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>

#include "delivery/Handoff.h"
#include "journal/Journal.h"
#include "runtime/PluginServices.h"
#include "services/Health.h"

namespace ferry::core {

// A level-triggered wake-up: sink runners wait on it for new events, source runners for sink
// progress. notify() bumps a generation; waitFor() returns early when it moved.
class Signal {
 public:
  void notify();
  // Waits until the generation differs from `seen` or `timeout_ms` passed; returns the current
  // generation.
  uint64_t waitFor(uint64_t seen, int64_t timeout_ms);
  uint64_t generation();
  // Also called by every notify(), on the notifying thread (set before any thread notifies).
  void setListener(std::function<void()> listener) { listener_ = std::move(listener); }

 private:
  std::function<void()> listener_;
  std::mutex mutex_;
  std::condition_variable cv_;
  uint64_t generation_ = 0;
};

struct HostServices : PluginServices {
  HostServices(Journal& journal, Poco::Logger& logger)
      : PluginServices(journal.state(), logger),
        event_log(journal.events()),
        ledger(journal.ledger()),
        controls(journal.controls()) {
    journal_id = journal.identity();
    // Each runner thread calls only its own instance's plugin: an exchange is counted for the
    // instance of the thread that made it.
    http_settings.on_exchange = [this](int status, double seconds) {
      if (!Metrics::threadInstance().empty())
        metrics.observeHttp(Metrics::threadInstance(), status, seconds);
    };
  }

  // What the journal holds of instance `kind`/`name`'s activity. Read once for every runner that
  // starts (a thousand sources must not each read them all); forgetActivities() makes the next
  // call read again (a reload starts runners whose predecessors wrote theirs since). Throws
  // JournalError.
  std::optional<InstanceActivity> storedActivity(const std::string& kind, const std::string& name);
  void forgetActivities();

  // The journal's parts (Journal.h); each user takes the ones it needs.
  EventLog& event_log;
  SinkLedger& ledger;
  Controls& controls;
  // Each source's and sink's state, last success and retry streak, for /healthz and /metrics.
  Health health;
  // run --once: every source finished its cycle, so no event is coming that a sink could wait
  // for to fill a batch.
  std::atomic<bool> sources_finished{false};
  Signal new_events;    // a source committed events
  Signal sink_advanced; // a sink moved its offset
  // Just-committed events for the sinks that are caught up (bounded; the journal has them all).
  static constexpr size_t kHandoffBytes = 16u << 20;
  Handoff handoff{kHandoffBytes};

 private:
  std::mutex activities_mutex_;
  std::optional<std::map<std::string, InstanceActivity>> activities_;  // by kind/name
};

}  // namespace ferry::core
