#include "pipeline/CursorEngine.h"

#include <algorithm>
#include <future>
#include <memory>
#include <optional>
#include <string_view>

#include "services/Text.h"
#include "services/Time.h"

namespace ferry::core {
namespace {

constexpr int64_t kNsPerMs = 1000000;

// Paging decisions happen at millisecond granularity: that is what a request can express, and
// comparing finer stamps against a floored `since` would make a page look newer than the
// instant it started at, so the cursor would never move.
int64_t floorMs(int64_t ns) { return ns >= 0 ? ns / kNsPerMs : -((-ns + kNsPerMs - 1) / kNsPerMs); }

// The key of the engine's version maps: entity + '\x1f' + key.
std::string versionMapKey(std::string_view entity, std::string_view key) {
  std::string out;
  out.reserve(entity.size() + 1 + key.size());
  out.append(entity).append(1, '\x1f').append(key);
  return out;
}

}  // namespace

// Events of pages fetched but not yet committed, and the versions they carry, so that dedupe
// sees them before they reach the journal.
struct CursorEngine::Pending {
  std::vector<NewEvent> events;
  std::vector<SetAsideItem> set_aside;
  std::unordered_map<std::string, VersionSeen> versions;
  int64_t pages = 0;
  int64_t started_ms = 0;
};

CursorEngine::CursorEngine(std::string source, EventLog& log, CycleSettings settings,
                           Handoff* handoff)
    : source_(std::move(source)), log_(log), settings_(std::move(settings)), handoff_(handoff) {}

Cursor CursorEngine::currentCursor() {
  if (auto c = log_.cursor(source_)) return *c;
  Cursor c;
  auto ns = parseInstantNs(settings_.start_from);
  c.since_ns = ns ? floorMs(*ns) * kNsPerMs : floorMs(nowNs()) * kNsPerMs;
  c.since = formatInstantMs(c.since_ns);
  return c;
}

CycleResult CursorEngine::runCycle(const FetchPage& fetch, const std::atomic<bool>& stop,
                                   const OnCommit& on_commit) {
  CycleResult result;
  const Cursor start = currentCursor();
  result.cursor = start.since;
  const uint32_t limit = std::max<uint32_t>(1, settings_.page_size);
  // Items stamped past this instant (the host's clock plus a tolerance for skew) are delivered,
  // but the cursor does not follow them: one order stamped 2200 would otherwise move the cursor
  // there, and no later real change would ever be asked for again. The remote sorts by version,
  // so the first such item also ends the plausible part of the window.
  const int64_t horizon_ms = floorMs(nowNs()) + settings_.clock_skew_ms;

  // The cursor to persist: never behind where the cycle started (the look-back reads older
  // items again, it does not move the cursor back), and only ever moved by the data.
  int64_t persist_ms = floorMs(start.since_ns);
  int64_t persist_offset = 0;

  // Where the next request goes. The look-back catches changes a remote committed late with an
  // earlier stamp; dedupe drops the repeats it brings.
  int64_t since_ms = persist_ms - settings_.lookback_ms;
  uint32_t offset = 0;

  // Offset paging within one instant (more items share `since_ms` than a page holds): when one
  // of the tied items changes between two pages the others slide back and one is skipped. So a
  // window that needed offset paging is read again from offset 0, until a whole pass over it
  // finds nothing new at that instant.
  bool tied = false;
  bool pass_found_new = false;

  Pending pending;
  // The commit in flight: while the journal writes it, the next page is fetched and parsed. At
  // most one at a time, in order; its versions stay visible to dedupe until it is done, and its
  // failure (JournalError) fails the cycle, so nothing after it is committed either.
  struct InFlight {
    std::future<void> done;
    std::unordered_map<std::string, VersionSeen> versions;
    int64_t events = 0;
    int64_t set_aside = 0;
    Cursor cursor;
  } inflight;
  auto settle = [&]() {
    if (!inflight.done.valid()) return;
    inflight.done.get();
    result.cursor = inflight.cursor.since;
    result.new_events += inflight.events;
    result.set_aside += inflight.set_aside;
    const bool added = inflight.events > 0;
    inflight.versions.clear();
    inflight.events = 0;
    inflight.set_aside = 0;
    if (added && on_commit) on_commit(result, inflight.cursor);
  };
  auto flush = [&]() {
    if (pending.pages == 0 && pending.events.empty()) return;
    if (pending.events.empty() && pending.set_aside.empty() &&
        persist_ms == floorMs(start.since_ns) && persist_offset == start.offset) {
      // Nothing new and the cursor where the journal has it: nothing to write. An idle poll
      // costs no transaction (thousands of sources poll mostly nothing).
      pending = Pending{};
      return;
    }
    settle();
    Cursor c;
    c.since_ns = persist_ms * kNsPerMs;
    c.since = formatInstantMs(c.since_ns);
    c.offset = persist_offset;
    auto events = std::make_shared<std::vector<NewEvent>>(std::move(pending.events));
    auto set_aside = std::make_shared<std::vector<SetAsideItem>>(std::move(pending.set_aside));
    inflight.versions = std::move(pending.versions);
    inflight.events = static_cast<int64_t>(events->size());
    inflight.set_aside = static_cast<int64_t>(set_aside->size());
    inflight.cursor = c;
    inflight.done = std::async(std::launch::async, [this, events, set_aside, c] {
      if (handoff_ != nullptr)
        handoff_->commitAndPublish(source_, *events, nowMs(),
                                   [&] { return log_.commit(source_, *events, c, *set_aside); });
      else
        log_.commit(source_, *events, c, *set_aside);
    });
    pending = Pending{};
  };

  while (true) {
    if (stop.load()) {
      flush();
      settle();
      result.status = Status::Retry;
      result.error = "stopping";
      return result;
    }
    PageRequest request;
    request.since_ms = since_ms;
    request.since = formatInstantMs(since_ms * kNsPerMs);
    request.offset = offset;
    request.limit = limit;
    PageResult page = fetch(request);
    if (page.status != Status::Ok) {
      // The pages before this one are complete and consistent with the cursor: keep them.
      flush();
      settle();
      result.status = page.status;
      result.error = page.error;
      result.retry_after_ms = page.retry_after_ms;
      return result;
    }
    ++result.pages;
    result.items += static_cast<int64_t>(page.items.size());
    for (SetAsideItem& item : page.set_aside) {
      item.since_ms = since_ms;
      pending.set_aside.push_back(std::move(item));
    }
    if (pending.pages == 0) pending.started_ms = steadyMs();
    ++pending.pages;

    // Dedupe against the pending pages, the commit in flight and the journal: new only when
    // newer than the latest version seen for the key. The journal is asked, once for the page,
    // only about keys memory does not hold.
    const size_t count = page.items.size();
    std::vector<std::string> map_keys(count);
    std::vector<const VersionSeen*> seen(count, nullptr);
    std::vector<KeyRef> unknown;
    std::vector<size_t> unknown_at;
    for (size_t i = 0; i < count; ++i) {
      const FetchedItem& item = page.items[i];
      map_keys[i] = versionMapKey(item.entity, item.key);
      if (pending.versions.count(map_keys[i])) continue;  // looked at again below
      if (auto in = inflight.versions.find(map_keys[i]); in != inflight.versions.end()) {
        seen[i] = &in->second;
      } else {
        unknown.push_back({item.entity, item.key});
        unknown_at.push_back(i);
      }
    }
    const auto stored = unknown.empty() ? std::vector<std::optional<VersionSeen>>{}
                                        : log_.latestVersions(source_, unknown);
    for (size_t j = 0; j < stored.size(); ++j)
      if (stored[j]) seen[unknown_at[j]] = &*stored[j];
    int64_t newest_ns = INT64_MIN;
    int64_t future_in_page = 0;
    bool new_at_since = false;
    for (size_t i = 0; i < count; ++i) {
      FetchedItem& item = page.items[i];
      const bool future = floorMs(item.version_ns) > horizon_ms;
      if (future && result.future_seen++ == 0 && result.future_items == 0)
        result.future_example = printable(item.entity + " '" + item.key + "' stamped " +
                                          item.version);
      if (future) ++future_in_page;
      else newest_ns = std::max(newest_ns, item.version_ns);
      // Pending first: it holds what this page already took of the same key.
      const VersionSeen* last = seen[i];
      if (auto it = pending.versions.find(map_keys[i]); it != pending.versions.end())
        last = &it->second;
      if (last != nullptr && item.version_ns <= last->version_ns) continue;
      if (future && result.future_items++ == 0)
        result.future_example = printable(item.entity + " '" + item.key + "' stamped " +
                                          item.version);
      NewEvent e;
      e.entity = std::move(item.entity);
      e.key = std::move(item.key);
      e.version = std::move(item.version);
      e.version_ns = item.version_ns;
      e.previous = last != nullptr ? last->version : "";
      e.body = std::move(item.body);
      e.meta = std::move(item.meta);
      e.echo = item.echo;
      pending.versions.insert_or_assign(std::move(map_keys[i]),
                                        VersionSeen{e.version, e.version_ns});
      pending.events.push_back(std::move(e));
      if (floorMs(item.version_ns) == since_ms) new_at_since = true;
    }

    const uint32_t received = std::max<uint32_t>(page.received,
                                                 static_cast<uint32_t>(page.items.size()));
    const bool full = received >= limit && future_in_page == 0;
    const bool reaches_past = newest_ns != INT64_MIN && floorMs(newest_ns) > since_ms;
    if (tied) pass_found_new = pass_found_new || new_at_since;

    if (full && !reaches_past) {
      // A full page with nothing newer than `since`: page within the instant.
      if (!tied) {
        tied = true;
        pass_found_new = new_at_since;
      }
      offset += received;
      if (since_ms >= persist_ms) {
        persist_ms = since_ms;
        persist_offset = offset;
      }
    } else {
      if (tied) {
        tied = false;
        if (pass_found_new) {
          // Read the instant again from its start before the cursor may leave it.
          ++result.passes;
          offset = 0;
          pass_found_new = false;
          continue;
        }
      }
      if (!full) {
        // The window is exhausted: the cycle is done.
        if (reaches_past && floorMs(newest_ns) > persist_ms) persist_ms = floorMs(newest_ns);
        persist_offset = 0;
        flush();
        settle();
        return result;
      }
      // Keyset paging: the next page starts at the newest version seen, offset 0.
      since_ms = floorMs(newest_ns);
      offset = 0;
      if (since_ms > persist_ms) {
        persist_ms = since_ms;
        persist_offset = 0;
      }
    }

    if (pending.pages >= std::max<int64_t>(1, settings_.commit_pages) ||
        steadyMs() - pending.started_ms >= settings_.commit_interval_ms)
      flush();
  }
}

}  // namespace ferry::core
