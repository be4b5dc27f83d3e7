// 12. The command line a user meets first: `ferry plugins`, `ferry check`, `ferry --version`.
#include <regex>

#include "FerryTest.h"

namespace ferry::it {
namespace {

TEST_F(FerryTest, PluginsListsTheTestPluginsWithTheirOptions) {
  RunResult r = ferry({"plugins", "--plugin-dir", testPluginDir()}, 60s);
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  for (const char* text : {"test_source", "test_sink",
                           // test_source's options, a default, a help text
                           "data", "window", "fail_file", "fail_first", "echo_keys",
                           "delivered_log", "slow_ms", "inclusive", "simulated API window",
                           // test_sink's
                           "out", "one line per event written"}) {
    EXPECT_NE(r.out.find(text), std::string::npos)
        << "`ferry plugins` does not show '" << text << "':\n"
        << r.out;
  }
}

TEST_F(FerryTest, CheckAcceptsAValidConfig) {
  writeFile(dir_.file("data.jsonl"), itemLine("k1", versionAt(0)));
  writeConfig(sourceSection("src", dir_.file("data.jsonl")) +
              sinkSection("out", dir_.file("out.jsonl")));
  RunResult r = ferry({"check", "--config", config_}, 60s);
  EXPECT_EQ(r.exit_code, 0) << describe(r);
}

TEST_F(FerryTest, CheckNamesFileSectionAndKeyOfATypo) {
  writeFile(dir_.file("data.jsonl"), itemLine("k1", versionAt(0)));
  writeConfig(sourceSection("src", dir_.file("data.jsonl"), "pgae_size = 10\n") +
              sinkSection("out", dir_.file("out.jsonl")));
  RunResult r = ferry({"check", "--config", config_}, 60s);
  EXPECT_EQ(r.exit_code, 78) << describe(r);
  EXPECT_NE(r.err.find(config_), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("[source.src]"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("pgae_size"), std::string::npos) << r.err;
  // Nothing ran: the sink file was never created.
  EXPECT_TRUE(readFile(dir_.file("out.jsonl")).empty());

  // `run` refuses the same config the same way.
  RunResult run = runOnce();
  EXPECT_EQ(run.exit_code, 78) << describe(run);
  EXPECT_NE(run.err.find("pgae_size"), std::string::npos) << run.err;
}

TEST_F(FerryTest, VersionPrintsTheVersion) {
  RunResult r = ferry({"--version"}, 60s);
  ASSERT_EQ(r.exit_code, 0) << describe(r);
  EXPECT_TRUE(std::regex_search(r.out, std::regex("^ferry " FERRY_EXPECTED_VERSION "\\b")))
      << r.out;
}

}  // namespace
}  // namespace ferry::it
