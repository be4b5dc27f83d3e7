#include "services/Logging.h"

#include <Poco/AutoPtr.h>
#include <Poco/Channel.h>
#include <Poco/Logger.h>
#include <Poco/Message.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef _WIN32
#define O_CLOEXEC O_NOINHERIT  // MinGW's open(): not inherited by child processes
#endif

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <stdexcept>

#include "services/Text.h"
#include "services/Time.h"

namespace ferry::core {
namespace {

struct Level {
  const char* name;
  int syslog;  // sd-daemon(3) priority
};

Level levelOf(Poco::Message::Priority p) {
  switch (p) {
    case Poco::Message::PRIO_FATAL: return {"FATAL", 2};
    case Poco::Message::PRIO_CRITICAL: return {"CRIT", 2};
    case Poco::Message::PRIO_ERROR: return {"ERROR", 3};
    case Poco::Message::PRIO_WARNING: return {"WARN", 4};
    case Poco::Message::PRIO_NOTICE: return {"NOTICE", 5};
    case Poco::Message::PRIO_INFORMATION: return {"INFO", 6};
    default: return {"DEBUG", 7};
  }
}

// JSON string contents; printable() already removed every control character.
std::string jsonEscape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

int openLog(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd < 0)
    throw std::runtime_error("cannot open the log file '" + path + "': " + std::strerror(errno));
  return fd;
}

// Writes each line with one write() (O_APPEND: whole lines, also beside other writers); the
// file descriptor can be swapped for a new one of the same name.
class LineChannel : public Poco::Channel {
 public:
  LineChannel(std::string path, bool json)
      : path_(std::move(path)),
        json_(json),
        journal_(path_.empty() && stderrIsJournal()),
        fd_(path_.empty() ? STDERR_FILENO : openLog(path_)) {}

  void log(const Poco::Message& message) override {
    const std::string line = formatLogLine(message, json_, journal_);
    std::lock_guard lock(mutex_);
    size_t done = 0;
    while (done < line.size()) {
      ssize_t n = ::write(fd_, line.data() + done, line.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;  // nowhere left to say it
      done += static_cast<size_t>(n);
    }
  }

  void reopen() {
    if (path_.empty()) return;
    int fd = openLog(path_);
    std::lock_guard lock(mutex_);
    ::close(fd_);
    fd_ = fd;
  }

 protected:
  ~LineChannel() override {
    if (!path_.empty()) ::close(fd_);
  }

 private:
  const std::string path_;
  const bool json_;
  const bool journal_;
  std::mutex mutex_;
  int fd_;
};

std::mutex g_mutex;
Poco::AutoPtr<LineChannel> g_channel;

}  // namespace

bool stderrIsJournal() {
  const char* env = std::getenv("JOURNAL_STREAM");
  if (env == nullptr) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(env, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st {};
  if (::fstat(STDERR_FILENO, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == dev &&
         static_cast<unsigned long long>(st.st_ino) == ino;
}

std::string formatLogLine(const Poco::Message& message, bool json, bool journal_prefix) {
  const Level level = levelOf(message.getPriority());
  const std::string time = formatInstantMs(message.getTime().epochMicroseconds() * 1000);
  const std::string text = printable(message.getText());
  std::string line;
  if (journal_prefix) line = "<" + std::to_string(level.syslog) + ">";
  if (json)
    line += "{\"time\":\"" + time + "\",\"level\":\"" + level.name + "\",\"message\":\"" +
            jsonEscape(text) + "\"}";
  else
    line += (journal_prefix ? "" : time + " ") + level.name + " " + text;
  return line + "\n";
}

void configureLogging(const LogSettings& settings) {
  Poco::AutoPtr<LineChannel> channel(new LineChannel(settings.file, settings.format == "json"));
  Poco::Logger& log = Poco::Logger::get("ferry");
  log.setChannel(channel);
  // Config speaks debug|info|warning|error; Poco calls info "information".
  log.setLevel(settings.level.empty() || settings.level == "info" ? std::string("information")
                                                                  : settings.level);
  std::lock_guard lock(g_mutex);
  g_channel = channel;
}

void reopenLogFile() {
  std::lock_guard lock(g_mutex);
  if (g_channel) g_channel->reopen();
}

}  // namespace ferry::core
