// The sources' scheduler: many tasks on a few workers, each task's turns one after the other
// (never two at once), at their due time, woken early on demand, a blocked turn holding only its
// own worker.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "pipeline/Scheduler.h"

namespace ferry::core {
namespace {

// Counts its turns and asks for the next one `every_ms` later, `turns` times; records whether two
// of its turns ever overlapped.
class Counter : public Scheduler::Task {
 public:
  Counter(int turns, int64_t every_ms, int64_t busy_ms = 0)
      : turns_(turns), every_ms_(every_ms), busy_ms_(busy_ms) {}
  int64_t step() override {
    if (inside_.exchange(true)) overlapped_ = true;
    if (busy_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(busy_ms_));
    const int done = ++done_;
    inside_ = false;
    return done >= turns_ ? Scheduler::kDone : Scheduler::nowMs() + every_ms_;
  }
  int done() const { return done_.load(); }
  bool overlapped() const { return overlapped_.load(); }

 private:
  const int turns_;
  const int64_t every_ms_, busy_ms_;
  std::atomic<int> done_{0};
  std::atomic<bool> inside_{false}, overlapped_{false};
};

TEST(Scheduler, ManyTasksOnFewWorkersEachTurnAfterTheOther) {
  std::vector<std::unique_ptr<Counter>> tasks;
  for (int i = 0; i < 300; ++i) tasks.push_back(std::make_unique<Counter>(5, 10, 1));
  Scheduler scheduler(4);
  const int64_t start = Scheduler::nowMs();
  for (auto& t : tasks) scheduler.add(t.get(), start);
  // Woken while running or waiting: another turn soon, never a second one at the same time.
  for (int k = 0; k < 200; ++k) scheduler.wake(tasks[static_cast<size_t>(k) % 7].get());
  for (auto& t : tasks) scheduler.waitDone(t.get());
  for (auto& t : tasks) {
    EXPECT_EQ(t->done(), 5);
    EXPECT_FALSE(t->overlapped());
  }
  EXPECT_EQ(scheduler.workers(), 4u);
  EXPECT_GE(scheduler.lateness().total.turns, 1500u);
}

TEST(Scheduler, AWaitingTaskTakesItsTurnWhenDueOrWhenWoken) {
  Counter late(2, 60000);
  Scheduler scheduler(2);
  scheduler.add(&late, Scheduler::nowMs());
  while (late.done() < 1) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(late.done(), 1) << "the second turn is due in a minute";
  const int64_t woken = Scheduler::nowMs();
  scheduler.wake(&late);
  scheduler.waitDone(&late);
  EXPECT_LT(Scheduler::nowMs() - woken, 1000);
  EXPECT_EQ(late.done(), 2);
}

TEST(Scheduler, ABlockedTurnHoldsOnlyItsOwnWorker) {
  Counter stuck(1, 0, 1500);
  Counter quick(20, 20);
  Scheduler scheduler(2);
  const int64_t start = Scheduler::nowMs();
  scheduler.add(&stuck, start);
  scheduler.add(&quick, start);
  scheduler.waitDone(&quick);
  EXPECT_LT(Scheduler::nowMs() - start, 1400) << "the quick task waited for the stuck one";
  scheduler.waitDone(&stuck);
  const auto l = scheduler.lateness();
  EXPECT_EQ(l.total.turns, 21u);
  EXPECT_LT(l.total.p99_ms, 200);
}

}  // namespace
}  // namespace ferry::core
