// End to end, with things failing: a sink that is down, events a sink rejects, a source whose
// credentials are refused, transient outages.
#include <signal.h>

#include <map>
#include <set>

#include "FerryTest.h"

namespace ferry::it {
namespace {

std::string items(int count, const std::string& prefix = "k") {
  std::string text;
  for (int i = 0; i < count; ++i) text += itemLine(prefix + std::to_string(i), versionAt(i * 1000));
  return text;
}

std::set<std::string> keysOf(const std::vector<SinkLine>& lines) {
  std::set<std::string> keys;
  for (const auto& l : lines) keys.insert(l.key);
  return keys;
}

std::set<std::string> keyRange(int count, const std::string& prefix = "k") {
  std::set<std::string> keys;
  for (int i = 0; i < count; ++i) keys.insert(prefix + std::to_string(i));
  return keys;
}

// ---------------------------------------------------------------------------------------------
// 5. A sink that answers RETRY holds back only its own offset: the other sink gets everything,
//    and the failing one catches up once it recovers.
// ---------------------------------------------------------------------------------------------

TEST_F(FerryTest, RetryingSinkDoesNotStallAnotherAndCatchesUp) {
  writeFile(dir_.file("data.jsonl"), items(40));
  writeFile(dir_.file("b.fail"), "retry\n");
  writeConfig(sourceSection("src", dir_.file("data.jsonl")) +
              sinkSection("a", dir_.file("a.jsonl")) +
              sinkSection("b", dir_.file("b.jsonl"), "fail_file = " + dir_.file("b.fail") + "\n"));
  FerryProcess ferry({"run", "--config", config_}, dir_.path());

  Poco::JSON::Object::Ptr b;
  bool stalled = waitUntil([&] {
    if (readSinkLines(dir_.file("a.jsonl")).size() < 40) return false;
    b = instance(tryStatus(), "sinks", "b");
    return !b.isNull() && str(b, "state") == "retrying" && num(b, "backlog") > 0;
  });
  ASSERT_TRUE(stalled) << "sink a did not get all 40 events while b was retrying; a has "
                       << readSinkLines(dir_.file("a.jsonl")).size() << " lines\n"
                       << ferry.err();
  ASSERT_TRUE(ferry.running()) << ferry.err();
  EXPECT_EQ(keysOf(readSinkLines(dir_.file("a.jsonl"))), keyRange(40));
  EXPECT_TRUE(readSinkLines(dir_.file("b.jsonl")).empty());
  EXPECT_NE(str(b, "message").find("scripted outage"), std::string::npos) << str(b, "message");

  removeFile(dir_.file("b.fail"));
  bool caught_up = waitUntil([&] {
    if (readSinkLines(dir_.file("b.jsonl")).size() < 40) return false;
    b = instance(tryStatus(), "sinks", "b");
    return !b.isNull() && num(b, "backlog") == 0;
  });
  ASSERT_TRUE(caught_up) << "sink b did not catch up; it has "
                         << readSinkLines(dir_.file("b.jsonl")).size() << " lines\n"
                         << ferry.err();
  EXPECT_EQ(keysOf(readSinkLines(dir_.file("b.jsonl"))), keyRange(40));
  EXPECT_NE(str(b, "state"), "retrying");

  ferry.signal(SIGTERM);
  EXPECT_EQ(ferry.wait(60s), 0) << ferry.err();
}

// ---------------------------------------------------------------------------------------------
// 6. Events a sink rejects go to the dead letters, the others are written in order; replayed
//    after the cause is fixed, they arrive and leave the list.
// ---------------------------------------------------------------------------------------------

TEST_F(FerryTest, RejectedEventsAreDeadLetteredAndReplayed) {
  writeFile(dir_.file("data.jsonl"), items(10));
  writeFile(dir_.file("a.fail"), "fatal_keys k3,k7\n");
  writeConfig(sourceSection("src", dir_.file("data.jsonl"), "page_size = 4\n") +
              sinkSection("a", dir_.file("a.jsonl"), "fail_file = " + dir_.file("a.fail") + "\n"));
  RunResult first = runOnce();
  ASSERT_EQ(first.exit_code, 2) << "done, with new dead letters: " << describe(first);

  auto lines = readSinkLines(dir_.file("a.jsonl"));
  std::vector<std::string> keys;
  for (const auto& l : lines) keys.push_back(l.key);
  EXPECT_EQ(keys, (std::vector<std::string>{"k0", "k1", "k2", "k4", "k5", "k6", "k8", "k9"}));
  for (size_t i = 1; i < lines.size(); ++i) EXPECT_GT(lines[i].seq, lines[i - 1].seq);

  auto dead = deadLetters("a");
  ASSERT_FALSE(dead.isNull());
  ASSERT_EQ(dead->size(), 2u) << "dead letters: " << first.err;
  std::map<std::string, Poco::JSON::Object::Ptr> by_key;
  for (unsigned i = 0; i < dead->size(); ++i) {
    auto d = dead->getObject(i);
    by_key[str(d, "key")] = d;
  }
  for (const char* key : {"k3", "k7"}) {
    ASSERT_TRUE(by_key.count(key)) << key << " is not in the dead letters";
    auto d = by_key[key];
    EXPECT_EQ(str(d, "sink"), "a");
    EXPECT_EQ(str(d, "source"), "src");
    EXPECT_EQ(str(d, "entity"), "order");
    EXPECT_EQ(str(d, "version"), versionAt((key[1] - '0') * 1000));
    EXPECT_NE(str(d, "reason").find(std::string("scripted: rejected key ") + key),
              std::string::npos)
        << str(d, "reason");
    EXPECT_GT(num(d, "sequence"), 0);
  }
  auto st = status();
  ASSERT_FALSE(st.isNull());
  auto a = instance(st, "sinks", "a");
  ASSERT_FALSE(a.isNull());
  EXPECT_EQ(num(a, "dead_letters"), 2);
  EXPECT_EQ(num(a, "backlog"), 0);

  removeFile(dir_.file("a.fail"));
  RunResult replay = ferry({"dead-letters", "replay", "--config", config_, "--sink", "a"}, 60s);
  ASSERT_EQ(replay.exit_code, 0) << describe(replay);
  RunResult second = runOnce();
  ASSERT_EQ(second.exit_code, 0) << describe(second);

  lines = readSinkLines(dir_.file("a.jsonl"));
  ASSERT_EQ(lines.size(), 10u);
  std::set<std::string> replayed;
  for (size_t i = 8; i < lines.size(); ++i) {
    replayed.insert(lines[i].key);
    EXPECT_EQ(lines[i].id, "src/order/" + lines[i].key + "/" + lines[i].version);
  }
  EXPECT_EQ(replayed, (std::set<std::string>{"k3", "k7"}));
  auto after = deadLetters("a");
  ASSERT_FALSE(after.isNull());
  EXPECT_EQ(after->size(), 0u);
  st = status();
  ASSERT_FALSE(st.isNull());
  a = instance(st, "sinks", "a");
  ASSERT_FALSE(a.isNull());
  EXPECT_EQ(num(a, "dead_letters"), 0);
}

// ---------------------------------------------------------------------------------------------
// 7. A source whose credentials are refused is stopped with the reason; another source in the
//    same process delivers everything; `run --once` reports the stop with exit code 1.
// ---------------------------------------------------------------------------------------------

TEST_F(FerryTest, AuthFailureStopsOnlyThatSource) {
  writeFile(dir_.file("good.jsonl"), items(25, "g"));
  writeFile(dir_.file("bad.jsonl"), items(5, "b"));
  writeFile(dir_.file("bad.fail"), "auth\n");
  writeConfig(
      sourceSection("good", dir_.file("good.jsonl")) +
      sourceSection("bad", dir_.file("bad.jsonl"), "fail_file = " + dir_.file("bad.fail") + "\n") +
      sinkSection("out", dir_.file("out.jsonl")));
  RunResult run = runOnce();
  EXPECT_EQ(run.exit_code, 1) << describe(run);

  auto lines = readSinkLines(dir_.file("out.jsonl"));
  EXPECT_EQ(lines.size(), 25u);
  for (const auto& l : lines) EXPECT_EQ(l.source, "good") << l.key;
  EXPECT_EQ(keysOf(lines), keyRange(25, "g"));

  auto st = status();
  ASSERT_FALSE(st.isNull());
  auto bad = instance(st, "sources", "bad");
  ASSERT_FALSE(bad.isNull());
  EXPECT_EQ(str(bad, "state"), "stopped");
  EXPECT_NE(str(bad, "message").find("scripted: invalid credentials"), std::string::npos)
      << str(bad, "message");
  auto good = instance(st, "sources", "good");
  ASSERT_FALSE(good.isNull());
  EXPECT_NE(str(good, "state"), "stopped");
  EXPECT_EQ(str(good->getObject("cursor"), "since"), versionAt(24000));
}

// ---------------------------------------------------------------------------------------------
// 8. Transient failures at start-up (source and sink) are retried until everything arrives.
// ---------------------------------------------------------------------------------------------

TEST_F(FerryTest, TransientFailuresAreRetriedUntilEverythingArrives) {
  writeFile(dir_.file("data.jsonl"), items(25));
  writeConfig(sourceSection("src", dir_.file("data.jsonl"), "fail_first = 3\n") +
              sinkSection("out", dir_.file("out.jsonl"), "fail_first = 2\n"));
  RunResult run = runOnce();
  ASSERT_EQ(run.exit_code, 0) << describe(run);
  auto lines = readSinkLines(dir_.file("out.jsonl"));
  EXPECT_EQ(lines.size(), 25u);
  EXPECT_EQ(keysOf(lines), keyRange(25));

  auto st = status();
  ASSERT_FALSE(st.isNull());
  auto out = instance(st, "sinks", "out");
  ASSERT_FALSE(out.isNull());
  EXPECT_EQ(num(out, "backlog"), 0);
  EXPECT_EQ(num(out, "offset"), num(st, "last_sequence"));
}

// A Retry-After (429) shows as retrying with its reason, and nothing is lost once it clears.
TEST_F(FerryTest, SourceRetryAfterShowsInStatusAndRecovers) {
  writeFile(dir_.file("data.jsonl"), items(15));
  writeFile(dir_.file("src.fail"), "retry_after 300\n");
  writeConfig(
      sourceSection("src", dir_.file("data.jsonl"), "fail_file = " + dir_.file("src.fail") + "\n") +
      sinkSection("out", dir_.file("out.jsonl")));
  FerryProcess ferry({"run", "--config", config_}, dir_.path());
  Poco::JSON::Object::Ptr src = waitForState("sources", "src", "retrying");
  ASSERT_FALSE(src.isNull()) << ferry.err();
  EXPECT_NE(str(src, "message").find("scripted 429"), std::string::npos) << str(src, "message");
  EXPECT_TRUE(readSinkLines(dir_.file("out.jsonl")).empty());

  removeFile(dir_.file("src.fail"));
  ASSERT_TRUE(waitUntil([&] { return readSinkLines(dir_.file("out.jsonl")).size() >= 15; }))
      << ferry.err();
  ferry.signal(SIGTERM);
  EXPECT_EQ(ferry.wait(60s), 0) << ferry.err();
  EXPECT_EQ(keysOf(readSinkLines(dir_.file("out.jsonl"))), keyRange(15));
}

// Stopping ferry while a source retries keeps the source's last error in the status, so that
// an operator looking after the stop still sees why it was not getting anywhere.
TEST_F(FerryTest, StopWhileRetryingKeepsTheLastError) {
  writeFile(dir_.file("data.jsonl"), items(5));
  writeFile(dir_.file("src.fail"), "retry\n");
  writeConfig(sourceSection("src", dir_.file("data.jsonl"),
                            "fail_file = " + dir_.file("src.fail") + "\n") +
              sinkSection("a", dir_.file("a.jsonl")));
  FerryProcess ferry({"run", "--config", config_}, dir_.path());
  ASSERT_FALSE(waitForState("sources", "src", "retrying").isNull()) << ferry.err();
  ferry.signal(SIGTERM);
  ASSERT_EQ(ferry.wait(60s), 0) << ferry.err();

  auto src = instance(status(), "sources", "src");
  ASSERT_FALSE(src.isNull());
  EXPECT_EQ(str(src, "state"), "retrying");
  EXPECT_NE(str(src, "message").find("scripted outage"), std::string::npos)
      << str(src, "message");
}

}  // namespace
}  // namespace ferry::it
