#include "services/RateLimiter.h"

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <list>

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
    const Clock::time_point at = readyAt(Clock::now());
    grant(at);
    return at;
  }

  // Waiters queue up in arrival order and only the head may take a grant: a thread that arrives
  // just as room opens up cannot overtake one that has been waiting, so none starves.
  bool acquire(const std::atomic<bool>& stop) {
    std::unique_lock lock(mutex_);
    auto me = queue_.insert(queue_.end(), 0);
    for (;;) {
      if (stop.load()) {
        leave(me);
        return false;
      }
      auto now = Clock::now();
      if (queue_.begin() == me) {
        Clock::time_point ready = readyAt(now);
        if (ready <= now) {
          grant(now);
          leave(me);
          return true;
        }
        // Sleep until the window opens, but wake at least every 100 ms to look at `stop`.
        cv_.wait_until(lock, std::min(ready, now + std::chrono::milliseconds(100)));
      } else {
        cv_.wait_until(lock, now + std::chrono::milliseconds(100));
      }
    }
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

  void grant(Clock::time_point now) {
    for (size_t i = 0; i < rules_.size(); ++i) {
      auto& log = logs_[i];
      log.push_back(now);
      while (log.size() > rules_[i].count) log.pop_front();
    }
    ++granted_;
  }

  void leave(std::list<int>::iterator me) {
    bool was_head = queue_.begin() == me;
    queue_.erase(me);
    if (was_head) cv_.notify_all();
  }

  const std::vector<RateRule> rules_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::vector<std::deque<Clock::time_point>> logs_;  // one per rule, oldest first
  std::list<int> queue_;                             // waiting threads, in arrival order
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
