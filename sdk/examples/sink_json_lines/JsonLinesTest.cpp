// The example sink's unit test: the built sink_json_lines.so in the SDK's fake host
// (<ferry/testing/fake_host.hpp>), no ferry process, real files.
#include <ferry/testing/fake_host.hpp>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

namespace {

namespace fs = std::filesystem;
using ferry::testing::FakeHost;
using ferry::testing::Plugin;

class JsonLinesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "sink_json_lines.XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string read(const fs::path& p) const {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }

  fs::path dir_;
  FakeHost host_;
  Plugin plugin_ = Plugin::load(SINK_JSON_LINES_PLUGIN);
};

TEST_F(JsonLinesTest, AppendsOneLinePerEventAndSaysWhichSdkBuiltIt) {
  auto sink = host_.create(plugin_, {{"path", (dir_ / "out.jsonl").string()}});
  EXPECT_TRUE(host_.logged("built with Ferry SDK"));

  auto outcome = sink.write({
      {.key = "1", .version = "2026-07-05T12:00:00.000Z", .body = R"({"id":"1"})"},
      {.key = "2", .version = "2026-07-05T12:00:01.000Z", .body = R"({"id":"2"})",
       .previous = "2026-07-05T11:00:00.000Z", .echo = true},
  });

  ASSERT_EQ(outcome.status, FERRY_WRITE_OK) << outcome.message;
  EXPECT_EQ(read(dir_ / "out.jsonl"),
            R"({"id":"source/order/1/2026-07-05T12:00:00.000Z","source":"source","entity":"order",)"
            R"("key":"1","version":"2026-07-05T12:00:00.000Z","previous":null,"echo":false,)"
            R"("sequence":1,"body":{"id":"1"}})"
            "\n"
            R"({"id":"source/order/2/2026-07-05T12:00:01.000Z","source":"source","entity":"order",)"
            R"("key":"2","version":"2026-07-05T12:00:01.000Z","previous":"2026-07-05T11:00:00.000Z",)"
            R"("echo":true,"sequence":2,"body":{"id":"2"}})"
            "\n");
}

TEST_F(JsonLinesTest, ABodyThatIsNoObjectGoesToTheDeadLettersAfterTheLinesBeforeIt) {
  auto sink = host_.create(plugin_, {{"path", (dir_ / "out.jsonl").string()}, {"fsync", "no"}});

  auto outcome = sink.write({
      {.key = "1", .version = "2026-07-05T12:00:00Z", .body = R"({"id":"1"})"},
      {.key = "2", .version = "2026-07-05T12:00:01Z", .body = "42"},
  });

  EXPECT_EQ(outcome.status, FERRY_WRITE_REFUSED);
  EXPECT_EQ(outcome.done, 1u);
  EXPECT_EQ(outcome.message, "body is not a JSON object or array");
  EXPECT_NE(read(dir_ / "out.jsonl").find(R"("key":"1")"), std::string::npos);
}

TEST_F(JsonLinesTest, AFileThatCannotBeWrittenIsRetried) {
  auto sink = host_.create(plugin_, {{"path", (dir_ / "missing" / "out.jsonl").string()}});

  auto outcome =
      sink.write({{.key = "1", .version = "2026-07-05T12:00:00Z", .body = R"({"id":"1"})"}});

  EXPECT_EQ(outcome.status, FERRY_WRITE_RETRY);
  EXPECT_EQ(outcome.done, 0u);
  EXPECT_NE(outcome.message.find("cannot open"), std::string::npos) << outcome.message;
}

TEST_F(JsonLinesTest, ThePathIsRequired) {
  EXPECT_THROW(host_.create(plugin_, {}), ferry::testing::CreateError);
}

}  // namespace
