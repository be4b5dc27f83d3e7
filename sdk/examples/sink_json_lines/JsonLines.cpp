// sink_json_lines: appends every change event as one JSON object per line to a file (JSON Lines),
// an example of a Ferry sink written outside Ferry's source tree against the installed SDK.
//
//   [sink.jsonl]
//   plugin = sink_json_lines
//   path = /var/spool/ferry/events.jsonl
//
// Each line: {"id":…,"source":…,"entity":…,"key":…,"version":…,"previous":…,"echo":…,
// "sequence":…,"body":<the entity's JSON exactly as received>}. A batch is appended with one
// write() and fsync()ed before the sink answers OK, so the host moves the sink's offset only over
// lines that are on disk. Delivery is at-least-once (after a crash between the fsync and the
// host's commit, lines come again): readers deduplicate on "id", the event's idempotency key.
#include <fcntl.h>
#include <unistd.h>
#ifdef _WIN32  // MinGW: the same calls; binary mode (no CRLF), _commit() is fsync()
#include <io.h>
#define O_CLOEXEC (O_NOINHERIT | O_BINARY)
#define fsync _commit
#endif

#include <cerrno>
#include <cstring>
#include <ferry/json.hpp>
#include <ferry/plugin.hpp>
#include <ferry/version.h>
#include <string>
#include <string_view>

namespace {

constexpr ferry_option_def kOptions[] = {
    ferry::Option("path").required().help("file the events are appended to, one JSON object a line"),
    ferry::Option("fsync", FERRY_OPT_BOOL)
        .defaultsTo("true")
        .help("fsync the file after each batch (false: faster, a crash may lose acknowledged lines)"),
};

class JsonLines : public ferry::Sink {
 public:
  JsonLines(ferry::Host host, const ferry::Options& options)
      : ferry::Sink(host), path_(options.string("path")), fsync_(options.boolean("fsync")) {
    host.info("appending to " + path_ + " (built with Ferry SDK " FERRY_SDK_VERSION ")");
  }

  ferry::WriteOutcome write(const ferry::Batch& batch) override {
    std::string lines;
    for (size_t i = 0; i < batch.size(); ++i) {
      const ferry::Event e = batch[i];
      // The body is embedded as JSON; text that cannot be an object or array would break the
      // line, so that event goes to the dead letters (the ones before it are written first).
      std::string_view body = e.body();
      while (!body.empty() && (body.front() == ' ' || body.front() == '\n')) body.remove_prefix(1);
      if (body.empty() || (body.front() != '{' && body.front() != '[')) {
        if (auto r = append(lines); !r.empty()) return ferry::WriteOutcome::retry(0, r);
        return ferry::WriteOutcome::refuse(i, "body is not a JSON object or array");
      }
      lines += "{\"id\":";
      ferry::json::appendString(lines, e.idempotencyKey());
      lines += ",\"source\":";
      ferry::json::appendString(lines, e.source());
      lines += ",\"entity\":";
      ferry::json::appendString(lines, e.entity());
      lines += ",\"key\":";
      ferry::json::appendString(lines, e.key());
      lines += ",\"version\":";
      ferry::json::appendString(lines, e.version());
      lines += ",\"previous\":";
      if (e.previous().empty()) {
        lines += "null";
      } else {
        ferry::json::appendString(lines, e.previous());
      }
      lines += e.echo() ? ",\"echo\":true" : ",\"echo\":false";
      lines += ",\"sequence\":" + std::to_string(e.sequence()) + ",\"body\":";
      lines += body;
      lines += "}\n";
    }
    // Transient (disk full, folder not mounted yet): the host backs off and hands the same batch
    // again; nothing of it counts as done.
    if (auto r = append(lines); !r.empty()) return ferry::WriteOutcome::retry(0, r);
    return ferry::WriteOutcome::ok();
  }

 private:
  // Appends and (optionally) fsyncs; returns an error message, empty on success.
  std::string append(const std::string& data) const {
    if (data.empty()) return {};
    int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) return "cannot open '" + path_ + "': " + std::strerror(errno);
    size_t done = 0;
    while (done < data.size()) {
      ssize_t n = ::write(fd, data.data() + done, data.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        std::string err = "cannot write '" + path_ + "': " + std::strerror(errno);
        ::close(fd);
        return err;
      }
      done += static_cast<size_t>(n);
    }
    if (fsync_ && ::fsync(fd) != 0) {
      std::string err = "cannot fsync '" + path_ + "': " + std::strerror(errno);
      ::close(fd);
      return err;
    }
    if (::close(fd) != 0) return "cannot close '" + path_ + "': " + std::strerror(errno);
    return {};
  }

  std::string path_;
  bool fsync_;
};

}  // namespace

FERRY_SINK_PLUGIN(JsonLines, "sink_json_lines", "1.0.0", "events as JSON Lines in a file",
                  kOptions)
