#include <Poco/Logger.h>
#include <Poco/Message.h>
#include <Poco/Timestamp.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "services/Logging.h"

namespace ferry::core {
namespace {

Poco::Message message(const std::string& text, Poco::Message::Priority priority) {
  Poco::Message m("ferry", text, priority);
  m.setTime(Poco::Timestamp(1751716800123000));  // 2025-07-05T12:00:00.123Z
  return m;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(LogLine, TextHasTheTimeAndAShortLevelName) {
  EXPECT_EQ(formatLogLine(message("ready", Poco::Message::PRIO_INFORMATION), false, false),
            "2025-07-05T12:00:00.123Z INFO ready\n");
  EXPECT_EQ(formatLogLine(message("slow", Poco::Message::PRIO_WARNING), false, false),
            "2025-07-05T12:00:00.123Z WARN slow\n");
  EXPECT_EQ(formatLogLine(message("down", Poco::Message::PRIO_ERROR), false, false),
            "2025-07-05T12:00:00.123Z ERROR down\n");
}

TEST(LogLine, ForTheJournalEachLineStartsWithItsPriority) {
  EXPECT_EQ(formatLogLine(message("down", Poco::Message::PRIO_ERROR), false, true),
            "<3>ERROR down\n");
  EXPECT_EQ(formatLogLine(message("slow", Poco::Message::PRIO_WARNING), false, true),
            "<4>WARN slow\n");
  EXPECT_EQ(formatLogLine(message("ready", Poco::Message::PRIO_INFORMATION), false, true),
            "<6>INFO ready\n");
  EXPECT_EQ(formatLogLine(message("page", Poco::Message::PRIO_DEBUG), false, true),
            "<7>DEBUG page\n");
}

TEST(LogLine, AMessageCannotSplitOrForgeLines) {
  const std::string line =
      formatLogLine(message("a\n<3>2025 ERROR forged", Poco::Message::PRIO_INFORMATION), false,
                    true);
  EXPECT_EQ(line, "<6>INFO a <3>2025 ERROR forged\n");
}

TEST(LogLine, JsonIsOneObjectPerLine) {
  EXPECT_EQ(formatLogLine(message("said \"no\" \\ \x01", Poco::Message::PRIO_WARNING), true,
                          false),
            "{\"time\":\"2025-07-05T12:00:00.123Z\",\"level\":\"WARN\",\"message\":\"said "
            "\\\"no\\\" \\\\ ?\"}\n");
}

TEST(LogLine, StderrIsTheJournalOnlyWhenJournalStreamNamesIt) {
  ::unsetenv("JOURNAL_STREAM");
  EXPECT_FALSE(stderrIsJournal());
  ::setenv("JOURNAL_STREAM", "1:1", 1);
  EXPECT_FALSE(stderrIsJournal());
  struct stat st {};
  ASSERT_EQ(::fstat(STDERR_FILENO, &st), 0);
  ::setenv("JOURNAL_STREAM",
           (std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino)).c_str(), 1);
  EXPECT_TRUE(stderrIsJournal());
  ::unsetenv("JOURNAL_STREAM");
}

TEST(Logging, ReopenStartsANewFileAfterRotation) {
  char dir_template[] = "/tmp/ferry-log-XXXXXX";
  ASSERT_NE(::mkdtemp(dir_template), nullptr);
  const std::string dir = dir_template;
  const std::string file = dir + "/ferry.log";
  configureLogging({"info", file, "text"});
  Poco::Logger& log = Poco::Logger::get("ferry");
  log.information("before rotation");
  log.debug("not at info");
  std::filesystem::rename(file, file + ".1");  // what logrotate does
  log.warning("still to the moved file");
  reopenLogFile();
  log.error("after rotation");
  const std::string old_text = slurp(file + ".1");
  const std::string new_text = slurp(file);
  EXPECT_NE(old_text.find(" INFO before rotation\n"), std::string::npos) << old_text;
  EXPECT_NE(old_text.find(" WARN still to the moved file\n"), std::string::npos) << old_text;
  EXPECT_EQ(old_text.find("not at info"), std::string::npos) << old_text;
  EXPECT_EQ(old_text.find("after rotation"), std::string::npos) << old_text;
  EXPECT_NE(new_text.find(" ERROR after rotation\n"), std::string::npos) << new_text;
  EXPECT_EQ(new_text.find("before"), std::string::npos) << new_text;
  configureLogging({"info", "", "text"});
  std::filesystem::remove_all(dir);
}

TEST(Logging, AFileThatCannotBeOpenedIsNamed) {
  try {
    configureLogging({"info", "/nonexistent-dir/ferry.log", "text"});
    FAIL() << "no error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot open the log file '/nonexistent-dir/ferry.log'"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace ferry::core
