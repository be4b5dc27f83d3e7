#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "services/RateLimiter.h"

namespace ferry::core {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

int64_t msBetween(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration_cast<milliseconds>(b - a).count();
}

// A thread can be descheduled between its grant and its own clock read, which makes recorded
// grants look closer together than they were. A token bucket's surplus shows up as grants 0 to
// 100 ms apart in these tests, far below the window minus this slack.
constexpr int64_t kRecordSlackMs = 40;

TEST(RateLimiter, SlidingWindowNeverAdmitsMoreThanCountInAnySpan) {
  RateLimiterRegistry registry;
  ASSERT_TRUE(registry.define("duck", {{3, 300}}));
  std::atomic<bool> stop{false};
  std::mutex mutex;
  std::vector<Clock::time_point> grants;
  const auto start = Clock::now();
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(registry.acquire("duck", stop));
        std::lock_guard lock(mutex);
        grants.push_back(Clock::now());
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(grants.size(), 9u);
  EXPECT_EQ(registry.granted("duck"), 9);
  std::sort(grants.begin(), grants.end());
  // Grants 1-3 at once, 4-6 after 300 ms, 7-9 after 600 ms.
  EXPECT_GE(msBetween(start, grants.back()), 600);
  EXPECT_LT(msBetween(start, grants.back()), 10000);
  for (size_t i = 0; i + 3 < grants.size(); ++i) {
    EXPECT_GE(msBetween(grants[i], grants[i + 3]), 300 - kRecordSlackMs)
        << "grants " << i << " and " << i + 3 << " fall inside one 300 ms window";
  }
}

TEST(RateLimiter, EveryWindowIsHonoured) {
  RateLimiterRegistry registry;
  ASSERT_TRUE(registry.define("multi", {{2, 100}, {3, 1000}}));
  std::atomic<bool> stop{false};
  const auto start = Clock::now();
  std::vector<Clock::time_point> grants;
  for (int i = 0; i < 4; ++i) {
    ASSERT_TRUE(registry.acquire("multi", stop));
    grants.push_back(Clock::now());
  }
  EXPECT_LT(msBetween(start, grants[1]), 1000);  // two at once
  EXPECT_GE(msBetween(start, grants[2]), 100);   // the 100 ms window
  EXPECT_GE(msBetween(start, grants[3]), 1000);  // the 1000 ms window
  EXPECT_LT(msBetween(start, grants[3]), 10000);
}

TEST(RateLimiter, StopReleasesABlockedAcquireWithoutGranting) {
  RateLimiterRegistry registry;
  ASSERT_TRUE(registry.define("slow", {{1, 60000}}));
  std::atomic<bool> stop{false};
  ASSERT_TRUE(registry.acquire("slow", stop));
  std::atomic<bool> returned{false};
  bool result = true;
  Clock::time_point released;
  std::thread waiter([&] {
    result = registry.acquire("slow", stop);
    released = Clock::now();
    returned = true;
  });
  std::this_thread::sleep_for(milliseconds(300));
  EXPECT_FALSE(returned.load()) << "the second acquire must block for a minute";
  const auto stopped_at = Clock::now();
  stop = true;
  waiter.join();
  EXPECT_FALSE(result);
  EXPECT_LT(msBetween(stopped_at, released), 2000);  // promised: within ~100 ms
  EXPECT_EQ(registry.granted("slow"), 1);
  // With stop already set, nothing is granted even by an undefined key.
  EXPECT_FALSE(registry.acquire("slow", stop));
  EXPECT_FALSE(registry.acquire("undefined", stop));
}

TEST(RateLimiter, WaitersAreServedFairly) {
  RateLimiterRegistry registry;
  ASSERT_TRUE(registry.define("fair", {{1, 20}}));
  std::atomic<bool> stop{false};
  std::map<int, int> per_thread;
  std::mutex mutex;
  std::vector<std::thread> threads;
  const auto until = Clock::now() + milliseconds(1200);
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      while (Clock::now() < until) {
        if (!registry.acquire("fair", stop)) return;
        std::lock_guard lock(mutex);
        ++per_thread[t];
      }
    });
  }
  for (auto& t : threads) t.join();
  int total = 0;
  for (auto& [t, n] : per_thread) total += n;
  ASSERT_GE(total, 6);
  for (int t = 0; t < 3; ++t) EXPECT_GE(per_thread[t], total / 6) << "thread " << t << " starved";
}

// reserve() hands out future grants without waiting, in time order, under the same windows, and
// a blocking acquire() that comes after them waits behind them.
TEST(RateLimiter, ReservedGrantsKeepEveryWindowAndComeBeforeLaterWaiters) {
  RateLimiterRegistry registry;
  ASSERT_TRUE(registry.define("duck", {{2, 300}}));
  const auto now_ms = [] {
    return std::chrono::duration_cast<milliseconds>(Clock::now().time_since_epoch()).count();
  };
  const int64_t start = now_ms();
  std::vector<int64_t> at;
  for (int i = 0; i < 5; ++i) at.push_back(*registry.reserve("duck"));
  EXPECT_LT(now_ms() - start, 50);  // nothing waited
  EXPECT_LE(at[0], start + 20);
  EXPECT_LE(at[1], start + 20);
  for (size_t i = 2; i < at.size(); ++i) EXPECT_GE(at[i] - at[i - 2], 300) << i;
  for (size_t i = 1; i < at.size(); ++i) EXPECT_GE(at[i], at[i - 1]) << i;
  std::atomic<bool> stop{false};
  ASSERT_TRUE(registry.acquire("duck", stop));
  EXPECT_GE(now_ms() - at[3], 300 - 5);  // two grants per 300 ms, the reserved ones counted
  EXPECT_EQ(registry.granted("duck"), 6);
  EXPECT_FALSE(registry.reserve("undefined").has_value());
}

// Sources that reserve their next grant every turn (the scheduler does) must not starve a
// source waiting in acquire() since before them: a waiter is served in its turn, however many
// reservations follow it.
TEST(RateLimiter, ReservationsMadeAfterAWaiterDoNotStarveIt) {
  RateLimiterRegistry registry;
  ASSERT_TRUE(registry.define("duck", {{2, 200}}));
  std::atomic<bool> stop{false};
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(registry.acquire("duck", stop));  // the window is full
  std::atomic<bool> served{false};
  const auto started = Clock::now();
  Clock::time_point served_at;
  std::thread waiter([&] {
    EXPECT_TRUE(registry.acquire("duck", stop));
    served_at = Clock::now();
    served = true;
  });
  std::this_thread::sleep_for(milliseconds(20));  // the waiter is in acquire()
  // Twenty sources keep reserving, each as soon as its last grant is due.
  const auto until = Clock::now() + milliseconds(3000);
  while (!served.load() && Clock::now() < until) {
    for (int i = 0; i < 20; ++i) registry.reserve("duck");
    std::this_thread::sleep_for(milliseconds(50));
  }
  stop = true;
  waiter.join();
  ASSERT_TRUE(served.load()) << "the waiter was starved by later reservations";
  EXPECT_LT(msBetween(started, served_at), 600);  // its turn: the window's next opening
}

TEST(RateLimiter, FirstDefinitionWins) {
  RateLimiterRegistry registry;
  EXPECT_FALSE(registry.defined("acct"));
  ASSERT_TRUE(registry.define("acct", {{3, 300}, {10, 5000}}));
  EXPECT_TRUE(registry.defined("acct"));
  EXPECT_TRUE(registry.define("acct", {{10, 5000}, {3, 300}}));  // same rules, other order
  EXPECT_FALSE(registry.define("acct", {{4, 300}}));
  EXPECT_FALSE(registry.define("acct", {{3, 300}}));

  // The original rules are still in force: the 4th request within 300 ms waits.
  std::atomic<bool> stop{false};
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(registry.acquire("acct", stop));
  const auto start = Clock::now();
  ASSERT_TRUE(registry.acquire("acct", stop));
  EXPECT_GE(msBetween(start, Clock::now()), 200);
}

TEST(RateLimiter, RulesThatCanNeverGrantAreRefused) {
  RateLimiterRegistry registry;
  EXPECT_FALSE(registry.define("a", {}));
  EXPECT_FALSE(registry.define("b", {{0, 1000}}));
  EXPECT_FALSE(registry.define("c", {{5, 0}}));
  EXPECT_FALSE(registry.defined("a"));
  EXPECT_FALSE(registry.defined("b"));
  EXPECT_FALSE(registry.defined("c"));
}

TEST(RateLimiter, UndefinedKeyGrantsAtOnce) {
  RateLimiterRegistry registry;
  std::atomic<bool> stop{false};
  const auto start = Clock::now();
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(registry.acquire("nobody-defined-me", stop));
  EXPECT_LT(msBetween(start, Clock::now()), 5000);
  EXPECT_EQ(registry.granted("nobody-defined-me"), 0);
}

TEST(RateLimiter, KeysAreIndependent) {
  RateLimiterRegistry registry;
  ASSERT_TRUE(registry.define("busy", {{1, 60000}}));
  ASSERT_TRUE(registry.define("idle", {{1, 60000}}));
  std::atomic<bool> stop{false};
  ASSERT_TRUE(registry.acquire("busy", stop));
  const auto start = Clock::now();
  ASSERT_TRUE(registry.acquire("idle", stop));
  EXPECT_LT(msBetween(start, Clock::now()), 5000);
  EXPECT_EQ(registry.granted("busy"), 1);
  EXPECT_EQ(registry.granted("idle"), 1);
}

}  // namespace
}  // namespace ferry::core
