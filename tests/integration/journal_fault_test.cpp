// End to end, with the journal failing under a running ferry: the journal lives on a small tmpfs
// that is filled up while events arrive. Sources and sinks must treat the journal's errors as
// transient (back off, say so) and recover by themselves once space is freed, losing nothing.
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>

#include "FerryTest.h"

namespace ferry::it {
namespace {

// A tmpfs of `size` mounted on `path` for the life of the object. Needs root (CAP_SYS_ADMIN),
// which the test command has: it installs packages and starts database servers as root.
class SmallTmpfs {
 public:
  SmallTmpfs(const std::string& path, const std::string& size) : path_(path) {
    std::filesystem::create_directories(path);
    const std::string options = "size=" + size;
    if (::mount("tmpfs", path.c_str(), "tmpfs", 0, options.c_str()) != 0)
      error_ = "cannot mount a tmpfs on " + path + ": " + std::strerror(errno) +
               " (this test needs root)";
    else
      mounted_ = true;
  }
  ~SmallTmpfs() {
    if (mounted_) ::umount2(path_.c_str(), MNT_DETACH);
  }
  const std::string& error() const { return error_; }

  // Writes a file until the filesystem is full; returns its path.
  std::string fill() {
    const std::string filler = path_ + "/filler";
    std::ofstream out(filler, std::ios::binary);
    std::string block(64 * 1024, 'x');
    while (out.write(block.data(), static_cast<std::streamsize>(block.size()))) out.flush();
    // The last partial block: fill byte by byte up to the very end.
    out.clear();
    for (int i = 0; i < 64 * 1024 && out.put('x'); ++i) out.flush();
    return filler;
  }

 private:
  std::string path_;
  std::string error_;
  bool mounted_ = false;
};

std::string items(int from, int to) {
  std::string text;
  for (int i = from; i < to; ++i) text += itemLine("k" + std::to_string(i), versionAt(i * 1000));
  return text;
}

std::set<std::string> keysOf(const std::vector<SinkLine>& lines) {
  std::set<std::string> keys;
  for (const auto& l : lines) keys.insert(l.key);
  return keys;
}

TEST_F(FerryTest, JournalOnAFullDiskBacksOffAndRecoversWhenSpaceIsFreed) {
  // Room for the journal and its WAL (checkpointed every 64 MB) until the filler takes the rest.
  SmallTmpfs fs(dir_.file("jfs"), "128m");
  ASSERT_EQ(fs.error(), "");
  writeFile(dir_.file("data.jsonl"), items(0, 40));
  std::string host = hostSection(dir_);
  host.replace(host.find(dir_.file("journal.db")), dir_.file("journal.db").size(),
               dir_.file("jfs/journal.db"));
  writeFile(config_, host + sourceSection("src", dir_.file("data.jsonl")) +
                         sinkSection("out", dir_.file("out.jsonl")));
  FerryProcess ferry({"run", "--config", config_}, dir_.path());
  ASSERT_TRUE(waitUntil([&] { return readSinkLines(dir_.file("out.jsonl")).size() >= 40; }))
      << ferry.err();

  // The disk fills up; then 40 more changes arrive, and the source cannot journal them.
  const std::string filler = fs.fill();
  appendFile(dir_.file("data.jsonl"), items(40, 80));
  ASSERT_TRUE(waitUntil([&] {
    const std::string err = ferry.err();
    return err.find("source src: journal: ") != std::string::npos &&
           err.find("; retry 2 in") != std::string::npos;
  }, 30s)) << "no journal error with retries logged\n"
           << ferry.err();
  ASSERT_TRUE(ferry.running()) << ferry.err();
  EXPECT_EQ(readSinkLines(dir_.file("out.jsonl")).size(), 40u);

  // Space is freed: without a restart, the source journals the new changes and the sink gets
  // every one of them, once.
  ::unlink(filler.c_str());
  ASSERT_TRUE(waitUntil([&] { return readSinkLines(dir_.file("out.jsonl")).size() >= 80; }, 60s))
      << "no recovery after space was freed; the sink has "
      << readSinkLines(dir_.file("out.jsonl")).size() << " lines\n"
      << ferry.err();
  auto lines = readSinkLines(dir_.file("out.jsonl"));
  std::set<std::string> expected;
  for (int i = 0; i < 80; ++i) expected.insert("k" + std::to_string(i));
  EXPECT_EQ(keysOf(lines), expected);
  EXPECT_EQ(lines.size(), 80u) << "an event was delivered twice";
  EXPECT_NE(ferry.err().find("source src: recovered after"), std::string::npos) << ferry.err();

  auto src = instance(status(), "sources", "src");
  ASSERT_FALSE(src.isNull());
  EXPECT_NE(str(src, "state"), "stopped") << str(src, "message");
  ferry.signal(SIGTERM);
  EXPECT_EQ(ferry.wait(60s), 0) << ferry.err();
}

// `run --once` on a full disk: the source retries the journal (freeing space would let it go
// on); stopped meanwhile, it exits 74, the journal's code, naming the journal's error.
TEST_F(FerryTest, RunOnceStoppedWhileTheJournalFailsExits74) {
  SmallTmpfs fs(dir_.file("jfs"), "16m");
  ASSERT_EQ(fs.error(), "");
  writeFile(dir_.file("data.jsonl"), items(0, 10));
  // The source's remote is down at first: the disk fills up meanwhile.
  writeFile(dir_.file("fail"), "retry\n");
  std::string host = hostSection(dir_);
  host.replace(host.find(dir_.file("journal.db")), dir_.file("journal.db").size(),
               dir_.file("jfs/journal.db"));
  writeFile(config_, host +
                         sourceSection("src", dir_.file("data.jsonl"),
                                       "fail_file = " + dir_.file("fail") + "\n") +
                         sinkSection("out", dir_.file("out.jsonl")));
  FerryProcess ferry({"run", "--config", config_, "--once"}, dir_.path());
  ASSERT_TRUE(waitUntil([&] { return ferry.err().find("scripted outage") != std::string::npos; },
                        30s))
      << ferry.err();
  fs.fill();
  writeFile(dir_.file("fail"), "");
  ASSERT_TRUE(waitUntil([&] {
    return ferry.err().find("source src: journal: ") != std::string::npos;
  }, 30s)) << "no journal error logged\n" << ferry.err();
  ASSERT_TRUE(ferry.running()) << "run --once must retry the journal, not give up\n"
                               << ferry.err();
  ferry.signal(SIGTERM);
  EXPECT_EQ(ferry.wait(60s), 74) << ferry.err();
  EXPECT_NE(ferry.err().find("source src ended on a journal failure: journal: "),
            std::string::npos)
      << ferry.err();
}

}  // namespace
}  // namespace ferry::it
