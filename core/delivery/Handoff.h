// The hot path from the sources to the sinks that are caught up: the events a source just
// committed, kept in memory, so that a sink at the head of the journal gets them without
// reading them back. The journal stays the source of truth: a sink that is behind what memory
// holds (after a restart, a long outage, or events written by anything but this process's
// sources) reads the journal, and memory only ever answers for a range it holds completely.
//
// Threading: every method is safe from any thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "journal/EventLog.h"

namespace ferry::core {

// A batch for a sink: shared with the hand-off and other sinks, never copied per sink.
using EventBatch = std::vector<std::shared_ptr<const JournalEvent>>;

class Handoff {
 public:
  // Keeps at most about `max_bytes` of event bodies; older events fall out (sinks that still
  // need them read the journal).
  explicit Handoff(size_t max_bytes) : max_bytes_(max_bytes) {}

  // Memory never answers again: every read goes to the journal. For a journal that other hosts
  // write too (PostgreSQL, several hosts): their events never pass through this memory, which
  // could not tell that it misses them. Before any commit.
  void disable() { disabled_ = true; }

  // Runs `commit`, which journals `events` in ONE transaction and returns the last sequence it
  // assigned (consecutive sequences, as EventLog::commit guarantees), then publishes them. Calls
  // are serialised, so memory sees commits in sequence order. `events` is consumed (bodies are
  // moved, not copied) only after `commit` succeeded; when it throws, nothing is published.
  int64_t commitAndPublish(const std::string& source, std::vector<NewEvent>& events,
                           int64_t fetched_at_ms, const std::function<int64_t()>& commit);

  // The events after `after` from `sources` (empty: every source), ascending, at most `limit`;
  // nullopt when memory does not hold every event after `after` (read the journal instead).
  std::optional<EventBatch> readAfter(int64_t after, const std::vector<std::string>& sources,
                                      size_t limit);
  // How many events from `sources` lie after `after`; nullopt as above.
  std::optional<int64_t> countAfter(int64_t after, const std::vector<std::string>& sources);

 private:
  // Index of the first event with a sequence > `after`; only when after >= covered_from_.
  size_t indexAfter(int64_t after) const;
  static bool wanted(const JournalEvent& e, const std::vector<std::string>& sources);

  const size_t max_bytes_;
  std::atomic<bool> disabled_{false};
  std::mutex publish_mutex_;  // one commit-and-publish at a time
  std::mutex mutex_;          // guards what follows
  std::deque<std::shared_ptr<const JournalEvent>> events_;  // consecutive sequences
  // Memory holds every event with a sequence > covered_from_ (up to the journal's last); -1 until
  // the first publish.
  int64_t covered_from_ = -1;
  size_t bytes_ = 0;
};

// What a sink reads next: the events after `after` from `sources` (empty: all), ascending, at most
// `limit`, from memory when it holds them, else from the journal.
EventBatch readFeed(Handoff& handoff, EventLog& events, int64_t after,
                    const std::vector<std::string>& sources, size_t limit);
// How many events from `sources` lie after `after` (memory when it can tell, else the journal).
int64_t countFeed(Handoff& handoff, EventLog& events, int64_t after,
                  const std::vector<std::string>& sources);

}  // namespace ferry::core
