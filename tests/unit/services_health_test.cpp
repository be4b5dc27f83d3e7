#include <gtest/gtest.h>

#include "services/Health.h"

namespace ferry::core {
namespace {

constexpr int64_t kMinute = 60000;
constexpr int64_t kLimit = 5 * kMinute;  // unhealthy_after

HealthVerdict only(const Health& health, int64_t now_ms) {
  auto all = health.judge(now_ms, kLimit);
  EXPECT_EQ(all.size(), 1u);
  return all.empty() ? HealthVerdict{} : all.front();
}

TEST(Health, AStoppedInstanceIsUnhealthyAtOnceWithItsReason) {
  Health h;
  h.add("tc", "source", kMinute, 0);
  h.setState("tc", "stopped", "authentication refused: 401", 1000);
  auto v = only(h, 1000);
  EXPECT_FALSE(v.healthy);
  EXPECT_EQ(v.reason, "stopped: authentication refused: 401");
}

TEST(Health, RetryingIsHealthyUntilItLastsLongerThanTheLimit) {
  Health h;
  const int64_t interval = 60 * kMinute;  // 3 intervals are longer than the limit
  h.add("tc", "source", interval, 0);
  h.succeeded("tc", 10000);
  h.setState("tc", "retrying", "HTTP 503", 20000);
  h.setState("tc", "retrying", "HTTP 503 again", 80000);  // the streak goes on: same clock
  EXPECT_TRUE(only(h, 20000 + kLimit).healthy);
  auto v = only(h, 20000 + kLimit + 1000);
  EXPECT_FALSE(v.healthy);
  EXPECT_EQ(v.reason,
            "retrying for 301s, no success for 311s (unhealthy_after = 5m, 3 poll intervals = "
            "3h): HTTP 503 again");
  EXPECT_EQ(v.retrying_since_ms, 20000);
  // A success ends the streak.
  h.succeeded("tc", 400000);
  h.setState("tc", "idle", "", 400000);
  EXPECT_TRUE(only(h, 400001).healthy);
}

// With a short interval, a retrying source has gone without success for longer than its streak.
TEST(Health, ARetryingInstanceWithoutSuccessForTooLongIsUnhealthy) {
  Health h;
  h.add("dh", "source", 20000, 0);
  h.succeeded("dh", 1000);
  h.setState("dh", "retrying", "timed out", 21000);
  auto v = only(h, kLimit + 2000);
  EXPECT_FALSE(v.healthy);
  EXPECT_EQ(v.reason, "retrying for 281s, no success for 301s (unhealthy_after = 5m): timed out");
}

TEST(Health, AStopWhileRetryingKeepsTheRetryClock) {
  Health h;
  h.add("erp", "sink", 0, 0);
  h.setState("erp", "retrying", "disk full", 1000);
  h.setState("erp", "stopped", "disk full", 2000);
  EXPECT_EQ(only(h, 3000).retrying_since_ms, 1000);
}

TEST(Health, ASourceWithoutSuccessForThreeIntervalsIsUnhealthy) {
  Health h;
  const int64_t interval = 10 * kMinute;  // 3 intervals: 30 min, longer than the limit
  h.add("slow", "source", interval, 0);
  h.setState("slow", "running", "", 0);
  EXPECT_TRUE(only(h, 3 * interval).healthy);
  auto v = only(h, 3 * interval + 1000);
  EXPECT_FALSE(v.healthy);
  EXPECT_EQ(v.reason,
            "no success since it started 1801s (unhealthy_after = 5m, 3 poll intervals = 30m); "
            "it may be stuck in a call to the plugin");
  h.succeeded("slow", 3 * interval + 2000);
  EXPECT_TRUE(only(h, 3 * interval + 3000).healthy);
}

TEST(Health, ASinkWithoutSuccessForLongerThanTheLimitIsUnhealthy) {
  Health h;
  h.add("rest", "sink", 0, 0);
  h.succeeded("rest", 1000);
  h.setState("rest", "running", "", 1000);
  EXPECT_TRUE(only(h, 1000 + kLimit).healthy);
  auto v = only(h, 1000 + kLimit + 1);
  EXPECT_FALSE(v.healthy);
  EXPECT_EQ(v.reason, "no success for 5m (unhealthy_after = 5m); it may be stuck in a call to the "
                      "plugin");
}

TEST(Health, ASinkWaitingForEventsIsHealthyAndCountsFromTheEndOfTheWait) {
  Health h;
  h.add("erp", "sink", 0, 0);
  h.succeeded("erp", 1000);
  h.setState("erp", "idle", "", 1000);
  h.setWaiting("erp", true, 1000);
  EXPECT_TRUE(only(h, 1000 + 2 * kLimit).healthy);
  h.setWaiting("erp", false, 1000 + 2 * kLimit);  // events arrive; their write hangs
  EXPECT_TRUE(only(h, 1000 + 3 * kLimit).healthy);
  EXPECT_FALSE(only(h, 1000 + 3 * kLimit + 1).healthy);
}

TEST(Health, APausedSinkIsHealthyAndItsQuietTimeCountsFromItsResumption) {
  Health h;
  h.add("erp", "sink", 0, 0);
  h.succeeded("erp", 1000);
  h.setState("erp", "paused", "", 2000);
  EXPECT_TRUE(only(h, 2000 + 10 * kLimit).healthy);
  h.setState("erp", "running", "", 2000 + 10 * kLimit);
  EXPECT_TRUE(only(h, 2000 + 11 * kLimit).healthy);
  EXPECT_FALSE(only(h, 2000 + 11 * kLimit + 1).healthy);
}

TEST(Health, JudgesEveryInstanceInTheOrderTheyWereAdded) {
  Health h;
  h.add("b", "sink", 0, 0);
  h.add("a", "source", kMinute, 0);
  h.setState("a", "stopped", "fatal error: x", 0);
  auto all = h.judge(1, kLimit);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].name, "b");
  EXPECT_TRUE(all[0].healthy);
  EXPECT_EQ(all[1].name, "a");
  EXPECT_EQ(all[1].kind, "source");
  EXPECT_FALSE(all[1].healthy);
}

}  // namespace
}  // namespace ferry::core
