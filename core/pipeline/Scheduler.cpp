#include "pipeline/Scheduler.h"

#include <algorithm>
#include <chrono>

#include "services/Time.h"

namespace ferry::core {

int64_t Scheduler::nowMs() { return steadyMs(); }

Scheduler::Scheduler(size_t workers) {
  workers = std::max<size_t>(1, workers);
  threads_.reserve(workers);
  for (size_t i = 0; i < workers; ++i) threads_.emplace_back([this] { work(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  ready_.notify_all();
  for (auto& t : threads_) t.join();
}

void Scheduler::push(Task* task, Entry& entry, int64_t due_ms) {
  entry.state = State::Queued;
  entry.due_ms = due_ms;
  entry.ticket = next_ticket_++;
  queue_.push(Item{due_ms, entry.ticket, task});
  ready_.notify_one();
}

void Scheduler::add(Task* task, int64_t due_ms) {
  std::lock_guard lock(mutex_);
  push(task, entries_[task], due_ms);
}

void Scheduler::wake(Task* task) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(task);
  if (it == entries_.end()) return;
  Entry& e = it->second;
  if (e.state == State::Running) {
    e.state = State::RunningWoken;
  } else if (e.state == State::Queued) {
    const int64_t now = nowMs();
    if (e.due_ms > now) push(task, e, now);  // the older queue item goes stale
  }
}

void Scheduler::waitDone(Task* task) {
  std::unique_lock lock(mutex_);
  done_.wait(lock, [&] { return entries_.count(task) == 0; });
}

void Scheduler::Histogram::add(int64_t late_ms) {
  late_ms = std::max<int64_t>(0, late_ms);
  const size_t bucket = late_ms < 1000 ? static_cast<size_t>(late_ms)
                                       : std::min<size_t>(buckets.size() - 1,
                                                          1000 + static_cast<size_t>(late_ms - 1000) / 100);
  ++buckets[bucket];
  ++turns;
  max_ms = std::max(max_ms, late_ms);
}

Scheduler::Lateness Scheduler::Histogram::summary() const {
  Lateness out;
  out.turns = turns;
  out.max_ms = max_ms;
  auto percentile = [&](double p) -> int64_t {
    if (turns == 0) return 0;
    const auto rank = static_cast<uint64_t>(p * static_cast<double>(turns - 1)) + 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < buckets.size(); ++i) {
      seen += buckets[i];
      if (seen >= rank)
        return i < 1000 ? static_cast<int64_t>(i) : 1000 + static_cast<int64_t>(i - 1000) * 100;
    }
    return max_ms;
  };
  out.p50_ms = percentile(0.50);
  out.p99_ms = percentile(0.99);
  return out;
}

void Scheduler::record(int64_t late_ms) {
  if (host_stopping_) {
    stop_.add(late_ms);
    return;
  }
  total_.add(late_ms);
  recent_.add(late_ms);
}

void Scheduler::stopping() {
  std::lock_guard lock(mutex_);
  host_stopping_ = true;
}

Scheduler::LatenessReport Scheduler::lateness() {
  std::lock_guard lock(mutex_);
  LatenessReport out{total_.summary(), recent_.summary(), stop_.summary()};
  recent_ = Histogram{};
  return out;
}

void Scheduler::work() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (queue_.empty()) {
      ready_.wait(lock);
      continue;
    }
    const Item top = queue_.top();
    auto it = entries_.find(top.task);
    if (it == entries_.end() || it->second.ticket != top.ticket ||
        it->second.state != State::Queued) {
      queue_.pop();  // stale: the task was woken earlier, or ended
      continue;
    }
    const int64_t now = nowMs();
    if (top.due_ms > now) {
      ready_.wait_for(lock, std::chrono::milliseconds(top.due_ms - now));
      continue;
    }
    queue_.pop();
    it->second.state = State::Running;
    record(now - top.due_ms);
    lock.unlock();
    const int64_t next = top.task->step();
    lock.lock();
    it = entries_.find(top.task);
    if (next == kDone) {
      entries_.erase(it);
      done_.notify_all();
      continue;
    }
    const bool woken = it->second.state == State::RunningWoken;
    push(top.task, it->second, woken ? std::min(next, nowMs()) : next);
  }
}

}  // namespace ferry::core
