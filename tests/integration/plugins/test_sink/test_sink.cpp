// test_sink: a sink plugin for the end-to-end tests. It appends one JSON line per event to a
// file and fsyncs it before answering, so that a test may trust the file even after kill -9.
// Failures are scripted through a control file read at every write.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ferry/json.hpp>
#include <ferry/plugin.hpp>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>

namespace {

constexpr ferry_option_def kOptions[] = {
    ferry::Option("out").required().help(
        "JSON Lines output: one line per event written, fsynced before write() answers"),
    ferry::Option("fail_file")
        .help(
            "control file read at every write: retry | retry_after <ms> | auth | fatal_keys k1,k2"),
    ferry::Option("fail_first", FERRY_OPT_INT)
        .defaultsTo("0")
        .help("the first N write calls of the process answer RETRY"),
    ferry::Option("slow_ms", FERRY_OPT_INT).defaultsTo("0").help("sleep this long per write call"),
};

class TestSink : public ferry::Sink {
 public:
  TestSink(ferry::Host host, const ferry::Options& options)
      : ferry::Sink(host),
        out_(options.string("out")),
        fail_file_(options.string("fail_file")),
        fail_first_(options.integer("fail_first")),
        slow_ms_(options.integer("slow_ms")) {}

  ferry::WriteOutcome write(const ferry::Batch& batch) override {
    if (slow_ms_ > 0) std::this_thread::sleep_for(std::chrono::milliseconds(slow_ms_));
    if (writes_++ < fail_first_) return ferry::WriteOutcome::retry(0, "scripted start-up outage");

    std::set<std::string> fatal_keys;
    if (!fail_file_.empty()) {
      std::ifstream in(fail_file_);
      std::string line;
      if (in && std::getline(in, line)) {
        std::istringstream words(line);
        std::string word;
        words >> word;
        if (word == "retry") return ferry::WriteOutcome::retry(0, "scripted outage");
        if (word == "retry_after") {
          int64_t ms = 0;
          words >> ms;
          return ferry::WriteOutcome::retry(0, "scripted 429", ms);
        }
        if (word == "auth") return ferry::WriteOutcome::auth("scripted: refused");
        if (word == "fatal_keys") {
          std::string list;
          words >> list;
          std::istringstream items(list);
          std::string k;
          while (std::getline(items, k, ',')) fatal_keys.insert(k);
        }
      }
    }

    size_t count = batch.size();
    for (size_t i = 0; i < batch.size(); ++i) {
      if (fatal_keys.count(std::string(batch[i].key())) > 0) {
        count = i;
        break;
      }
    }
    std::string text;
    for (size_t i = 0; i < count; ++i) {
      const ferry::Event e = batch[i];
      text += "{\"seq\":" + std::to_string(e.sequence()) + ",\"source\":";
      ferry::json::appendString(text, e.source());
      text += ",\"entity\":";
      ferry::json::appendString(text, e.entity());
      text += ",\"key\":";
      ferry::json::appendString(text, e.key());
      text += ",\"version\":";
      ferry::json::appendString(text, e.version());
      text += ",\"previous\":";
      ferry::json::appendString(text, e.previous());
      text += e.echo() ? ",\"echo\":true,\"id\":" : ",\"echo\":false,\"id\":";
      ferry::json::appendString(text, e.idempotencyKey());
      text += ",\"batch_size\":" + std::to_string(batch.size()) + "}\n";
    }
    if (!text.empty()) appendDurably(text);
    if (count < batch.size())
      return ferry::WriteOutcome::refuse(
          count, "scripted: rejected key " + std::string(batch[count].key()));
    return ferry::WriteOutcome::ok();
  }

 private:
  void appendDurably(const std::string& text) const {
    int fd = ::open(out_.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) throw ferry::Retry("cannot open " + out_ + ": " + std::strerror(errno));
    dropTornTail(fd);
    size_t written = 0;
    while (written < text.size()) {
      ssize_t n = ::write(fd, text.data() + written, text.size() - written);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        ::close(fd);
        throw ferry::Retry("cannot write " + out_ + ": " + std::strerror(errno));
      }
      written += static_cast<size_t>(n);
    }
    if (::fsync(fd) != 0) {
      ::close(fd);
      throw ferry::Retry("cannot fsync " + out_ + ": " + std::strerror(errno));
    }
    ::close(fd);
  }

  // kill -9 can stop a multi-page write() between pages. Those events were never acknowledged
  // (the host writes them again), so cut the file back to its last complete line.
  void dropTornTail(int fd) const {
    off_t size = ::lseek(fd, 0, SEEK_END);
    if (size <= 0) return;
    char last = 0;
    if (::pread(fd, &last, 1, size - 1) != 1 || last == '\n') return;
    off_t end = size - 1;
    char buf[4096];
    while (end > 0) {
      off_t start = end >= static_cast<off_t>(sizeof buf) ? end - sizeof buf : 0;
      ssize_t n = ::pread(fd, buf, static_cast<size_t>(end - start), start);
      if (n <= 0) return;
      for (ssize_t i = n - 1; i >= 0; --i) {
        if (buf[i] == '\n') {
          if (::ftruncate(fd, start + i + 1) != 0) throw ferry::Retry("cannot repair " + out_);
          return;
        }
      }
      end = start;
    }
    if (::ftruncate(fd, 0) != 0) throw ferry::Retry("cannot repair " + out_);
  }

  std::string out_;
  std::string fail_file_;
  int64_t fail_first_;
  int64_t slow_ms_;
  int64_t writes_ = 0;
};

}  // namespace

FERRY_SINK_PLUGIN(TestSink, "test_sink", "1.0.0",
                  "test sink: appends each event as a JSON line to a file, durably", kOptions)
