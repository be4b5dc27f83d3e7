#include "services/RateLimiter.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <thread>

namespace ferry::core {

using Clock = std::chrono::steady_clock;

// Each window is a sliding log: the times of its last `count` grants. A request may go when the
// oldest of them (the count-th most recent grant) is at least `per_ms` old, so no span of
// `per_ms` ever holds more than `count` grants.
//
// A token bucket would be the usual choice and is wrong here: a bucket of capacity N refilled
// at N per T starts full, so it lets N requests through at once and N more while it refills
// within the same T: up to 2N in one T-long window. DuckHub and Tradecloud count requests in
// windows, and a strict server answers the surplus with 429. The log costs `count` time stamps
// per window (300 for DuckHub's largest), which is nothing.
//
// The steady clock is used because a wall-clock step (NTP, DST on a badly set machine) must not
// release a burst or freeze the limiter.
class RateLimiter {
 public:
  explicit RateLimiter(std::vector<RateRule> rules) : rules_(std::move(rules)) {
    logs_.resize(rules_.size());
  }

  const std::vector<RateRule>& rules() const { return rules_; }

  int64_t granted() const {
    std::lock_guard lock(mutex_);
    return granted_;
  }

  // Takes the earliest grant that every window allows, possibly in the future, and says when it
  // is: the caller sends its request then, without waiting here.
  Clock::time_point reserve() {
    std::lock_guard lock(mutex_);
    ++granted_;
    return take();
  }

  // Takes the earliest grant like reserve() and waits for it here (waking every 100 ms to look
  // at `stop`). Grants go in the order of the calls, reserved ones and waited-for ones alike, so
  // neither kind can overtake the other: a waiter is never starved by sources that keep
  // reserving ahead of it. At a stop the caller sends nothing; its slot stays taken (the windows
  // only ever get stricter), but it is not counted as granted.
  bool acquire(const std::atomic<bool>& stop) {
    if (stop.load()) return false;
    Clock::time_point at;
    {
      std::lock_guard lock(mutex_);
      at = take();
    }
    for (auto now = Clock::now(); now < at; now = Clock::now()) {
      if (stop.load()) return false;
      std::this_thread::sleep_for(
          std::min<Clock::duration>(at - now, std::chrono::milliseconds(100)));
    }
    std::lock_guard lock(mutex_);
    ++granted_;
    return true;
  }

 private:
  // When every window will have room; `now` or earlier when they have room already.
  Clock::time_point readyAt(Clock::time_point now) const {
    Clock::time_point ready = now;
    for (size_t i = 0; i < rules_.size(); ++i) {
      const auto& log = logs_[i];
      // Grants are logged in time order, reserved ones (reserve()) included: none is placed
      // before one already given.
      if (!log.empty()) ready = std::max(ready, log.back());
      if (log.size() < rules_[i].count) continue;
      ready = std::max(ready, log.front() + std::chrono::milliseconds(rules_[i].per_ms));
    }
    return ready;
  }

  // Logs the earliest grant every window allows (possibly in the future) and returns it.
  Clock::time_point take() {
    const Clock::time_point at = readyAt(Clock::now());
    for (size_t i = 0; i < rules_.size(); ++i) {
      auto& log = logs_[i];
      log.push_back(at);
      while (log.size() > rules_[i].count) log.pop_front();
    }
    return at;
  }

  const std::vector<RateRule> rules_;
  mutable std::mutex mutex_;
  std::vector<std::deque<Clock::time_point>> logs_;  // one per rule, oldest first
  int64_t granted_ = 0;
};

namespace {

bool sameRules(std::vector<RateRule> a, std::vector<RateRule> b) {
  auto less = [](const RateRule& x, const RateRule& y) {
    return x.count != y.count ? x.count < y.count : x.per_ms < y.per_ms;
  };
  std::sort(a.begin(), a.end(), less);
  std::sort(b.begin(), b.end(), less);
  return std::equal(a.begin(), a.end(), b.begin(), b.end(),
                    [](const RateRule& x, const RateRule& y) {
                      return x.count == y.count && x.per_ms == y.per_ms;
                    });
}

}  // namespace

RateLimiterRegistry::RateLimiterRegistry() = default;
RateLimiterRegistry::~RateLimiterRegistry() = default;

bool RateLimiterRegistry::define(const std::string& key,
                                 const std::vector<RateRule>& rules) {
  if (rules.empty()) return false;
  for (const auto& rule : rules) {
    if (rule.count == 0 || rule.per_ms == 0) return false;
  }
  std::lock_guard lock(mutex_);
  auto it = limiters_.find(key);
  if (it != limiters_.end()) return sameRules(it->second->rules(), rules);
  limiters_.emplace(key, std::make_shared<RateLimiter>(rules));
  return true;
}

bool RateLimiterRegistry::defined(const std::string& key) const {
  std::lock_guard lock(mutex_);
  return limiters_.count(key) != 0;
}

bool RateLimiterRegistry::acquire(const std::string& key, const std::atomic<bool>& stop) {
  std::shared_ptr<RateLimiter> limiter;
  {
    std::lock_guard lock(mutex_);
    auto it = limiters_.find(key);
    if (it != limiters_.end()) limiter = it->second;
  }
  if (!limiter) return !stop.load();
  return limiter->acquire(stop);
}

std::optional<int64_t> RateLimiterRegistry::reserve(const std::string& key) {
  std::shared_ptr<RateLimiter> limiter;
  {
    std::lock_guard lock(mutex_);
    auto it = limiters_.find(key);
    if (it == limiters_.end()) return std::nullopt;
    limiter = it->second;
  }
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             limiter->reserve().time_since_epoch())
      .count();
}

int64_t RateLimiterRegistry::granted(const std::string& key) const {
  std::shared_ptr<RateLimiter> limiter;
  {
    std::lock_guard lock(mutex_);
    auto it = limiters_.find(key);
    if (it == limiters_.end()) return 0;
    limiter = it->second;
  }
  return limiter->granted();
}

}  // namespace ferry::core
