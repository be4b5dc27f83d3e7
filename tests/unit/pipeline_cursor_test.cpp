// The cursor algorithm against a simulated remote that pages by time, with a real SQLite
// journal: ties at page boundaries, more tied items than a page holds, exclusive and inclusive
// windows, empty pages, repeats, and items that change while pages are read.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "journal/Journal.h"
#include "pipeline/CursorEngine.h"
#include "services/Time.h"

namespace ferry::core {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kMs = 1000000;  // ns per ms
const int64_t kBase = *parseInstantNs("2025-04-23T10:00:00.000Z");

// The remote: the current version of every key, served sorted by (version, key).
class Remote {
 public:
  enum class Window { Inclusive, Exclusive };
  explicit Remote(Window window = Window::Inclusive) : window_(window) {}

  void set(const std::string& key, int64_t version_ns) { items_[key] = version_ns; }
  size_t size() const { return items_.size(); }
  const std::map<std::string, int64_t>& items() const { return items_; }

  // Called after each page is served, with the number of pages served so far.
  std::function<void(int)> after_page;
  // Pages (1-based) that fail with RETRY.
  std::set<int> failing_pages;
  int pages_served = 0;
  int fetch_calls = 0;

  PageResult fetch(const PageRequest& r) {
    ++fetch_calls;
    PageResult page;
    if (failing_pages.count(fetch_calls)) {
      page.status = Status::Retry;
      page.error = "HTTP 503";
      return page;
    }
    // An exclusive API ("after T") is asked from one millisecond earlier, as plugins do.
    const int64_t since_ns = r.since_ms * kMs;
    std::vector<std::pair<int64_t, std::string>> sorted;
    for (const auto& [k, v] : items_) {
      bool in = window_ == Window::Inclusive ? v >= since_ns : v > since_ns - kMs;
      if (in) sorted.emplace_back(v, k);
    }
    std::sort(sorted.begin(), sorted.end());
    for (size_t i = r.offset; i < sorted.size() && i < r.offset + r.limit; ++i) {
      FetchedItem item;
      item.entity = "order";
      item.key = sorted[i].second;
      item.version = formatInstantMs(sorted[i].first);
      item.version_ns = sorted[i].first;
      item.body = "{\"id\":\"" + item.key + "\"}";
      page.items.push_back(std::move(item));
    }
    page.received = static_cast<uint32_t>(page.items.size());
    ++pages_served;
    if (after_page) after_page(pages_served);
    return page;
  }

 private:
  Window window_;
  std::map<std::string, int64_t> items_;
};

class CursorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("ferry-cursor-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    journal_ = openSqliteJournal((dir_ / "journal.db").string());
    settings_.lookback_ms = 0;
    settings_.page_size = 100;
    settings_.commit_pages = 1;
    settings_.start_from = "2025-01-01T00:00:00.000Z";
  }
  void TearDown() override {
    journal_.reset();
    fs::remove_all(dir_);
  }

  CycleResult cycle(Remote& remote) {
    CursorEngine engine("src", journal_->events(), settings_);
    return engine.runCycle([&](const PageRequest& r) { return remote.fetch(r); }, stop_);
  }

  std::vector<JournalEvent> events() { return journal_->events().readAfter(0, {}, 1000000); }

  // key -> every version journalled, in journal order.
  std::map<std::string, std::vector<std::string>> versionsByKey() {
    std::map<std::string, std::vector<std::string>> out;
    for (const auto& e : events()) out[e.key].push_back(e.version);
    return out;
  }

  // Every key of the remote journalled at its current version, and no version twice.
  void expectMatchesRemote(const Remote& remote) {
    auto by_key = versionsByKey();
    EXPECT_EQ(by_key.size(), remote.size());
    for (const auto& [key, version_ns] : remote.items()) {
      auto it = by_key.find(key);
      ASSERT_NE(it, by_key.end()) << "key " << key << " was never journalled";
      EXPECT_EQ(it->second.back(), formatInstantMs(version_ns)) << "key " << key;
      std::set<std::string> unique(it->second.begin(), it->second.end());
      EXPECT_EQ(unique.size(), it->second.size()) << "key " << key << " journalled twice";
    }
  }

  fs::path dir_;
  std::unique_ptr<Journal> journal_;
  CycleSettings settings_;
  std::atomic<bool> stop_{false};
};

std::string key(int i) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "k%04d", i);
  return buf;
}

TEST_F(CursorTest, BackfillOfDistinctVersionsEndsAtTheNewest) {
  Remote remote;
  for (int i = 0; i < 250; ++i) remote.set(key(i), kBase + i * 1000 * kMs);
  CycleResult r = cycle(remote);
  ASSERT_EQ(r.status, Status::Ok) << r.error;
  EXPECT_EQ(r.new_events, 250);
  expectMatchesRemote(remote);
  auto c = journal_->events().cursor("src");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->since, formatInstantMs(kBase + 249 * 1000 * kMs));
  // Sequences are strictly increasing in version order.
  auto ev = events();
  for (size_t i = 1; i < ev.size(); ++i) EXPECT_LT(ev[i - 1].sequence, ev[i].sequence);
}

TEST_F(CursorTest, VersionsTiedAcrossAPageBoundaryAreAllTaken) {
  Remote remote;
  // 80 distinct, then 40 sharing one instant: the tie straddles the first page boundary.
  for (int i = 0; i < 80; ++i) remote.set(key(i), kBase + i * kMs);
  for (int i = 80; i < 120; ++i) remote.set(key(i), kBase + 500 * kMs);
  for (int i = 120; i < 130; ++i) remote.set(key(i), kBase + (600 + i) * kMs);
  CycleResult r = cycle(remote);
  ASSERT_EQ(r.status, Status::Ok) << r.error;
  EXPECT_EQ(r.new_events, 130);
  expectMatchesRemote(remote);
}

TEST_F(CursorTest, MoreTiedItemsThanAPageHoldsArePagedByOffset) {
  Remote remote;
  for (int i = 0; i < 250; ++i) remote.set(key(i), kBase);  // one instant, 2.5 pages
  for (int i = 250; i < 260; ++i) remote.set(key(i), kBase + (i - 249) * kMs);
  CycleResult r = cycle(remote);
  ASSERT_EQ(r.status, Status::Ok) << r.error;
  EXPECT_EQ(r.new_events, 260);
  EXPECT_GE(r.passes, 1) << "the tied instant must be read again before the cursor leaves it";
  expectMatchesRemote(remote);
  EXPECT_EQ(journal_->events().cursor("src")->since, formatInstantMs(kBase + 10 * kMs));
}

TEST_F(CursorTest, ExactlyAPageOfTiedItemsAtTheEnd) {
  Remote remote;
  for (int i = 0; i < 100; ++i) remote.set(key(i), kBase);
  CycleResult r = cycle(remote);
  ASSERT_EQ(r.status, Status::Ok) << r.error;
  EXPECT_EQ(r.new_events, 100);
  expectMatchesRemote(remote);
}

TEST_F(CursorTest, ExclusiveApiAskedOneMillisecondEarlierMissesNothing) {
  Remote remote(Remote::Window::Exclusive);
  for (int i = 0; i < 150; ++i) remote.set(key(i), kBase + (i / 3) * kMs);  // ties of three
  for (int i = 150; i < 280; ++i) remote.set(key(i), kBase + 900 * kMs);    // 130 tied
  CycleResult r = cycle(remote);
  ASSERT_EQ(r.status, Status::Ok) << r.error;
  expectMatchesRemote(remote);
  // A second cycle brings only repeats.
  CycleResult again = cycle(remote);
  ASSERT_EQ(again.status, Status::Ok);
  EXPECT_EQ(again.new_events, 0);
}

TEST_F(CursorTest, EmptyPageLeavesTheCursorWhereItWas) {
  Remote remote;
  CycleResult r = cycle(remote);
  ASSERT_EQ(r.status, Status::Ok);
  EXPECT_EQ(r.new_events, 0);
  auto c = journal_->events().cursor("src");
  // Either nothing was stored or the start_from instant: never the local clock.
  if (c) EXPECT_EQ(c->since, "2025-01-01T00:00:00.000Z");
  CursorEngine engine("src", journal_->events(), settings_);
  EXPECT_EQ(engine.currentCursor().since, "2025-01-01T00:00:00.000Z");
}

TEST_F(CursorTest, RepeatsOfTheSameKeyAndVersionAreDropped) {
  Remote remote;
  for (int i = 0; i < 30; ++i) remote.set(key(i), kBase + i * kMs);
  ASSERT_EQ(cycle(remote).new_events, 30);
  // The inclusive window returns the newest item again, every cycle.
  for (int round = 0; round < 3; ++round) EXPECT_EQ(cycle(remote).new_events, 0);
  settings_.lookback_ms = 60000;  // a look-back re-reads everything: still nothing new
  EXPECT_EQ(cycle(remote).new_events, 0);
  EXPECT_EQ(events().size(), 30u);
}

TEST_F(CursorTest, AChangedKeyCarriesThePreviousVersion) {
  Remote remote;
  remote.set("a", kBase);
  remote.set("b", kBase + kMs);
  ASSERT_EQ(cycle(remote).new_events, 2);
  remote.set("a", kBase + 5000 * kMs);
  ASSERT_EQ(cycle(remote).new_events, 1);
  auto ev = events();
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[0].previous, "");
  EXPECT_EQ(ev[2].key, "a");
  EXPECT_EQ(ev[2].previous, formatInstantMs(kBase));
  EXPECT_EQ(ev[2].version, formatInstantMs(kBase + 5000 * kMs));
}

TEST_F(CursorTest, KeysChangingWhilePagesAreReadAreNotLost) {
  // The page-number bug of the naive loop: an order on an unread page changes (moves to the
  // end), everything behind it shifts forward by one, and page N+1 skips an item. Keyset paging
  // does not care.
  Remote remote;
  for (int i = 0; i < 500; ++i) remote.set(key(i), kBase + i * 10 * kMs);
  int64_t now = kBase + 100000 * kMs;
  remote.after_page = [&](int page) {
    if (page > 4) return;
    // An item already read and one not read yet both change.
    remote.set(key(page * 50), now + page * kMs);
    remote.set(key(page * 100 + 150 > 499 ? 499 : page * 100 + 150), now + (10 + page) * kMs);
  };
  CycleResult r = cycle(remote);
  ASSERT_EQ(r.status, Status::Ok) << r.error;
  remote.after_page = nullptr;
  cycle(remote);  // the next cycle picks up what changed behind the cursor's back, if anything
  expectMatchesRemote(remote);
}

TEST_F(CursorTest, ATiedKeyChangingBetweenOffsetPagesIsNotSkipped) {
  // 250 items share one instant. After the first page one of its items changes (leaves the
  // instant); every later item slides back by one, so offset 100 skips one item. The re-read of
  // the instant finds it.
  Remote remote;
  for (int i = 0; i < 250; ++i) remote.set(key(i), kBase);
  bool changed = false;
  remote.after_page = [&](int) {
    if (!changed) {
      remote.set(key(5), kBase + 7000 * kMs);
      changed = true;
    }
  };
  CycleResult r = cycle(remote);
  ASSERT_EQ(r.status, Status::Ok) << r.error;
  expectMatchesRemote(remote);
  auto by_key = versionsByKey();
  EXPECT_EQ(by_key[key(5)].size(), 2u) << "both versions of the changed key are journalled";
  EXPECT_EQ(events().size(), 251u);
}

TEST_F(CursorTest, AFailedPageKeepsTheCompletePagesBeforeIt) {
  Remote remote;
  for (int i = 0; i < 500; ++i) remote.set(key(i), kBase + i * kMs);
  remote.failing_pages = {3};
  settings_.commit_pages = 20;  // grouped: the failure still commits the two complete pages
  CycleResult r = cycle(remote);
  EXPECT_EQ(r.status, Status::Retry);
  EXPECT_EQ(r.error, "HTTP 503");
  // Keyset paging: page 2 starts at page 1's newest item (inclusive), so two pages hold 199
  // distinct items.
  EXPECT_EQ(events().size(), 199u);
  // The cursor stands at the newest item of the last complete page: nothing of page 3 counted.
  EXPECT_EQ(journal_->events().cursor("src")->since, formatInstantMs(kBase + 198 * kMs));
  CycleResult resumed = cycle(remote);
  ASSERT_EQ(resumed.status, Status::Ok) << resumed.error;
  expectMatchesRemote(remote);
}

TEST_F(CursorTest, LookbackCatchesALateCommitStampedBeforeTheCursor) {
  Remote remote;
  for (int i = 0; i < 10; ++i) remote.set(key(i), kBase + i * 1000 * kMs);
  ASSERT_EQ(cycle(remote).new_events, 10);
  // The remote commits a change late, stamped 2 s before the cursor.
  remote.set("late", kBase + 7000 * kMs);
  settings_.lookback_ms = 0;
  EXPECT_EQ(cycle(remote).new_events, 0) << "without look-back the late change is behind";
  settings_.lookback_ms = 5000;
  EXPECT_EQ(cycle(remote).new_events, 1);
  EXPECT_EQ(journal_->events().cursor("src")->since, formatInstantMs(kBase + 9000 * kMs))
      << "the look-back never moves the cursor back";
}

TEST_F(CursorTest, ItemsOnlyEmittedInPartStillCountAsAFullPage) {
  // A plugin that filters items reports how many the remote returned, so a full page is still
  // recognised and the cycle pages on.
  Remote remote;
  for (int i = 0; i < 150; ++i) remote.set(key(i), kBase + i * kMs);
  CursorEngine engine("src", journal_->events(), settings_);
  CycleResult r = engine.runCycle(
      [&](const PageRequest& q) {
        PageResult p = remote.fetch(q);
        // Drop odd keys, as a status filter would.
        std::vector<FetchedItem> kept;
        for (auto& item : p.items)
          if ((item.key.back() - '0') % 2 == 0) kept.push_back(std::move(item));
        p.items = std::move(kept);
        return p;
      },
      stop_);
  ASSERT_EQ(r.status, Status::Ok) << r.error;
  EXPECT_EQ(events().size(), 75u);
}

// One item stamped far in the future (a remote's bad clock, a typo in 2200) is delivered, but the
// cursor does not follow it: otherwise every later real change, stamped before it, would never be
// asked for again.
TEST_F(CursorTest, AFutureStampedItemIsDeliveredWithoutMovingTheCursorPastTheClock) {
  Remote remote;
  for (int i = 0; i < 250; ++i) remote.set(key(i), kBase + i * 1000 * kMs);
  const int64_t future_ns = *parseInstantNs("2200-01-01T00:00:00.000Z");
  remote.set("from-the-future", future_ns);
  CycleResult r = cycle(remote);
  ASSERT_EQ(r.status, Status::Ok) << r.error;
  EXPECT_EQ(r.new_events, 251);
  EXPECT_EQ(r.future_items, 1);
  auto cursor = journal_->events().cursor("src");
  ASSERT_TRUE(cursor.has_value());
  EXPECT_EQ(cursor->since_ns, kBase + 249 * 1000 * kMs) << cursor->since;

  // Later real changes (stamped now, before 2200) are still found.
  const int64_t now = (nowNs() / kMs) * kMs;
  remote.set(key(7), now);
  remote.set(key(300), now);
  r = cycle(remote);
  ASSERT_EQ(r.status, Status::Ok) << r.error;
  EXPECT_EQ(r.new_events, 2);
  expectMatchesRemote(remote);
}

}  // namespace
}  // namespace ferry::core
