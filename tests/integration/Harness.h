// What the end-to-end tests need to drive the real `ferry` executable as a user would: a
// temporary directory, config and dataset files, the binary run to completion or in the
// background, and its JSON answers and the test sink's output parsed.
#pragma once

#include <Poco/JSON/Array.h>
#include <Poco/JSON/Object.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace ferry::it {

using namespace std::chrono_literals;

// The `ferry` executable and the directory holding test_source.so and test_sink.so.
std::string ferryBinary();
std::string testPluginDir();

// A fresh directory under $TMPDIR (or /tmp), removed on destruction unless `keep()` was called
// (tests keep it when they failed, to look at the journal and outputs).
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  // path() + "/" + name
  std::string file(const std::string& name) const { return path_ + "/" + name; }
  void keep() { keep_ = true; }

 private:
  std::string path_;
  bool keep_ = false;
};

void writeFile(const std::string& path, const std::string& text);
void appendFile(const std::string& path, const std::string& text);
void removeFile(const std::string& path);
std::string readFile(const std::string& path);  // "" when missing

// What a finished `ferry` said.
struct RunResult {
  int exit_code = -1;  // 128 + signal when killed; -1 when it had to be killed after the deadline
  std::string out;
  std::string err;
  bool timed_out = false;
};

// Runs `ferry <args>` to completion (killed after `deadline`). Standard output and error go to
// files in `scratch_dir`, so that no pipe can fill up.
RunResult runFerry(const std::vector<std::string>& args, const std::string& scratch_dir,
                   std::chrono::seconds deadline = 120s);

// Runs any program (`command[0]`, looked up on PATH) the same way.
RunResult runCommand(const std::vector<std::string>& command, const std::string& scratch_dir,
                     std::chrono::seconds deadline = 120s);

// `ferry <args>` in the background. The destructor kills it (SIGKILL) if it still runs.
class FerryProcess {
 public:
  FerryProcess(const std::vector<std::string>& args, const std::string& scratch_dir);
  ~FerryProcess();
  FerryProcess(const FerryProcess&) = delete;
  FerryProcess& operator=(const FerryProcess&) = delete;

  pid_t pid() const { return pid_; }
  bool running();
  void signal(int sig);
  // Waits for the exit; returns the exit code (128 + signal when killed), or -1 after `deadline`.
  int wait(std::chrono::seconds deadline = 60s);
  // SIGKILL and reap.
  void kill9();
  std::string err() const { return readFile(err_path_); }

 private:
  pid_t pid_ = -1;
  int exit_code_ = -1;
  std::string out_path_;
  std::string err_path_;
};

// Polls `condition` every 100 ms until it holds or `deadline` passes; returns whether it held.
bool waitUntil(const std::function<bool()>& condition, std::chrono::seconds deadline = 60s);

// JSON helpers (throw on malformed input).
Poco::JSON::Object::Ptr parseObject(const std::string& text);
Poco::JSON::Array::Ptr parseArray(const std::string& text);
// The element of `array` whose "name" is `name`, or null.
Poco::JSON::Object::Ptr findNamed(const Poco::JSON::Array::Ptr& array, const std::string& name);

// One line written by test_sink.
struct SinkLine {
  int64_t seq = 0;
  std::string source, entity, key, version, previous, id;
  bool echo = false;
  int64_t batch_size = 0;
};
// Every line of a test_sink output file (none when the file does not exist). Throws on a line
// that does not parse: the sink fsyncs whole lines, so a torn line is a finding.
std::vector<SinkLine> readSinkLines(const std::string& path);
// How often each key occurs in `lines`.
std::map<std::string, int> countKeys(const std::vector<SinkLine>& lines);
// Non-empty lines of a text file.
std::vector<std::string> readLines(const std::string& path);

// What an HTTP server on 127.0.0.1 answered.
struct HttpAnswer {
  int status = 0;  // 0: nothing answered
  std::string reason;
  std::string body;
};
// GET http://127.0.0.1:<port><path>, with a 5 s timeout.
HttpAnswer httpGet(uint16_t port, const std::string& path);
// A port nobody listens on now (for admin_listen).
uint16_t freePort();
// The heap this process has in use (every malloc arena, mmapped chunks included): what a test
// of memory kept between two calls compares.
size_t heapInUse();
// What a plugin instance keeps of a big page: `page` is what its fake remote serves; `big` is
// swapped in for one `poll()` and back, and the heap's growth over that poll is the answer.
size_t heapKeptAfter(std::string& page, std::string& big, const std::function<void()>& poll);

// "2025-01-01T00:00:00.000Z" plus `ms` milliseconds, in the same format.
std::string versionAt(int64_t ms);
// One dataset line for test_source.
std::string itemLine(const std::string& key, const std::string& version,
                     const std::string& entity = "order");

// A config's [host] section: journal in `dir`, the test plugins, fast retries.
std::string hostSection(const TempDir& dir);

}  // namespace ferry::it
