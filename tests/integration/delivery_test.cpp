// End to end, all going well: backfill through ties larger than a page, changes with their
// previous version, routing, batching, echoes and the delivered hook.
#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "FerryTest.h"

namespace ferry::it {
namespace {

struct DataItem {
  std::string key;
  std::string version;
};

std::string toLines(const std::vector<DataItem>& items) {
  std::string text;
  for (const auto& i : items) text += itemLine(i.key, i.version);
  return text;
}

// `count` items k00.. with distinct versions 1 s apart.
std::vector<DataItem> simpleItems(int count, const std::string& prefix = "k") {
  std::vector<DataItem> items;
  for (int i = 0; i < count; ++i)
    items.push_back({prefix + (i < 10 ? "0" : "") + std::to_string(i), versionAt(i * 1000)});
  return items;
}

std::string idOf(const std::string& source, const DataItem& item) {
  return source + "/order/" + item.key + "/" + item.version;
}

// ---------------------------------------------------------------------------------------------
// 1. Backfill: 150 items share one instant (15 pages of 10), others before and after it. Both
//    API styles must deliver each item exactly once and leave the cursor at the newest version.
// ---------------------------------------------------------------------------------------------

class BackfillTest : public FerryTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(BackfillTest, DeliversEveryItemOnceThroughTiesLargerThanAPage) {
  std::vector<DataItem> items;
  char key[16];
  for (int i = 0; i < 50; ++i) {
    std::snprintf(key, sizeof key, "a%03d", i);
    std::string version = versionAt(i * 1000);
    // Every tenth one comes with another zone: compared as an instant, kept as written.
    if (i % 10 == 5) {
      version = versionAt(i * 1000 + 3600000);
      version.replace(version.size() - 1, 1, "+01:00");
    }
    items.push_back({key, version});
  }
  for (int i = 0; i < 150; ++i) {
    std::snprintf(key, sizeof key, "t%03d", i);
    items.push_back({key, versionAt(100000)});
  }
  for (int i = 0; i < 50; ++i) {
    std::snprintf(key, sizeof key, "z%03d", i);
    items.push_back({key, versionAt(200000 + i * 1000)});
  }
  const std::string newest = versionAt(249000);
  std::vector<DataItem> shuffled = items;
  std::shuffle(shuffled.begin(), shuffled.end(), std::mt19937(7));
  writeFile(dir_.file("data.jsonl"), toLines(shuffled));
  writeConfig(sourceSection("src", dir_.file("data.jsonl"), "window = " + GetParam() + "\n") +
              sinkSection("out", dir_.file("out.jsonl")));

  RunResult run = runOnce();
  ASSERT_EQ(run.exit_code, 0) << describe(run);

  auto lines = readSinkLines(dir_.file("out.jsonl"));
  ASSERT_EQ(lines.size(), 250u);
  std::map<std::string, std::string> expected;
  for (const auto& i : items) expected[i.key] = i.version;
  std::set<std::string> seen;
  int64_t last_seq = 0;
  for (const auto& l : lines) {
    EXPECT_TRUE(seen.insert(l.key).second) << "delivered twice: " << l.key;
    ASSERT_TRUE(expected.count(l.key)) << "unknown key " << l.key;
    EXPECT_EQ(l.version, expected[l.key]) << l.key;
    EXPECT_EQ(l.source, "src");
    EXPECT_EQ(l.entity, "order");
    EXPECT_EQ(l.previous, "") << l.key;
    EXPECT_EQ(l.id, "src/order/" + l.key + "/" + expected[l.key]);
    EXPECT_GT(l.seq, last_seq) << "sequence not increasing at " << l.key;
    last_seq = l.seq;
  }
  EXPECT_EQ(seen.size(), 250u);

  auto st = status();
  ASSERT_FALSE(st.isNull());
  auto src = instance(st, "sources", "src");
  auto out = instance(st, "sinks", "out");
  ASSERT_FALSE(src.isNull()) << "no source 'src' in status";
  ASSERT_FALSE(out.isNull()) << "no sink 'out' in status";
  EXPECT_EQ(str(src->getObject("cursor"), "since"), newest);
  EXPECT_EQ(num(st, "last_sequence"), last_seq);
  EXPECT_EQ(num(out, "offset"), num(st, "last_sequence"));
  EXPECT_EQ(num(out, "backlog"), 0);
  EXPECT_EQ(num(out, "dead_letters"), 0);
}

INSTANTIATE_TEST_SUITE_P(Window, BackfillTest, ::testing::Values("inclusive", "exclusive"),
                         [](const auto& info) { return info.param; });

// ---------------------------------------------------------------------------------------------
// 2. Changes: a second run delivers exactly the changed keys, each with its previous version;
//    repeats (the look-back window, an identical line) are dropped.
// ---------------------------------------------------------------------------------------------

TEST_F(FerryTest, SecondRunDeliversOnlyTheChangesWithTheirPreviousVersion) {
  auto items = simpleItems(30);
  writeFile(dir_.file("data.jsonl"), toLines(items));
  writeConfig(sourceSection("src", dir_.file("data.jsonl"), "lookback = 5s\n") +
              sinkSection("out", dir_.file("out.jsonl")));
  RunResult first = runOnce();
  ASSERT_EQ(first.exit_code, 0) << describe(first);
  ASSERT_EQ(readSinkLines(dir_.file("out.jsonl")).size(), 30u);

  const std::vector<int> changed{3, 7, 11, 19, 25};
  std::map<std::string, std::pair<std::string, std::string>> expected;  // key -> (new, previous)
  std::string appended;
  for (size_t n = 0; n < changed.size(); ++n) {
    const DataItem& old = items[changed[n]];
    std::string version = versionAt(100000 + static_cast<int64_t>(n) * 10);
    expected[old.key] = {version, old.version};
    appended += itemLine(old.key, version);
  }
  appended += itemLine(items[5].key, items[5].version);  // the same version again: no change
  appendFile(dir_.file("data.jsonl"), appended);

  RunResult second = runOnce();
  ASSERT_EQ(second.exit_code, 0) << describe(second);
  auto lines = readSinkLines(dir_.file("out.jsonl"));
  ASSERT_EQ(lines.size(), 35u) << "the second run should add exactly the 5 changes";
  std::set<std::string> keys;
  for (size_t i = 30; i < lines.size(); ++i) {
    const auto& l = lines[i];
    ASSERT_TRUE(expected.count(l.key)) << "unexpected delivery of " << l.key << " " << l.version;
    EXPECT_TRUE(keys.insert(l.key).second) << l.key << " delivered twice";
    EXPECT_EQ(l.version, expected[l.key].first);
    EXPECT_EQ(l.previous, expected[l.key].second) << l.key;
    EXPECT_GT(l.seq, lines[i - 1].seq);
  }
  EXPECT_EQ(keys.size(), 5u);
  auto st = status();
  ASSERT_FALSE(st.isNull());
  auto src = instance(st, "sources", "src");
  ASSERT_FALSE(src.isNull());
  EXPECT_EQ(str(src->getObject("cursor"), "since"), versionAt(100040));
}

// ---------------------------------------------------------------------------------------------
// 3. Routing: `from` limits a sink to the named sources; without it a sink gets every source.
// ---------------------------------------------------------------------------------------------

TEST_F(FerryTest, SinksGetOnlyTheSourcesTheyAreRoutedFrom) {
  writeFile(dir_.file("one.jsonl"), toLines(simpleItems(20, "p")));
  writeFile(dir_.file("two.jsonl"), toLines(simpleItems(15, "q")));
  writeConfig(sourceSection("src1", dir_.file("one.jsonl")) +
              sourceSection("src2", dir_.file("two.jsonl")) +
              sinkSection("a", dir_.file("a.jsonl"), "from = src1\n") +
              sinkSection("b", dir_.file("b.jsonl")));
  RunResult run = runOnce();
  ASSERT_EQ(run.exit_code, 0) << describe(run);

  auto a = readSinkLines(dir_.file("a.jsonl"));
  auto b = readSinkLines(dir_.file("b.jsonl"));
  std::set<std::string> a_keys, b_keys;
  for (const auto& l : a) {
    EXPECT_EQ(l.source, "src1") << l.key;
    a_keys.insert(l.key);
  }
  std::map<std::string, int> b_sources;
  for (const auto& l : b) {
    b_keys.insert(l.source + ":" + l.key);
    ++b_sources[l.source];
  }
  EXPECT_EQ(a.size(), 20u);
  EXPECT_EQ(a_keys.size(), 20u);
  EXPECT_EQ(b.size(), 35u);
  EXPECT_EQ(b_keys.size(), 35u);
  EXPECT_EQ(b_sources["src1"], 20);
  EXPECT_EQ(b_sources["src2"], 15);

  auto st = status();
  ASSERT_FALSE(st.isNull());
  for (const char* sink : {"a", "b"}) {
    auto s = instance(st, "sinks", sink);
    ASSERT_FALSE(s.isNull()) << sink;
    EXPECT_EQ(num(s, "backlog"), 0) << sink;
  }
}

// ---------------------------------------------------------------------------------------------
// 4. Batching: no write call carries more than batch_size events.
// ---------------------------------------------------------------------------------------------

TEST_F(FerryTest, WritesAreBatchedUpToBatchSize) {
  writeFile(dir_.file("data.jsonl"), toLines(simpleItems(100)));
  writeConfig(sourceSection("src", dir_.file("data.jsonl")) +
              sinkSection("out", dir_.file("out.jsonl"), "batch_size = 7\n"));
  RunResult run = runOnce();
  ASSERT_EQ(run.exit_code, 0) << describe(run);

  auto lines = readSinkLines(dir_.file("out.jsonl"));
  ASSERT_EQ(lines.size(), 100u);
  std::set<std::string> keys;
  int64_t largest = 0;
  for (const auto& l : lines) {
    keys.insert(l.key);
    EXPECT_GE(l.batch_size, 1);
    EXPECT_LE(l.batch_size, 7) << "batch larger than batch_size at " << l.key;
    largest = std::max(largest, l.batch_size);
  }
  EXPECT_EQ(keys.size(), 100u);
  // The journal held everything before the sink drained it: batches should fill up.
  EXPECT_EQ(largest, 7);
  // The lines of one write call are consecutive: split them into calls again.
  for (size_t i = 0; i < lines.size();) {
    const int64_t n = lines[i].batch_size;
    ASSERT_LE(i + static_cast<size_t>(n), lines.size()) << "truncated batch at line " << i;
    for (int64_t j = 0; j < n; ++j) ASSERT_EQ(lines[i + j].batch_size, n) << "line " << i + j;
    i += static_cast<size_t>(n);
  }
}

// ---------------------------------------------------------------------------------------------
// 11. Echo: a sink that skips echoes never sees them; one that does not gets them marked.
// ---------------------------------------------------------------------------------------------

TEST_F(FerryTest, EchoesReachOnlySinksThatDoNotSkipThem) {
  auto items = simpleItems(6);  // k00..k05
  writeFile(dir_.file("data.jsonl"), toLines(items));
  writeConfig(sourceSection("src", dir_.file("data.jsonl"), "echo_keys = k02\n") +
              sinkSection("skipping", dir_.file("skipping.jsonl")) +
              sinkSection("all", dir_.file("all.jsonl"), "skip_echo = false\n"));
  RunResult run = runOnce();
  ASSERT_EQ(run.exit_code, 0) << describe(run);

  auto skipping = readSinkLines(dir_.file("skipping.jsonl"));
  auto all = readSinkLines(dir_.file("all.jsonl"));
  EXPECT_EQ(skipping.size(), 5u);
  for (const auto& l : skipping) {
    EXPECT_NE(l.key, "k02") << "an echo reached a sink with skip_echo = true";
    EXPECT_FALSE(l.echo) << l.key;
  }
  ASSERT_EQ(all.size(), 6u);
  for (const auto& l : all) EXPECT_EQ(l.echo, l.key == "k02") << l.key;

  auto st = status();
  ASSERT_FALSE(st.isNull());
  for (const char* sink : {"skipping", "all"}) {
    auto s = instance(st, "sinks", sink);
    ASSERT_FALSE(s.isNull()) << sink;
    EXPECT_EQ(num(s, "backlog"), 0) << sink;
  }
}

// ---------------------------------------------------------------------------------------------
// 10. The delivered hook runs for every event that every routed sink has, and not for an event
//     a sink dead-lettered.
// ---------------------------------------------------------------------------------------------

TEST_F(FerryTest, DeliveredHookSeesDeliveredEventsButNotDeadLetters) {
  auto items = simpleItems(10);  // k00..k09
  writeFile(dir_.file("data.jsonl"), toLines(items));
  writeFile(dir_.file("b.fail"), "fatal_keys k03\n");
  writeConfig(sourceSection("src", dir_.file("data.jsonl"),
                            "delivered_log = " + dir_.file("delivered.log") + "\n") +
              sinkSection("a", dir_.file("a.jsonl")) +
              sinkSection("b", dir_.file("b.jsonl"), "fail_file = " + dir_.file("b.fail") + "\n"));
  RunResult run = runOnce();
  ASSERT_EQ(run.exit_code, 2) << "done, with a new dead letter: " << describe(run);

  std::set<std::string> expected;
  for (const auto& i : items)
    if (i.key != "k03") expected.insert(idOf("src", i));
  auto logged = readLines(dir_.file("delivered.log"));
  std::set<std::string> got(logged.begin(), logged.end());
  EXPECT_EQ(got, expected);
  EXPECT_EQ(logged.size(), got.size()) << "delivered() called twice for an event in one run";
  EXPECT_EQ(readSinkLines(dir_.file("a.jsonl")).size(), 10u);
  EXPECT_EQ(readSinkLines(dir_.file("b.jsonl")).size(), 9u);
}

}  // namespace
}  // namespace ferry::it
