// Runs the sources as tasks on a small pool of worker threads, so that the process's thread count
// does not grow with the number of sources.
//
// A task is a source runner's turn: one step (operator work from its mailbox, the delivered hook,
// at most one poll cycle) that returns when the task wants its next turn. Between two turns a
// task holds no thread: waiting for its interval, for a retry's backoff or for a rate-limit grant
// it reserved (SourceRunner) is a due time in this scheduler's queue, nothing else. A task is in
// the queue at most once and never on two workers at once, so one source's cycles stay strictly
// one after the other, exactly as when each source had its own thread; the cursor algorithm
// (CursorEngine) does not know the difference.
//
// A step that blocks (a request to a remote that never answers, up to its deadline) holds its
// worker, and only that one: the others keep serving the queue, so with more workers than stuck
// sources every other source keeps its schedule.
//
// The lateness of every turn (when a worker took it, against when it was due) is kept in a
// histogram; summary() gives its percentiles (logged every minute by the pipeline), for the
// benchmark and for an operator who wonders whether `[host] workers` is too small.
#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <queue>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace ferry::core {

class Scheduler {
 public:
  // A step returns the steady-clock millisecond of its next turn, or kDone when the task ended
  // (it is then forgotten; it may be added again).
  static constexpr int64_t kDone = -1;

  class Task {
   public:
    virtual ~Task() = default;
    virtual int64_t step() = 0;
  };

  explicit Scheduler(size_t workers);
  // Stops the workers after the steps under way; tasks still queued are not run again.
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues `task` for a first turn at `due_ms` (steady clock). It must not be queued already.
  void add(Task* task, int64_t due_ms);
  // Moves `task`'s next turn to now (or to `due_ms` when given, if that is earlier). A task
  // that is running gets another turn right after the current one; an unknown task is ignored.
  void wake(Task* task);
  // Waits until `task`'s step returned kDone (at once when it is not known).
  void waitDone(Task* task);

  // Lateness of the turns taken since the start, and since the last call (`recent`).
  struct Lateness {
    uint64_t turns = 0;
    int64_t p50_ms = 0, p99_ms = 0, max_ms = 0;
  };
  struct LatenessReport {
    Lateness total, recent;
  };
  LatenessReport lateness();
  size_t workers() const { return threads_.size(); }

  static int64_t nowMs();

 private:
  enum class State { Queued, Running, RunningWoken };
  struct Entry {
    State state = State::Queued;
    int64_t due_ms = 0;
    uint64_t ticket = 0;  // the queue item that is current; older ones are stale
  };
  struct Item {
    int64_t due_ms;
    uint64_t ticket;
    Task* task;
    bool operator>(const Item& o) const {
      return due_ms != o.due_ms ? due_ms > o.due_ms : ticket > o.ticket;
    }
  };
  void work();
  void push(Task* task, Entry& entry, int64_t due_ms);  // mutex_ held
  void record(int64_t late_ms);                         // mutex_ held

  std::mutex mutex_;
  std::condition_variable ready_;  // the queue's head changed, or stopping
  std::condition_variable done_;   // a task ended
  std::priority_queue<Item, std::vector<Item>, std::greater<Item>> queue_;
  std::unordered_map<Task*, Entry> entries_;
  uint64_t next_ticket_ = 1;
  bool stopping_ = false;
  // Lateness histograms: 1 ms buckets up to 1 s, then 100 ms buckets up to 100 s.
  struct Histogram {
    std::array<uint64_t, 2000> buckets{};
    uint64_t turns = 0;
    int64_t max_ms = 0;
    void add(int64_t late_ms);
    Lateness summary() const;
  };
  Histogram total_, recent_;
  std::vector<std::thread> threads_;
};

}  // namespace ferry::core
