// Shared rate limits, one per API account key. Each limiter holds one or more windows ("at most
// N requests in any T ms"); a request waits until every window has room.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace ferry::core {

class RateLimiter;

// One window: at most `count` requests in any `per_ms` milliseconds.
struct RateRule {
  uint32_t count = 0;
  uint32_t per_ms = 0;
};

// Process-wide registry of limiters by key. Thread-safe.
class RateLimiterRegistry {
 public:
  RateLimiterRegistry();
  ~RateLimiterRegistry();
  // Defines `key` with `rules`. The first definition wins: returns false (and changes nothing)
  // when `key` exists with different rules. Defining it again with the same rules (in any order)
  // returns true. Rules that can never grant (none, a count or per_ms of 0) return false.
  bool define(const std::string& key, const std::vector<RateRule>& rules);
  bool defined(const std::string& key) const;
  // Blocks until `key` grants one request; returns false, granting nothing, when `stop` becomes
  // true while waiting (checked at least every 100 ms). Grants go in the order of the calls,
  // acquire() and reserve() alike, so reservations made after a waiter never starve it. An
  // undefined key grants at once (false only when `stop` is already true).
  bool acquire(const std::string& key, const std::atomic<bool>& stop);
  // Takes the earliest grant `key` can give, without waiting: the steady-clock millisecond
  // (std::chrono::steady_clock since its epoch) from which the request may go, now or later.
  // Grants are given in time order, so a later acquire() waits behind it. nullopt when `key` is
  // not defined (no limit).
  std::optional<int64_t> reserve(const std::string& key);
  // How many requests `key` granted so far (for metrics and tests).
  int64_t granted(const std::string& key) const;

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<RateLimiter>> limiters_;
};

}  // namespace ferry::core
