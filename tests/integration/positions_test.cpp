// End to end, the commands that move positions, run as an operator would: a source backfilled
// from a date while ferry runs, a sink rewound (and refused beyond retention), a sink paused past
// the retention and a disabled sink (both keep their events until resumed, enabled or forgotten),
// dead letters shown and dropped, run --once's exit code for new dead letters, a changed
// start_from reported, and the help. Each counts what the sink received: nothing lost, nothing
// twice beyond what was asked for.
#include <signal.h>

#include <map>

#include "FerryTest.h"

namespace ferry::it {
namespace {

std::string items(int from, int to) {
  std::string text;
  for (int i = from; i < to; ++i) text += itemLine("k" + std::to_string(i), versionAt(i * 1000));
  return text;
}

int64_t retainedEvents(const std::string& journal, const std::string& scratch) {
  RunResult r = runCommand({"sqlite3", journal, "SELECT COUNT(*) FROM events"}, scratch);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return std::stoll(r.out);
}

class PositionsTest : public FerryTest {
 protected:
  RunResult command(std::vector<std::string> args) {
    args.insert(args.end(), {"--config", config_});
    return ferry(args, 60s);
  }
};

TEST_F(PositionsTest, BackfillFromADateWhileFerryRunsDeliversWhatWasAsked) {
  const std::string data = dir_.file("data.jsonl"), out = dir_.file("out.jsonl");
  writeFile(data, items(0, 30));
  writeConfig(sourceSection("src", data) + sinkSection("out", out));
  FerryProcess run({"run", "--config", config_}, dir_.path());
  ASSERT_TRUE(waitUntil([&] { return readSinkLines(out).size() >= 30; })) << run.err();

  // Only unseen versions: nothing is delivered again, a new change still is.
  RunResult r = command({"sources", "backfill", "src", "--from", versionAt(0)});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.out.find("cursor moved"), std::string::npos) << r.out;
  appendFile(data, items(30, 31));
  ASSERT_TRUE(waitUntil([&] { return readSinkLines(out).size() >= 31; })) << run.err();

  // Every version from k10 on again, carried out by the running ferry.
  r = command({"sources", "backfill", "src", "--from", versionAt(10000), "--redeliver"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.out.find("delivered again"), std::string::npos) << r.out;
  ASSERT_TRUE(waitUntil([&] { return readSinkLines(out).size() >= 31 + 21; })) << run.err();
  auto positions = parseObject(command({"positions", "--json"}).out);
  auto src = findNamed(positions->getArray("sources"), "src");
  ASSERT_FALSE(src.isNull());
  EXPECT_EQ(str(src, "start_from"), versionAt(10000));
  // Status follows within a second: last poll, last success and the counts.
  Poco::JSON::Object::Ptr source, sink;
  EXPECT_TRUE(waitUntil([&] {
    auto s = tryStatus();
    source = instance(s, "sources", "src");
    sink = instance(s, "sinks", "out");
    return !source.isNull() && !sink.isNull() && num(source, "events") == 31 + 21 &&
           num(sink, "events") == 31 + 21;
  }, 10s));
  ASSERT_FALSE(source.isNull());
  EXPECT_FALSE(source->get("last_poll").isEmpty());
  EXPECT_FALSE(source->get("last_success").isEmpty());
  EXPECT_FALSE(sink->get("last_success").isEmpty());
  run.signal(SIGTERM);
  ASSERT_EQ(run.wait(), 0) << run.err();

  auto keys = countKeys(readSinkLines(out));
  ASSERT_EQ(keys.size(), 31u);
  for (const auto& [key, n] : keys) {
    const int i = std::stoi(key.substr(1));
    EXPECT_EQ(n, i >= 10 ? 2 : 1) << key;
  }
  EXPECT_NE(run.err().find("request #"), std::string::npos) << "the log names the request";
}

TEST_F(PositionsTest, RewindWritesAgainAndIsRefusedBeyondRetention) {
  const std::string data = dir_.file("data.jsonl"), out = dir_.file("out.jsonl");
  writeFile(data, items(0, 20));
  writeConfig(sourceSection("src", data) + sinkSection("out", out));
  ASSERT_EQ(runOnce().exit_code, 0);

  // No ferry runs: the command carries it out itself.
  RunResult r = command({"sinks", "rewind", "out", "--to-sequence", "15"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.out.find("rewound from 20 to 15; 5 event(s)"), std::string::npos) << r.out;
  r = command({"sinks", "rewind", "out", "--to-sequence", "25"});
  EXPECT_EQ(r.exit_code, 65) << "forward is a skip, not a rewind: " << describe(r);
  ASSERT_EQ(runOnce().exit_code, 0);
  auto keys = countKeys(readSinkLines(out));
  ASSERT_EQ(keys.size(), 20u);
  for (const auto& [key, n] : keys) EXPECT_EQ(n, std::stoi(key.substr(1)) >= 15 ? 2 : 1) << key;

  // With a running ferry, to an instant: everything fetched from then on.
  FerryProcess run({"run", "--config", config_}, dir_.path());
  ASSERT_FALSE(waitForState("sinks", "out", "idle").isNull()) << run.err();
  r = command({"sinks", "rewind", "out", "--to", "2000-01-01T00:00:00Z"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.out.find("rewound from 20 to 0; 20 event(s)"), std::string::npos) << r.out;
  ASSERT_TRUE(waitUntil([&] { return readSinkLines(out).size() >= 45; })) << run.err();
  run.signal(SIGTERM);
  ASSERT_EQ(run.wait(), 0) << run.err();
  EXPECT_EQ(readSinkLines(out).size(), 45u);

  // Retention removes what every sink passed: a rewind past it is refused, saying why.
  writeFile(config_, hostSection(dir_) + "retention = 0s\n\n" + sourceSection("src", data) +
                         sinkSection("out", out));
  ASSERT_EQ(runOnce().exit_code, 0);
  ASSERT_EQ(retainedEvents(dir_.file("journal.db"), dir_.path()), 0);
  r = command({"sinks", "rewind", "out", "--to-sequence", "10"});
  EXPECT_EQ(r.exit_code, 65) << describe(r);
  EXPECT_NE(r.err.find("removed by retention"), std::string::npos) << r.err;
  EXPECT_EQ(readSinkLines(out).size(), 45u);
}

TEST_F(PositionsTest, APausedSinkKeepsItsEventsPastRetentionAndGetsEachOnceOnResume) {
  const std::string data = dir_.file("data.jsonl");
  writeFile(data, items(0, 10));
  writeFile(config_, hostSection(dir_) + "retention = 0s\n\n" + sourceSection("src", data) +
                         sinkSection("a", dir_.file("a.jsonl")) +
                         sinkSection("b", dir_.file("b.jsonl")));
  ASSERT_EQ(runOnce().exit_code, 0);
  RunResult r = command({"sinks", "pause", "b"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);

  appendFile(data, items(10, 20));
  ASSERT_EQ(runOnce().exit_code, 0) << "a paused sink does not keep --once waiting";
  EXPECT_EQ(readSinkLines(dir_.file("a.jsonl")).size(), 20u);
  EXPECT_EQ(readSinkLines(dir_.file("b.jsonl")).size(), 10u);
  EXPECT_EQ(retainedEvents(dir_.file("journal.db"), dir_.path()), 10) << "b has not passed them";
  auto b = instance(status(), "sinks", "b");
  ASSERT_FALSE(b.isNull());
  EXPECT_EQ(str(b, "state"), "paused");
  EXPECT_EQ(str(b, "holds_retention"), "paused");
  EXPECT_EQ(num(b, "backlog"), 10);

  // The pause survives a restart; resumed beside the running ferry, b gets each event once.
  FerryProcess run({"run", "--config", config_}, dir_.path());
  ASSERT_FALSE(waitForState("sinks", "b", "paused").isNull()) << run.err();
  EXPECT_EQ(readSinkLines(dir_.file("b.jsonl")).size(), 10u);
  r = command({"sinks", "resume", "b"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  ASSERT_TRUE(waitUntil([&] { return readSinkLines(dir_.file("b.jsonl")).size() >= 20; }))
      << run.err();
  run.signal(SIGTERM);
  ASSERT_EQ(run.wait(), 0) << run.err();
  for (const char* sink : {"a.jsonl", "b.jsonl"}) {
    auto keys = countKeys(readSinkLines(dir_.file(sink)));
    EXPECT_EQ(keys.size(), 20u) << sink;
    for (const auto& [key, n] : keys) EXPECT_EQ(n, 1) << sink << " " << key;
  }
}

TEST_F(PositionsTest, ADisabledSinkHoldsRetentionUntilForgotten) {
  const std::string data = dir_.file("data.jsonl");
  auto config = [&](bool b_enabled) {
    writeFile(config_, hostSection(dir_) + "retention = 0s\n\n" + sourceSection("src", data) +
                           sinkSection("a", dir_.file("a.jsonl")) +
                           sinkSection("b", dir_.file("b.jsonl"),
                                       b_enabled ? "" : "enabled = false\n"));
  };
  writeFile(data, items(0, 10));
  config(true);
  ASSERT_EQ(runOnce().exit_code, 0);
  config(false);
  appendFile(data, items(10, 20));
  ASSERT_EQ(runOnce().exit_code, 0);
  EXPECT_EQ(retainedEvents(dir_.file("journal.db"), dir_.path()), 10);
  auto b = instance(status(), "sinks", "b");
  ASSERT_FALSE(b.isNull());
  EXPECT_EQ(str(b, "state"), "disabled");
  EXPECT_EQ(str(b, "holds_retention"), "disabled");
  RunResult text = command({"status"});
  EXPECT_NE(text.out.find("ferry sinks forget b"), std::string::npos) << text.out;
  RunResult r = command({"sinks", "forget", "a"});
  EXPECT_EQ(r.exit_code, 65) << "an enabled sink cannot be forgotten: " << describe(r);

  config(true);
  ASSERT_EQ(runOnce().exit_code, 0);
  auto keys = countKeys(readSinkLines(dir_.file("b.jsonl")));
  EXPECT_EQ(keys.size(), 20u) << "nothing lost while disabled";
  for (const auto& [key, n] : keys) EXPECT_EQ(n, 1) << key;

  // Forgotten, it no longer holds anything back.
  config(false);
  appendFile(data, items(20, 25));
  ASSERT_EQ(runOnce().exit_code, 0);
  EXPECT_EQ(retainedEvents(dir_.file("journal.db"), dir_.path()), 5);
  r = command({"sinks", "forget", "b"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  ASSERT_EQ(runOnce().exit_code, 0);
  EXPECT_EQ(retainedEvents(dir_.file("journal.db"), dir_.path()), 0);
  EXPECT_EQ(str(instance(status(), "sinks", "b"), "holds_retention"), "");
}

TEST_F(PositionsTest, DeadLettersShowDropAndTheExitCodeOfRunOnce) {
  const std::string data = dir_.file("data.jsonl");
  writeFile(data, items(0, 5));
  writeFile(dir_.file("out.fail"), "fatal_keys k3\n");
  writeConfig(sourceSection("src", data) +
              sinkSection("out", dir_.file("out.jsonl"),
                          "fail_file = " + dir_.file("out.fail") + "\n"));
  RunResult r = runOnce();
  EXPECT_EQ(r.exit_code, 2) << describe(r);
  EXPECT_NE(r.err.find("1 new dead letter(s)"), std::string::npos) << r.err;
  auto letters = deadLetters();
  ASSERT_EQ(letters->size(), 1u);
  const std::string id = std::to_string(num(letters->getObject(0), "id"));

  r = command({"dead-letters", "show", id});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.out.find("src/order/k3/" + versionAt(3000)), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"id\":\"k3\""), std::string::npos) << "prints the body: " << r.out;
  EXPECT_EQ(command({"dead-letters", "show", "999"}).exit_code, 65);

  // Nothing new the second time: exit 0 although the old dead letter is still there.
  EXPECT_EQ(runOnce().exit_code, 0);
  r = command({"dead-letters", "drop", id});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(deadLetters()->size(), 0u);
  EXPECT_EQ(command({"dead-letters", "drop", id}).exit_code, 65) << "already gone";
  EXPECT_EQ(runOnce().exit_code, 0);
  EXPECT_EQ(countKeys(readSinkLines(dir_.file("out.jsonl"))).count("k3"), 0u)
      << "dropped, not written";
}

TEST_F(PositionsTest, AChangedStartFromIsReportedWithTheBackfillCommand) {
  const std::string data = dir_.file("data.jsonl");
  writeFile(data, items(0, 3));
  writeConfig(sourceSection("src", data) + sinkSection("out", dir_.file("out.jsonl")));
  ASSERT_EQ(runOnce().exit_code, 0);
  writeConfig(sourceSection("src", data, "start_from = 2024-06-01T00:00:00Z\n") +
              sinkSection("out", dir_.file("out.jsonl")));
  const std::string hint = "ferry sources backfill src --from 2024-06-01T00:00:00";
  RunResult check = command({"check"});
  ASSERT_EQ(check.exit_code, 0) << describe(check);
  EXPECT_NE(check.out.find(hint), std::string::npos) << check.out;
  RunResult run = runOnce();
  ASSERT_EQ(run.exit_code, 0) << describe(run);
  EXPECT_NE(run.err.find(hint), std::string::npos) << run.err;
}

TEST_F(PositionsTest, HelpForEveryCommand) {
  RunResult all = ferry({"help"});
  ASSERT_EQ(all.exit_code, 0) << describe(all);
  EXPECT_NE(all.out.find("2 run --once left new"), std::string::npos) << all.out;
  for (const char* c : {"run", "check", "status", "positions", "sources", "sinks", "dead-letters",
                        "trace", "plugins"}) {
    RunResult a = ferry({"help", c}), b = ferry({c, "--help"});
    EXPECT_EQ(a.exit_code, 0) << c;
    EXPECT_EQ(a.out, b.out) << c;
    EXPECT_EQ(a.out.rfind(std::string("ferry ") + c, 0), 0u) << a.out;
  }
  EXPECT_EQ(ferry({"help", "nonsense"}).exit_code, 64);
}

}  // namespace
}  // namespace ferry::it
