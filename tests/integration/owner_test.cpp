// End to end, one owner per journal: a second `ferry run` is refused while a ferry runs on the
// journal (naming its PID), a replay is carried out by the running ferry, the OS releases the
// ownership when the owner dies, `ferry status` says whether one runs, and the read-only commands (status, trace, dead-letters
// list) need neither the secrets nor write access, and never create a journal.
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>

#include "FerryTest.h"

namespace ferry::it {
namespace {

namespace fs = std::filesystem;

std::string items(int from, int to) {
  std::string text;
  for (int i = from; i < to; ++i) text += itemLine("k" + std::to_string(i), versionAt(i * 1000));
  return text;
}

class OwnerTest : public FerryTest {
 protected:
  // `ferry status --json` says a ferry runs on the journal with this PID.
  bool statusSaysRunning(pid_t pid) {
    auto s = tryStatus();
    return !s.isNull() && s->has("running") && s->getValue<bool>("running") &&
           s->has("pid") && num(s, "pid") == pid;
  }
};

TEST_F(OwnerTest, ASecondRunIsRefusedWithThePidWhileTheFirstDeliversEverythingOnce) {
  const std::string data = dir_.file("data.jsonl");
  writeFile(data, items(0, 20));
  writeConfig(sourceSection("src", data) + sinkSection("out", dir_.file("out.jsonl")));
  FerryProcess first({"run", "--config", config_}, dir_.path());
  ASSERT_TRUE(waitUntil([&] { return readSinkLines(dir_.file("out.jsonl")).size() >= 20; }))
      << first.err();
  ASSERT_TRUE(waitUntil([&] { return statusSaysRunning(first.pid()); }))
      << "status does not say ferry runs with PID " << first.pid() << ": "
      << describe(ferry({"status", "--config", config_, "--json"}));

  const std::string pid = std::to_string(first.pid());
  for (auto args : {std::vector<std::string>{"run", "--config", config_, "--once"},
                    std::vector<std::string>{"run", "--config", config_}}) {
    RunResult second = ferry(args, 30s);
    EXPECT_EQ(second.exit_code, 75) << describe(second);
    EXPECT_NE(second.err.find(dir_.file("journal.db")), std::string::npos) << second.err;
    EXPECT_NE(second.err.find("PID " + pid), std::string::npos) << second.err;
  }
  RunResult text = ferry({"status", "--config", config_}, 30s);
  ASSERT_EQ(text.exit_code, 0) << describe(text);
  EXPECT_NE(text.out.find("running (PID " + pid + ")"), std::string::npos) << text.out;

  // The first one was not disturbed: it takes new changes, and every event arrives once.
  appendFile(data, items(20, 30));
  ASSERT_TRUE(waitUntil([&] { return readSinkLines(dir_.file("out.jsonl")).size() >= 30; }))
      << first.err();
  ASSERT_TRUE(first.running()) << first.err();
  first.signal(SIGTERM);
  EXPECT_EQ(first.wait(), 0) << first.err();
  auto keys = countKeys(readSinkLines(dir_.file("out.jsonl")));
  EXPECT_EQ(keys.size(), 30u);
  for (const auto& [key, n] : keys) EXPECT_EQ(n, 1) << key << " delivered " << n << " times";

  auto s = status();
  ASSERT_FALSE(s.isNull());
  EXPECT_FALSE(s->getValue<bool>("running"));
  EXPECT_TRUE(s->get("pid").isEmpty()) << "no PID once nothing runs";
  text = ferry({"status", "--config", config_}, 30s);
  EXPECT_NE(text.out.find("not running"), std::string::npos) << text.out;
}

TEST_F(OwnerTest, TheOwnershipEndsWhenTheOwnerIsKilled) {
  const std::string data = dir_.file("data.jsonl");
  writeFile(data, items(0, 5));
  writeConfig(sourceSection("src", data) + sinkSection("out", dir_.file("out.jsonl")));
  {
    FerryProcess first({"run", "--config", config_}, dir_.path());
    ASSERT_TRUE(waitUntil([&] { return statusSaysRunning(first.pid()); })) << first.err();
    const pid_t pid = first.pid();
    first.kill9();
    EXPECT_EQ(readFile(dir_.file("journal.db.lock")), std::to_string(pid) + "\n");
  }
  // The lock file stays behind, but nobody holds it any more.
  auto s = status();
  ASSERT_FALSE(s.isNull());
  EXPECT_FALSE(s->getValue<bool>("running"));
  appendFile(data, items(5, 10));
  RunResult r = runOnce();
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_EQ(countKeys(readSinkLines(dir_.file("out.jsonl"))).size(), 10u);
}

TEST_F(OwnerTest, ReplayIsCarriedOutByTheRunningFerryAndTracesAsADelivery) {
  const std::string data = dir_.file("data.jsonl");
  writeFile(data, items(0, 5));
  writeFile(dir_.file("out.fail"), "fatal_keys k2\n");
  writeConfig(sourceSection("src", data) +
              sinkSection("out", dir_.file("out.jsonl"),
                          "fail_file = " + dir_.file("out.fail") + "\n"));
  ASSERT_EQ(runOnce().exit_code, 2) << "k2 was dead-lettered";
  removeFile(dir_.file("out.fail"));
  FerryProcess owner({"run", "--config", config_}, dir_.path());
  ASSERT_TRUE(waitUntil([&] { return statusSaysRunning(owner.pid()); })) << owner.err();
  // The running ferry takes the request and writes the dead letter; the command prints its
  // answer. Reading beside it works all along.
  RunResult r = ferry({"dead-letters", "replay", "--config", config_, "--sink", "out"}, 60s);
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_NE(r.out.find("running ferry writes them now"), std::string::npos) << r.out;
  ASSERT_TRUE(waitUntil([&] { return countKeys(readSinkLines(dir_.file("out.jsonl"))).count("k2"); }))
      << owner.err();
  auto letters = deadLetters("out");
  ASSERT_FALSE(letters.isNull());
  EXPECT_EQ(letters->size(), 0u);
  RunResult trace = ferry({"trace", "k2", "--config", config_}, 30s);
  EXPECT_EQ(trace.exit_code, 0) << describe(trace);
  EXPECT_NE(trace.out.find("delivered"), std::string::npos) << trace.out;
  EXPECT_NE(trace.out.find("replay of dead letter"), std::string::npos) << trace.out;
  EXPECT_EQ(trace.out.find("no delivery recorded"), std::string::npos) << trace.out;
  RunResult check = ferry({"check", "--config", config_}, 30s);
  EXPECT_EQ(check.exit_code, 0) << describe(check);
  owner.signal(SIGTERM);
  ASSERT_EQ(owner.wait(), 0) << owner.err();
  auto keys = countKeys(readSinkLines(dir_.file("out.jsonl")));
  EXPECT_EQ(keys.size(), 5u);
  for (const auto& [key, n] : keys) EXPECT_EQ(n, 1) << key << " delivered " << n << " times";
}

TEST_F(OwnerTest, ReadOnlyCommandsWorkWithoutTheSecretsEnvironment) {
  const std::string data = dir_.file("data.jsonl");
  writeFile(data, items(0, 3));
  writeFile(dir_.file("out.fail"), "fatal_keys k1\n");
  writeConfig(sourceSection("src", data, "echo_keys = ${system.env.FERRY_IT_TOKEN}\n") +
              sinkSection("out", dir_.file("out.jsonl"),
                          "fail_file = " + dir_.file("out.fail") + "\n"));
  ASSERT_EQ(::setenv("FERRY_IT_TOKEN", "nothing", 1), 0);
  RunResult r = runOnce();
  ASSERT_EQ(r.exit_code, 2) << "k1 was dead-lettered: " << describe(r);
  ASSERT_EQ(::unsetenv("FERRY_IT_TOKEN"), 0);

  auto s = status();
  ASSERT_FALSE(s.isNull());
  EXPECT_EQ(num(s, "last_sequence"), 3);
  RunResult text = ferry({"status", "--config", config_}, 30s);
  EXPECT_EQ(text.exit_code, 0) << describe(text);
  RunResult trace = ferry({"trace", "k0", "--config", config_, "--json"}, 30s);
  ASSERT_EQ(trace.exit_code, 0) << describe(trace);
  EXPECT_EQ(parseArray(trace.out)->size(), 1u) << trace.out;
  auto letters = deadLetters();
  ASSERT_FALSE(letters.isNull());
  EXPECT_EQ(letters->size(), 1u);

  // Commands that use the values still name the missing variable.
  for (auto args : {std::vector<std::string>{"check", "--config", config_},
                    std::vector<std::string>{"run", "--config", config_, "--once"}}) {
    RunResult refused = ferry(args, 30s);
    EXPECT_EQ(refused.exit_code, 78) << describe(refused);
    EXPECT_NE(refused.err.find("FERRY_IT_TOKEN is not set"), std::string::npos) << refused.err;
  }
}

TEST_F(OwnerTest, ReadOnlyCommandsOnAMissingJournalCreateNothing) {
  writeFile(dir_.file("data.jsonl"), items(0, 1));
  writeConfig(sourceSection("src", dir_.file("data.jsonl")) +
              sinkSection("out", dir_.file("out.jsonl")));
  const std::string journal = dir_.file("journal.db");
  for (auto args : {std::vector<std::string>{"status", "--config", config_},
                    std::vector<std::string>{"status", "--config", config_, "--json"},
                    std::vector<std::string>{"trace", "k0", "--config", config_},
                    std::vector<std::string>{"dead-letters", "list", "--config", config_}}) {
    RunResult r = ferry(args, 30s);
    EXPECT_EQ(r.exit_code, 66) << args[0] << ": " << describe(r);
    EXPECT_NE(r.err.find("no journal yet at " + journal), std::string::npos) << r.err;
  }
  // A connection test needs no journal either.
  RunResult check = ferry({"check", "--connect", "--config", config_}, 30s);
  EXPECT_EQ(check.exit_code, 0) << describe(check);
  for (const auto& entry : fs::directory_iterator(dir_.path()))
    EXPECT_EQ(entry.path().filename().string().rfind("journal", 0), std::string::npos)
        << "created " << entry.path();
}

// Run as root (as the suite is), a write command on a journal owned by the service user must
// not leave root-owned files behind: the service could not write them any more.
TEST_F(OwnerTest, WriteCommandsAsRootOnAnotherUsersJournalRefuseAndCreateNothing) {
  ASSERT_EQ(::geteuid(), 0u) << "this test checks what root may not do: run the suite as root";
  const passwd* nobody = ::getpwnam("nobody");
  ASSERT_NE(nobody, nullptr);
  const std::string state = dir_.file("state");
  fs::create_directory(state);
  const std::string journal = state + "/journal.db";
  writeFile(dir_.file("data.jsonl"), items(0, 3));
  writeFile(dir_.file("out.fail"), "fatal_keys k1\n");
  std::string host = hostSection(dir_);
  host.replace(host.find(dir_.file("journal.db")), dir_.file("journal.db").size(), journal);
  writeFile(config_, host + sourceSection("src", dir_.file("data.jsonl")) +
                         sinkSection("out", dir_.file("out.jsonl"),
                                     "fail_file = " + dir_.file("out.fail") + "\n"));
  auto ownedByNobody = [&] {
    for (const auto& entry : fs::directory_iterator(state)) {
      struct stat st {};
      if (::stat(entry.path().c_str(), &st) != 0 || st.st_uid != nobody->pw_uid) {
        ADD_FAILURE() << entry.path() << " is not owned by nobody";
        return false;
      }
    }
    return true;
  };
  const std::string fix = "sudo -u nobody ferry";

  // A fresh install: the state directory belongs to the service user, no journal yet.
  ASSERT_EQ(::chown(state.c_str(), nobody->pw_uid, nobody->pw_gid), 0);
  RunResult r = runOnce();
  EXPECT_EQ(r.exit_code, 77) << describe(r);
  EXPECT_NE(r.err.find(fix), std::string::npos) << r.err;
  EXPECT_TRUE(fs::is_empty(state)) << "created a file in " << state;

  // A journal the service user made (made here by root, then handed over).
  ASSERT_EQ(::chown(state.c_str(), 0, 0), 0);
  ASSERT_EQ(runOnce().exit_code, 2) << "k1 was dead-lettered";
  for (const auto& entry : fs::directory_iterator(state))
    ASSERT_EQ(::chown(entry.path().c_str(), nobody->pw_uid, nobody->pw_gid), 0);
  ASSERT_EQ(::chown(state.c_str(), nobody->pw_uid, nobody->pw_gid), 0);
  for (auto args : {std::vector<std::string>{"run", "--config", config_, "--once"},
                    std::vector<std::string>{"run", "--config", config_},
                    std::vector<std::string>{"dead-letters", "replay", "--config", config_,
                                             "--sink", "out"},
                    std::vector<std::string>{"sinks", "pause", "out", "--config", config_}}) {
    r = ferry(args, 30s);
    EXPECT_EQ(r.exit_code, 77) << args[0] << ": " << describe(r);
    EXPECT_NE(r.err.find(fix), std::string::npos) << r.err;
    EXPECT_NE(r.err.find(journal), std::string::npos) << r.err;
  }
  // Looking is fine, as root too.
  auto letters = deadLetters();
  ASSERT_FALSE(letters.isNull());
  EXPECT_EQ(letters->size(), 1u);
  EXPECT_FALSE(status().isNull());
  EXPECT_TRUE(ownedByNobody());
}

}  // namespace
}  // namespace ferry::it
