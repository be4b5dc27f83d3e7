// The cursor algorithm of DESIGN.md, for one source: one poll cycle at a time, pages fetched
// through a function so that the algorithm is tested against any simulated remote.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "delivery/Handoff.h"
#include "journal/EventLog.h"
#include "runtime/HostApi.h"
#include "runtime/Outcome.h"

namespace ferry::core {

struct PageRequest {
  std::string since;  // UTC text with milliseconds
  int64_t since_ms = 0;
  uint32_t offset = 0;
  uint32_t limit = 0;
};

struct PageResult {
  Status status = Status::Ok;
  std::vector<FetchedItem> items;
  // Unreadable items set aside on this page: journalled with it, as source dead letters.
  std::vector<SetAsideItem> set_aside;
  uint32_t received = 0;  // items the remote returned (>= items.size() when some were filtered)
  std::string error;
  int64_t retry_after_ms = -1;
};

using FetchPage = std::function<PageResult(const PageRequest&)>;

struct CycleSettings {
  int64_t lookback_ms = 5000;
  uint32_t page_size = 100;
  int64_t commit_pages = 20;          // pages per journal transaction while behind
  int64_t commit_interval_ms = 500;   // …or this long
  std::string start_from;             // UTC text: the first cursor
  // How far ahead of the host's clock a version may be and still move the cursor.
  int64_t clock_skew_ms = 3600 * 1000;
};

struct CycleResult {
  Status status = Status::Ok;
  std::string error;
  int64_t retry_after_ms = -1;
  int64_t pages = 0;
  int64_t items = 0;       // items fetched, repeats included
  int64_t new_events = 0;  // events journalled
  int64_t passes = 0;      // extra passes over an instant that needed offset paging
  std::string cursor;      // where the source stands after the cycle (its `since`)
  // Items stamped more than clock_skew_ms ahead of the host's clock: journalled and delivered,
  // but the cursor did not follow them. `future_items` counts the new ones, `future_seen` every
  // one the cycle read (the cursor stays behind them, so each cycle reads them again until the
  // clock catches up). The first of them (a new one when there is one), as
  // "<entity> '<key>' stamped <version>".
  int64_t future_items = 0;
  int64_t future_seen = 0;
  std::string future_example;
  // Unreadable items journalled as source dead letters (committed pages only).
  int64_t set_aside = 0;
};

class CursorEngine {
 public:
  // With `handoff`, every commit is also published to the caught-up sinks in memory.
  CursorEngine(std::string source, EventLog& log, CycleSettings settings,
               Handoff* handoff = nullptr);

  // Runs one poll cycle: pages from the cursor (minus the look-back) until the remote has
  // nothing newer, journalling new events and the cursor page by page (grouped into one
  // transaction per commit_pages / commit_interval). A failed page ends the cycle: the pages
  // before it are kept, nothing of it is. `on_commit` is called after each journal commit that
  // added events, with the cycle's progress so far. Stops early (after committing what it has)
  // when `stop` turns true.
  using OnCommit = std::function<void(const CycleResult& so_far, const Cursor& cursor)>;
  CycleResult runCycle(const FetchPage& fetch, const std::atomic<bool>& stop,
                       const OnCommit& on_commit = {});

  // The cursor the next cycle starts from.
  Cursor currentCursor();

 private:
  struct Pending;
  std::string source_;
  EventLog& log_;
  CycleSettings settings_;
  Handoff* handoff_;
};

}  // namespace ferry::core
