// 9. Crash safety: `ferry run` killed with SIGKILL at random moments, restarted each time, while
//    the remote changes orders that were already delivered; a final `run --once` must leave
//    every version of every order in the sink. Duplicates are allowed (at-least-once) but only
//    as the same journalled event written again.
#include <signal.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <thread>

#include "FerryTest.h"

namespace ferry::it {
namespace {

TEST_F(FerryTest, KillNineAtRandomMomentsLosesNothing) {
  // 3000 orders: groups of 4 share an instant, and one block of 120 shares an instant (more than
  // a page of 50, so that offset paging is interrupted too).
  std::map<std::string, std::vector<std::string>> versions;  // key -> every version, in order
  std::string data;
  char key[16];
  for (int i = 0; i < 3000; ++i) {
    std::snprintf(key, sizeof key, "o%04d", i);
    int64_t ms = (i >= 1500 && i < 1620) ? 1500 * 250 : static_cast<int64_t>(i / 4) * 1000;
    std::string version = versionAt(ms);
    versions[key].push_back(version);
    data += itemLine(key, version);
  }
  writeFile(dir_.file("data.jsonl"), data);
  writeConfig(sourceSection("src", dir_.file("data.jsonl"),
                            "page_size = 50\nslow_ms = 30\ninterval = 100ms\nlookback = 2s\n") +
              sinkSection("out", dir_.file("out.jsonl"), "batch_size = 40\nslow_ms = 10\n"));

  std::mt19937 rng(20250423);
  std::uniform_int_distribution<int> kill_after_ms(150, 1500);
  std::uniform_int_distribution<int> kills(5, 8);
  const int rounds = kills(rng);
  int64_t change_ms = 24 * 3600 * 1000;  // changes are newer than anything in the backfill
  std::string progress;                  // sink lines after each kill
  for (int round = 0; round < rounds; ++round) {
    FerryProcess ferry({"run", "--config", config_}, dir_.path());
    std::this_thread::sleep_for(std::chrono::milliseconds(kill_after_ms(rng)));
    ASSERT_TRUE(ferry.running()) << "ferry run exited by itself in round " << round << "\n"
                                 << ferry.err();
    ferry.kill9();

    // The remote changes a few orders whose current version the sink already has.
    std::set<std::string> delivered;
    const auto so_far = readSinkLines(dir_.file("out.jsonl"));
    for (const auto& l : so_far) delivered.insert(l.key + "/" + l.version);
    // 60 pages at 30 ms each cannot be done before the first kill (at most 1.5 s): the first
    // kill lands in the middle of the backfill.
    if (round == 0) {
      EXPECT_LT(so_far.size(), 3000u) << "the first kill came too late to matter";
    }
    progress += " " + std::to_string(so_far.size());
    std::string changes;
    int changed = 0;
    for (auto& [k, vs] : versions) {
      if (changed == 5) break;
      if ((std::hash<std::string>{}(k) + static_cast<size_t>(round)) % 7 != 0) continue;
      if (!delivered.count(k + "/" + vs.back())) continue;
      change_ms += 7;
      vs.push_back(versionAt(change_ms));
      changes += itemLine(k, vs.back());
      ++changed;
    }
    appendFile(dir_.file("data.jsonl"), changes);
  }

  RunResult last = runOnce();
  ASSERT_EQ(last.exit_code, 0) << describe(last);

  auto lines = readSinkLines(dir_.file("out.jsonl"));
  ASSERT_FALSE(lines.empty());
  std::map<std::string, const SinkLine*> by_id;
  std::map<int64_t, std::string> id_of_seq;
  std::set<std::string> got;
  size_t duplicates = 0;
  for (const auto& l : lines) {
    ASSERT_EQ(l.id, "src/order/" + l.key + "/" + l.version) << "seq " << l.seq;
    ASSERT_TRUE(versions.count(l.key)) << "unknown key " << l.key;
    const auto& vs = versions[l.key];
    auto at = std::find(vs.begin(), vs.end(), l.version);
    ASSERT_NE(at, vs.end()) << l.key << " " << l.version << " was never in the dataset";
    // Every version of a key that was delivered before is the previous of the next one.
    EXPECT_EQ(l.previous, at == vs.begin() ? "" : *(at - 1)) << l.id;
    auto [it, inserted] = by_id.emplace(l.id, &l);
    if (!inserted) {
      ++duplicates;
      EXPECT_EQ(it->second->seq, l.seq) << l.id << " journalled twice";
    }
    auto [sit, sinserted] = id_of_seq.emplace(l.seq, l.id);
    if (!sinserted) {
      EXPECT_EQ(sit->second, l.id) << "sequence " << l.seq << " means two events";
    }
    got.insert(l.key + "/" + l.version);
  }
  size_t expected_count = 0;
  std::vector<std::string> missing;
  for (const auto& [k, vs] : versions) {
    for (const auto& v : vs) {
      ++expected_count;
      if (!got.count(k + "/" + v)) missing.push_back(k + "/" + v);
    }
  }
  EXPECT_TRUE(missing.empty()) << missing.size() << " of " << expected_count
                               << " versions never reached the sink, e.g. " << missing.front();
  EXPECT_EQ(got.size(), expected_count);
  std::cout << "[ info     ] " << rounds << " kills, " << lines.size() << " lines, " << duplicates
            << " duplicates, " << expected_count - 3000
            << " changes; sink lines after each kill:" << progress << "\n";

  auto st = status();
  ASSERT_FALSE(st.isNull());
  auto out = instance(st, "sinks", "out");
  ASSERT_FALSE(out.isNull());
  EXPECT_EQ(num(out, "offset"), num(st, "last_sequence"));
  EXPECT_EQ(num(out, "backlog"), 0);
  EXPECT_EQ(num(st, "last_sequence"), id_of_seq.rbegin()->first);
  EXPECT_EQ(id_of_seq.size(), expected_count) << "every version is journalled exactly once";
}

}  // namespace
}  // namespace ferry::it
