// Whether each source and sink of this process works, kept in memory (the journal may be the
// thing that fails): its state, when it last succeeded and since when it retries. /healthz and
// /metrics judge from it. Thread-safe.
//
// An instance is unhealthy when it
//   - is stopped (refused credentials, a fatal error, an internal error),
//   - has been retrying for longer than `unhealthy_after`, or
//   - has not succeeded for longer than `unhealthy_after` or, for a source, three poll intervals,
//     whichever is longer (a request that hangs, a sink stuck on one batch).
// A source succeeds when a poll cycle ends well or a page is committed (a long backfill keeps
// succeeding); a sink when it wrote a batch or found nothing to write. While an instance waits
// for work (setWaiting), it is not in a call that could hang: the time without success counts
// from the end of the wait. A sink an operator paused is healthy; the time without success
// counts again from its resumption.
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace ferry::core {

struct HealthVerdict {
  std::string name;
  std::string kind;   // "source" | "sink"
  std::string state;  // "starting" | "running" | "idle" | "retrying" | "paused" | "stopped"
  std::string message;  // the last error, "" when fine
  bool healthy = true;
  std::string reason;  // why not healthy, "" when healthy
  int64_t last_success_ms = 0;    // 0: not yet
  int64_t retrying_since_ms = 0;  // 0: not retrying
};

class Health {
 public:
  // Registers an instance at `now_ms` (the time without success counts from here).
  // `interval_ms`: a source's poll interval, 0 for a sink.
  void add(const std::string& name, const std::string& kind, int64_t interval_ms, int64_t now_ms);
  // The instance's state changed. Entering "retrying" starts the retry clock; any other state
  // but "stopped" ends it.
  void setState(const std::string& name, const std::string& state, const std::string& message,
                int64_t now_ms);
  void succeeded(const std::string& name, int64_t now_ms);
  // Forgets an instance (removed by a reload).
  void remove(const std::string& name);
  // The instance waits for work (true) or stopped waiting (false).
  void setWaiting(const std::string& name, bool waiting, int64_t now_ms);

  // Every registered instance, in registration order, judged at `now_ms`.
  std::vector<HealthVerdict> judge(int64_t now_ms, int64_t unhealthy_after_ms) const;

 private:
  struct Entry {
    std::string kind, state = "starting", message;
    // quiet_from_ms: when the time without success started to count (added, the end of a wait,
    // the end of a pause)
    int64_t interval_ms = 0, quiet_from_ms = 0, last_success_ms = 0, retrying_since_ms = 0;
    bool waiting = false;
  };
  mutable std::mutex mutex_;
  std::vector<std::string> order_;
  std::map<std::string, Entry> entries_;
};

}  // namespace ferry::core
