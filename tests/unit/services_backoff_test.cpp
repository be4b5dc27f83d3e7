#include <gtest/gtest.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <random>
#include <set>

#include "services/Backoff.h"

namespace ferry::core {
namespace {

TEST(Backoff, FullJitterStaysWithinTheDoublingCeiling) {
  std::mt19937_64 rng(42);
  BackoffPolicy policy{1000, 300000};
  for (int attempt = 1; attempt <= 12; ++attempt) {
    const int64_t ceiling = std::min<int64_t>(300000, int64_t{1000} << (attempt - 1));
    int64_t low = INT64_MAX, high = -1;
    for (int i = 0; i < 2000; ++i) {
      int64_t d = backoffDelayMs(policy, attempt, -1, rng);
      ASSERT_GE(d, 0);
      ASSERT_LE(d, ceiling) << "attempt " << attempt;
      low = std::min(low, d);
      high = std::max(high, d);
    }
    // Full jitter spreads over the whole range, not just near the ceiling.
    EXPECT_LT(low, ceiling / 10) << "attempt " << attempt;
    EXPECT_GT(high, ceiling * 9 / 10) << "attempt " << attempt;
  }
}

TEST(Backoff, SameSeedSameDelays) {
  std::mt19937_64 a(7), b(7);
  for (int attempt = 1; attempt < 20; ++attempt)
    EXPECT_EQ(backoffDelayMs({}, attempt, -1, a), backoffDelayMs({}, attempt, -1, b));
}

TEST(Backoff, CapHoldsForHugeAttempts) {
  std::mt19937_64 rng(1);
  BackoffPolicy policy{1000, 300000};
  for (int attempt : {19, 20, 40, 62, 63, 64, 65, 100, 1000, INT_MAX}) {
    for (int i = 0; i < 200; ++i) {
      int64_t d = backoffDelayMs(policy, attempt, -1, rng);
      ASSERT_GE(d, 0) << "attempt " << attempt;
      ASSERT_LE(d, 300000) << "attempt " << attempt;
    }
  }
  // A large initial delay cannot overflow either.
  BackoffPolicy big{INT64_MAX / 2, INT64_MAX};
  for (int attempt : {1, 2, 3, 70}) {
    int64_t d = backoffDelayMs(big, attempt, -1, rng);
    EXPECT_GE(d, 0);
  }
}

TEST(Backoff, NonPositiveAttemptIsTheFirstRetry) {
  std::mt19937_64 rng(3);
  for (int i = 0; i < 500; ++i) {
    EXPECT_LE(backoffDelayMs({1000, 300000}, 0, -1, rng), 1000);
    EXPECT_LE(backoffDelayMs({1000, 300000}, -5, -1, rng), 1000);
  }
}

TEST(Backoff, RetryAfterIsAFloor) {
  std::mt19937_64 rng(5);
  BackoffPolicy policy{1000, 300000};
  for (int i = 0; i < 1000; ++i) {
    EXPECT_GE(backoffDelayMs(policy, 1, 5000, rng), 5000);
    // Even above the cap: asking before the server said so only earns another 429.
    EXPECT_EQ(backoffDelayMs(policy, 3, 600000, rng), 600000);
  }
  // A Retry-After of a year (or one that overflowed) is honoured for an hour at most.
  EXPECT_EQ(backoffDelayMs(policy, 1, int64_t{365} * 86400 * 1000, rng), 3600 * 1000);
  EXPECT_EQ(backoffDelayMs({1000, 7200000}, 1, int64_t{365} * 86400 * 1000, rng), 7200000);
  // Retry-After 0 means "now is fine": the jitter still applies.
  std::set<int64_t> seen;
  for (int i = 0; i < 200; ++i) seen.insert(backoffDelayMs(policy, 4, 0, rng));
  EXPECT_GT(seen.size(), 100u);
  EXPECT_LE(*seen.rbegin(), 8000);
}

}  // namespace
}  // namespace ferry::core
