// End to end, the operations side: retention of delivered events, and the /healthz and
// /metrics endpoint of a running host.
#include <signal.h>

#include <sstream>

#include "FerryTest.h"

namespace ferry::it {
namespace {

std::string items(int count) {
  std::string text;
  for (int i = 0; i < count; ++i) text += itemLine("k" + std::to_string(i), versionAt(i * 1000));
  return text;
}

TEST_F(FerryTest, RetentionRemovesEventsEverySinkHasPassed) {
  const std::string data = dir_.file("data.jsonl");
  writeFile(data, items(30));
  writeFile(config_, hostSection(dir_) + "retention = 0s\n\n" +
                         sourceSection("src", data) + sinkSection("a", dir_.file("a.jsonl")) +
                         sinkSection("b", dir_.file("b.jsonl"), "enabled = false\n"));
  RunResult r = runOnce();
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(readSinkLines(dir_.file("a.jsonl")).size(), 30u);
  // Every event was delivered to the only enabled sink and is older than 0 s: gone from the
  // journal, while the sequence and the latest versions stay (no re-delivery on the next run).
  RunResult count = runCommand({"sqlite3", dir_.file("journal.db"), "SELECT COUNT(*) FROM events"},
                               dir_.path());
  ASSERT_EQ(count.exit_code, 0) << count.err;
  EXPECT_EQ(count.out, "0\n");
  auto s = status();
  ASSERT_FALSE(s.isNull());
  EXPECT_EQ(num(s, "last_sequence"), 30);
  r = runOnce();
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(readSinkLines(dir_.file("a.jsonl")).size(), 30u);
}

TEST_F(FerryTest, RetentionKeepsEventsASinkHasNotPassed) {
  const std::string data = dir_.file("data.jsonl");
  writeFile(data, items(20));
  writeFile(dir_.file("b.fail"), "auth\n");
  writeFile(config_, hostSection(dir_) + "retention = 0s\n\n" + sourceSection("src", data) +
                         sinkSection("a", dir_.file("a.jsonl")) +
                         sinkSection("b", dir_.file("b.jsonl"),
                                     "fail_file = " + dir_.file("b.fail") + "\n"));
  RunResult r = runOnce();
  EXPECT_EQ(r.exit_code, 1) << "sink b stopped: " << describe(r);
  EXPECT_EQ(readSinkLines(dir_.file("a.jsonl")).size(), 20u);
  RunResult count = runCommand({"sqlite3", dir_.file("journal.db"), "SELECT COUNT(*) FROM events"},
                               dir_.path());
  ASSERT_EQ(count.exit_code, 0) << count.err;
  EXPECT_EQ(count.out, "20\n") << "sink b has none of them yet";
}

TEST_F(FerryTest, TraceShowsEveryVersionAndWhatEachSinkDidWithIt) {
  const std::string data = dir_.file("data.jsonl");
  writeFile(data, items(5));
  writeFile(dir_.file("b.fail"), "fatal_keys k2\n");
  writeConfig(sourceSection("src", data) + sinkSection("a", dir_.file("a.jsonl")) +
              sinkSection("b", dir_.file("b.jsonl"), "fail_file = " + dir_.file("b.fail") + "\n"));
  ASSERT_EQ(runOnce().exit_code, 2) << "k2 was dead-lettered";
  appendFile(data, itemLine("k1", versionAt(60000)));
  ASSERT_EQ(runOnce().exit_code, 0);

  RunResult r = ferry({"trace", "k1", "--config", config_, "--json"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  auto versions = parseArray(r.out);
  ASSERT_EQ(versions->size(), 2u) << r.out;
  auto second = versions->getObject(1);
  EXPECT_EQ(str(second, "version"), versionAt(60000));
  EXPECT_EQ(str(second, "previous"), versionAt(1000));
  auto sinks = second->getArray("sinks");
  ASSERT_EQ(sinks->size(), 2u);
  EXPECT_EQ(str(sinks->getObject(0), "sink"), "a");
  EXPECT_EQ(str(sinks->getObject(0), "outcome"), "delivered");
  EXPECT_EQ(str(sinks->getObject(1), "outcome"), "delivered");

  r = ferry({"trace", "k2", "--config", config_});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.out.find("src/order/k2/" + versionAt(2000)), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("dead letter"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("scripted: rejected key k2"), std::string::npos) << r.out;

  r = ferry({"trace", "no-such-key", "--config", config_});
  EXPECT_EQ(r.exit_code, 65) << describe(r);
  EXPECT_NE(r.out.find("no event with key or number 'no-such-key'"), std::string::npos) << r.out;
}

// An echo that a sink skips lies inside the range of a write it took part in; trace must say it
// was skipped, not delivered, and a sink that takes echoes did get it.
TEST_F(FerryTest, TraceTellsASkippedEchoFromADeliveredOne) {
  const std::string data = dir_.file("data.jsonl");
  writeFile(data, items(5));
  writeConfig(sourceSection("src", data, "echo_keys = k2\n") +
              sinkSection("a", dir_.file("a.jsonl")) +
              sinkSection("b", dir_.file("b.jsonl"), "skip_echo = false\n"));
  ASSERT_EQ(runOnce().exit_code, 0);
  ASSERT_EQ(readSinkLines(dir_.file("a.jsonl")).size(), 4u);
  ASSERT_EQ(readSinkLines(dir_.file("b.jsonl")).size(), 5u);

  RunResult r = ferry({"trace", "k2", "--config", config_, "--json"});
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  auto versions = parseArray(r.out);
  ASSERT_EQ(versions->size(), 1u) << r.out;
  EXPECT_TRUE(versions->getObject(0)->getValue<bool>("echo"));
  auto sinks = versions->getObject(0)->getArray("sinks");
  ASSERT_EQ(sinks->size(), 2u);
  EXPECT_EQ(str(sinks->getObject(0), "outcome"), "skipped") << r.out;
  EXPECT_NE(str(sinks->getObject(0), "detail").find("echo"), std::string::npos) << r.out;
  EXPECT_EQ(str(sinks->getObject(1), "outcome"), "delivered") << r.out;
}

// An error text from outside (a remote's body, carried in a plugin's message) with terminal
// escapes and invalid UTF-8: `ferry status` must not hand the escapes to the terminal, and
// `status --json` must stay valid JSON.
TEST_F(FerryTest, HostileErrorTextIsPrintedSafely) {
  const std::string data = dir_.file("data.jsonl");
  writeFile(data, items(3));
  writeFile(dir_.file("src.fail"),
            "retry_message \x1b]0;pwned\x07 \x1b[31mred\x1b[0m \xff\xfe end\n");
  writeConfig(sourceSection("src", data, "fail_file = " + dir_.file("src.fail") + "\n") +
              sinkSection("a", dir_.file("a.jsonl")));
  FerryProcess ferry({"run", "--config", config_}, dir_.path());
  ASSERT_FALSE(waitForState("sources", "src", "retrying").isNull()) << ferry.err();

  RunResult text = this->ferry({"status", "--config", config_});
  ASSERT_EQ(text.exit_code, 0) << describe(text);
  EXPECT_NE(text.out.find("pwned"), std::string::npos) << text.out;
  EXPECT_EQ(text.out.find('\x1b'), std::string::npos) << "an escape reached the terminal";
  EXPECT_EQ(text.out.find('\x07'), std::string::npos);

  RunResult json = this->ferry({"status", "--config", config_, "--json"});
  ASSERT_EQ(json.exit_code, 0) << describe(json);
  writeFile(dir_.file("status.json"), json.out);
  RunResult strict = runCommand({"python3", "-c",
                                 "import json,sys; json.load(open(sys.argv[1], encoding='utf-8'))",
                                 dir_.file("status.json")},
                                dir_.path());
  EXPECT_EQ(strict.exit_code, 0) << "status --json is not valid UTF-8 JSON: " << strict.err;
  EXPECT_EQ(ferry.err().find('\x1b'), std::string::npos) << "an escape reached the log";

  ferry.signal(SIGTERM);
  EXPECT_EQ(ferry.wait(60s), 0) << ferry.err();
}

TEST_F(FerryTest, AdminEndpointServesHealthAndMetrics) {
  const std::string data = dir_.file("data.jsonl");
  writeFile(data, items(12));
  const uint16_t port = freePort();
  writeFile(config_, hostSection(dir_) + "admin_listen = 127.0.0.1:" + std::to_string(port) +
                         "\n\n" +
                         sourceSection("src", data, "fail_file = " + dir_.file("src.fail") + "\n") +
                         sinkSection("a", dir_.file("a.jsonl")));
  FerryProcess ferry({"run", "--config", config_}, dir_.path());
  ASSERT_TRUE(waitUntil([&] { return readSinkLines(dir_.file("a.jsonl")).size() == 12; }))
      << ferry.err();
  HttpAnswer metrics;
  ASSERT_TRUE(waitUntil([&] {
    metrics = httpGet(port, "/metrics");
    return metrics.body.find("ferry_sink_offset{sink=\"a\"} 12") != std::string::npos;
  })) << metrics.body << ferry.err();
  EXPECT_NE(metrics.body.find("ferry_journal_last_sequence 12"), std::string::npos);
  EXPECT_NE(metrics.body.find("ferry_sink_backlog{sink=\"a\"} 0"), std::string::npos);
  EXPECT_NE(metrics.body.find("ferry_source_events_total{source=\"src\"} 12"),
            std::string::npos)
      << metrics.body;
  auto health = httpGet(port, "/healthz");
  EXPECT_EQ(health.status, 200) << health.body;
  EXPECT_NE(health.body.find("\"healthy\":true"), std::string::npos) << health.body;
  EXPECT_EQ(httpGet(port, "/nope").status, 404);

  // A source whose credentials are refused turns the health check red.
  writeFile(dir_.file("src.fail"), "auth\n");
  ASSERT_TRUE(waitUntil([&] { return httpGet(port, "/healthz").status == 503; })) << ferry.err();
  EXPECT_NE(httpGet(port, "/healthz").body.find("\"healthy\":false"), std::string::npos);
  ferry.signal(SIGTERM);
  EXPECT_EQ(ferry.wait(), 0) << ferry.err();
}

}  // namespace
}  // namespace ferry::it
