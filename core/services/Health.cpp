#include "services/Health.h"

#include <algorithm>

#include "services/Time.h"

namespace ferry::core {
namespace {

// "372s" rather than "372154ms": for reading, whole seconds do.
std::string seconds(int64_t ms) { return formatDurationMs(ms >= 1000 ? ms / 1000 * 1000 : ms); }

}  // namespace

void Health::add(const std::string& name, const std::string& kind, int64_t interval_ms,
                 int64_t now_ms) {
  std::lock_guard lock(mutex_);
  if (!entries_.count(name)) order_.push_back(name);
  Entry& e = entries_[name];
  e = Entry{};
  e.kind = kind;
  e.interval_ms = interval_ms;
  e.quiet_from_ms = now_ms;
}

void Health::remove(const std::string& name) {
  std::lock_guard lock(mutex_);
  entries_.erase(name);
  order_.erase(std::remove(order_.begin(), order_.end(), name), order_.end());
}

void Health::setState(const std::string& name, const std::string& state,
                      const std::string& message, int64_t now_ms) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(name);
  if (it == entries_.end()) return;
  Entry& e = it->second;
  // An operator's pause is no failure: the time without success counts from its end.
  if (e.state == "paused" && state != "paused") e.quiet_from_ms = now_ms;
  if (state == "retrying" && e.retrying_since_ms == 0) e.retrying_since_ms = now_ms;
  // A stop while retrying keeps the clock: the instance failed for that long before it stopped.
  else if (state != "retrying" && state != "stopped") e.retrying_since_ms = 0;
  e.state = state;
  e.message = message;
}

void Health::setWaiting(const std::string& name, bool waiting, int64_t now_ms) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(name);
  if (it == entries_.end()) return;
  it->second.waiting = waiting;
  if (!waiting) it->second.quiet_from_ms = now_ms;
}

void Health::succeeded(const std::string& name, int64_t now_ms) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(name);
  if (it == entries_.end()) return;
  it->second.last_success_ms = now_ms;
  it->second.retrying_since_ms = 0;
}

std::vector<HealthVerdict> Health::judge(int64_t now_ms, int64_t unhealthy_after_ms) const {
  std::lock_guard lock(mutex_);
  std::vector<HealthVerdict> out;
  for (const auto& name : order_) {
    const Entry& e = entries_.at(name);
    HealthVerdict v{name, e.kind, e.state, e.message, true, "", e.last_success_ms,
                    e.retrying_since_ms};
    const int64_t quiet_limit = std::max(unhealthy_after_ms, 3 * e.interval_ms);
    const int64_t quiet_for = now_ms - std::max(e.last_success_ms, e.quiet_from_ms);
    const std::string limits =
        "unhealthy_after = " + formatDurationMs(unhealthy_after_ms) +
        (quiet_limit > unhealthy_after_ms ? ", 3 poll intervals = " + formatDurationMs(quiet_limit)
                                          : "");
    const std::string quiet = (e.last_success_ms == 0 ? "no success since it started "
                                                      : "no success for ") +
                              seconds(quiet_for);
    const bool retrying = e.state == "retrying" && e.retrying_since_ms > 0;
    if (e.state == "paused") {
      // paused by an operator (`ferry sinks pause`): healthy, whatever its backlog
    } else if (e.state == "stopped") {
      v.healthy = false;
      v.reason = "stopped";
      if (!e.message.empty()) v.reason += ": " + e.message;
    } else if (retrying && (now_ms - e.retrying_since_ms > unhealthy_after_ms ||
                            quiet_for > quiet_limit)) {
      v.healthy = false;
      v.reason = "retrying for " + seconds(now_ms - e.retrying_since_ms) + ", " + quiet + " (" +
                 limits + ")";
      if (!e.message.empty()) v.reason += ": " + e.message;
    } else if (quiet_for > quiet_limit && !e.waiting) {
      v.healthy = false;
      v.reason = quiet + " (" + limits + ")";
      if (e.state == "running") v.reason += "; it may be stuck in a call to the plugin";
      if (!e.message.empty()) v.reason += "; last error: " + e.message;
    }
    out.push_back(std::move(v));
  }
  return out;
}

}  // namespace ferry::core
