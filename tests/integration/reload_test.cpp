// End to end, SIGHUP as an operator sends it (systemctl reload): the config file is read again;
// a valid one restarts only the sources and sinks that were added, removed or changed, an invalid
// one (or one changing a [host] setting only a restart applies) is logged and the running
// configuration goes on. Each test counts what the sinks received: nothing lost, nothing twice.
#include <signal.h>

#include <map>

#include "FerryTest.h"

namespace ferry::it {
namespace {

std::string items(const std::string& prefix, int from, int to) {
  std::string text;
  for (int i = from; i < to; ++i)
    text += itemLine(prefix + std::to_string(i), versionAt(i * 1000));
  return text;
}

// Every key of `file` arrived exactly once, and there are `n` of them.
void expectEachOnce(const std::string& file, size_t n) {
  auto keys = countKeys(readSinkLines(file));
  EXPECT_EQ(keys.size(), n) << file;
  for (const auto& [key, count] : keys) EXPECT_EQ(count, 1) << file << ": " << key;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST_F(FerryTest, ReloadStartsWhatWasAddedAndLeavesTheRestRunning) {
  const std::string data_a = dir_.file("a.jsonl"), out_a = dir_.file("out-a.jsonl");
  const std::string data_b = dir_.file("b.jsonl"), out_b = dir_.file("out-b.jsonl");
  writeFile(data_a, items("a", 0, 10));
  writeFile(data_b, items("b", 0, 10));
  const std::string a = sourceSection("a", data_a) + sinkSection("out-a", out_a, "from = a\n");
  writeConfig(a);
  FerryProcess run({"run", "--config", config_}, dir_.path());
  ASSERT_TRUE(waitUntil([&] { return readSinkLines(out_a).size() >= 10; })) << run.err();

  writeConfig(a + sourceSection("b", data_b) + sinkSection("out-b", out_b, "from = b\n"));
  run.signal(SIGHUP);
  ASSERT_TRUE(waitUntil([&] { return readSinkLines(out_b).size() >= 10; })) << run.err();
  // The untouched pair went on as it was: a new change of a still arrives, once.
  appendFile(data_a, items("a", 10, 11));
  ASSERT_TRUE(waitUntil([&] { return readSinkLines(out_a).size() >= 11; })) << run.err();

  const std::string log = run.err();
  EXPECT_TRUE(contains(log, "received SIGHUP")) << log;
  EXPECT_TRUE(contains(log, "started sink out-b")) << log;
  EXPECT_TRUE(contains(log, "started source b")) << log;
  EXPECT_FALSE(contains(log, "stopped source a")) << log;
  EXPECT_FALSE(contains(log, "stopped sink out-a")) << log;
  EXPECT_TRUE(run.running()) << "SIGHUP must not end ferry";

  // Removing b stops it (and its sink); a goes on.
  writeConfig(a);
  run.signal(SIGHUP);
  ASSERT_TRUE(waitUntil([&] { return contains(run.err(), "stopped sink out-b (removed)"); }))
      << run.err();
  EXPECT_TRUE(contains(run.err(), "stopped source b (removed)")) << run.err();
  appendFile(data_b, items("b", 10, 11));
  appendFile(data_a, items("a", 11, 12));
  ASSERT_TRUE(waitUntil([&] { return readSinkLines(out_a).size() >= 12; })) << run.err();
  run.signal(SIGTERM);
  ASSERT_EQ(run.wait(), 0) << run.err();

  expectEachOnce(out_a, 12);
  expectEachOnce(out_b, 10);  // b11 came after b was removed
}

TEST_F(FerryTest, AnInvalidConfigIsLoggedAndTheRunningOneGoesOn) {
  const std::string data = dir_.file("a.jsonl"), out = dir_.file("out.jsonl");
  writeFile(data, items("k", 0, 5));
  const std::string good = sourceSection("a", data) + sinkSection("out", out);
  writeConfig(good);
  FerryProcess run({"run", "--config", config_}, dir_.path());
  ASSERT_TRUE(waitUntil([&] { return readSinkLines(out).size() >= 5; })) << run.err();

  // An unknown plugin: refused, named, and nothing stops.
  writeConfig(good + "[sink.typo]\nplugin = sink_that_does_not_exist\n");
  run.signal(SIGHUP);
  ASSERT_TRUE(waitUntil([&] { return contains(run.err(), "reload refused"); })) << run.err();
  EXPECT_TRUE(contains(run.err(), "[sink.typo] plugin: unknown plugin 'sink_that_does_not_exist'"))
      << run.err();
  appendFile(data, items("k", 5, 6));
  ASSERT_TRUE(waitUntil([&] { return readSinkLines(out).size() >= 6; })) << run.err();

  // A [host] setting only a restart applies: refused naming the key.
  writeFile(config_, hostSection(dir_) + "commit_pages = 3\n" + good);
  run.signal(SIGHUP);
  ASSERT_TRUE(waitUntil([&] { return contains(run.err(), "commit_pages changed: restart ferry"); }))
      << run.err();

  // A changed source restarts that source alone, and it goes on where its cursor is.
  writeConfig(sourceSection("a", data, "interval = 300ms\n") + sinkSection("out", out));
  run.signal(SIGHUP);
  ASSERT_TRUE(waitUntil([&] { return contains(run.err(), "started source a"); })) << run.err();
  EXPECT_TRUE(contains(run.err(), "stopped source a (changed)")) << run.err();
  EXPECT_FALSE(contains(run.err(), "stopped sink out")) << run.err();
  appendFile(data, items("k", 6, 7));
  ASSERT_TRUE(waitUntil([&] { return readSinkLines(out).size() >= 7; })) << run.err();
  EXPECT_TRUE(run.running());
  run.signal(SIGTERM);
  ASSERT_EQ(run.wait(), 0) << run.err();
  expectEachOnce(out, 7);
}

}  // namespace
}  // namespace ferry::it
