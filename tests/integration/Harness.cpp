#include "Harness.h"

#include <Poco/DateTimeFormatter.h>
#include <Poco/File.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/StreamCopier.h>
#include <Poco/Timestamp.h>
#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace ferry::it {

std::string ferryBinary() { return FERRY_BINARY; }
std::string testPluginDir() { return FERRY_TEST_PLUGIN_DIR; }

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern =
      std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/ferry-it-XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = buf.data();
}

TempDir::~TempDir() {
  if (keep_) return;
  try {
    Poco::File(path_).remove(true);
  } catch (...) {
  }
}

void writeFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path);
}

void appendFile(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::app);
  out << text;
  if (!out) throw std::runtime_error("cannot append to " + path);
}

void removeFile(const std::string& path) { std::remove(path.c_str()); }

std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

namespace {

std::atomic<int> g_output_counter{0};

// fork + exec with stdout/stderr redirected to files; returns the child's pid.
// Starts `command` (the program, found on PATH unless it has a '/', then its arguments).
pid_t spawnCommand(const std::vector<std::string>& command, const std::string& out_path,
                   const std::string& err_path) {
  std::vector<std::string> argv_s = command;
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = ::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int in = ::open("/dev/null", O_RDONLY);
    if (out < 0 || err < 0 || in < 0) ::_exit(126);
    ::dup2(in, 0);
    ::dup2(out, 1);
    ::dup2(err, 2);
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

pid_t spawn(const std::vector<std::string>& args, const std::string& out_path,
            const std::string& err_path) {
  std::vector<std::string> command{ferryBinary()};
  command.insert(command.end(), args.begin(), args.end());
  return spawnCommand(command, out_path, err_path);
}

int decode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Waits for `pid` up to `deadline`; returns the decoded status, or nullopt-like -2 on timeout.
int reap(pid_t pid, std::chrono::milliseconds deadline) {
  auto until = std::chrono::steady_clock::now() + deadline;
  while (true) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) return decode(status);
    if (r < 0) return -1;
    if (std::chrono::steady_clock::now() >= until) return -2;
    std::this_thread::sleep_for(20ms);
  }
}

std::pair<std::string, std::string> outputPaths(const std::string& dir) {
  int n = g_output_counter++;
  return {dir + "/ferry-" + std::to_string(n) + ".out",
          dir + "/ferry-" + std::to_string(n) + ".err"};
}

}  // namespace

RunResult runFerry(const std::vector<std::string>& args, const std::string& scratch_dir,
                   std::chrono::seconds deadline) {
  std::vector<std::string> command{ferryBinary()};
  command.insert(command.end(), args.begin(), args.end());
  return runCommand(command, scratch_dir, deadline);
}

RunResult runCommand(const std::vector<std::string>& command, const std::string& scratch_dir,
                     std::chrono::seconds deadline) {
  auto [out_path, err_path] = outputPaths(scratch_dir);
  pid_t pid = spawnCommand(command, out_path, err_path);
  RunResult result;
  int code = reap(pid, deadline);
  if (code == -2) {
    ::kill(pid, SIGKILL);
    reap(pid, 60s);
    result.timed_out = true;
    code = -1;
  }
  result.exit_code = code;
  result.out = readFile(out_path);
  result.err = readFile(err_path);
  return result;
}

FerryProcess::FerryProcess(const std::vector<std::string>& args, const std::string& scratch_dir) {
  std::tie(out_path_, err_path_) = outputPaths(scratch_dir);
  pid_ = spawn(args, out_path_, err_path_);
}

FerryProcess::~FerryProcess() {
  if (pid_ > 0) kill9();
}

bool FerryProcess::running() {
  if (pid_ <= 0) return false;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exit_code_ = decode(status);
    pid_ = -1;
    return false;
  }
  return r == 0;
}

void FerryProcess::signal(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

int FerryProcess::wait(std::chrono::seconds deadline) {
  if (pid_ <= 0) return exit_code_;
  int code = reap(pid_, deadline);
  if (code == -2) return -1;
  exit_code_ = code;
  pid_ = -1;
  return exit_code_;
}

void FerryProcess::kill9() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int code = reap(pid_, 60s);
  exit_code_ = code;
  pid_ = -1;
}

bool waitUntil(const std::function<bool()>& condition, std::chrono::seconds deadline) {
  auto until = std::chrono::steady_clock::now() + deadline;
  while (true) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= until) return false;
    std::this_thread::sleep_for(100ms);
  }
}

Poco::JSON::Object::Ptr parseObject(const std::string& text) {
  Poco::JSON::Parser parser;
  return parser.parse(text).extract<Poco::JSON::Object::Ptr>();
}

Poco::JSON::Array::Ptr parseArray(const std::string& text) {
  Poco::JSON::Parser parser;
  return parser.parse(text).extract<Poco::JSON::Array::Ptr>();
}

Poco::JSON::Object::Ptr findNamed(const Poco::JSON::Array::Ptr& array, const std::string& name) {
  if (array.isNull()) return {};
  for (size_t i = 0; i < array->size(); ++i) {
    auto o = array->getObject(static_cast<unsigned>(i));
    if (!o.isNull() && o->optValue<std::string>("name", "") == name) return o;
  }
  return {};
}

std::map<std::string, int> countKeys(const std::vector<SinkLine>& lines) {
  std::map<std::string, int> keys;
  for (const auto& l : lines) ++keys[l.key];
  return keys;
}

std::vector<std::string> readLines(const std::string& path) {
  std::vector<std::string> lines;
  std::ifstream in(path, std::ios::binary);
  std::string line;
  while (std::getline(in, line))
    if (!line.empty()) lines.push_back(line);
  return lines;
}

std::vector<SinkLine> readSinkLines(const std::string& path) {
  std::vector<SinkLine> out;
  for (const auto& text : readLines(path)) {
    Poco::JSON::Object::Ptr o;
    try {
      o = parseObject(text);
    } catch (const std::exception& e) {
      throw std::runtime_error(path + ": unparseable line: " + text);
    }
    SinkLine l;
    l.seq = o->getValue<int64_t>("seq");
    l.source = o->getValue<std::string>("source");
    l.entity = o->getValue<std::string>("entity");
    l.key = o->getValue<std::string>("key");
    l.version = o->getValue<std::string>("version");
    l.previous = o->getValue<std::string>("previous");
    l.echo = o->getValue<bool>("echo");
    l.id = o->getValue<std::string>("id");
    l.batch_size = o->getValue<int64_t>("batch_size");
    out.push_back(std::move(l));
  }
  return out;
}

HttpAnswer httpGet(uint16_t port, const std::string& path) {
  try {
    Poco::Net::HTTPClientSession session("127.0.0.1", port);
    session.setTimeout(Poco::Timespan(5, 0));
    Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_GET, path);
    session.sendRequest(request);
    Poco::Net::HTTPResponse response;
    std::istream& in = session.receiveResponse(response);
    HttpAnswer a;
    a.status = static_cast<int>(response.getStatus());
    a.reason = response.getReason();
    Poco::StreamCopier::copyToString(in, a.body);
    return a;
  } catch (const Poco::Exception&) {
    return {};
  }
}

uint16_t freePort() {
  Poco::Net::ServerSocket probe(Poco::Net::SocketAddress("127.0.0.1", 0));
  return probe.address().port();
}

size_t heapInUse() {
  const struct mallinfo2 m = ::mallinfo2();
  return m.uordblks + m.hblkhd;
}

size_t heapKeptAfter(std::string& page, std::string& big, const std::function<void()>& poll) {
  const size_t before = heapInUse();
  page.swap(big);
  poll();
  page.swap(big);
  const size_t after = heapInUse();
  return after > before ? after - before : 0;
}

std::string versionAt(int64_t ms) {
  // 2025-01-01T00:00:00Z
  constexpr int64_t kBaseMs = 1735689600000;
  Poco::Timestamp ts((kBaseMs + ms) * 1000);
  return Poco::DateTimeFormatter::format(ts, "%Y-%m-%dT%H:%M:%S.%iZ");
}

std::string itemLine(const std::string& key, const std::string& version,
                     const std::string& entity) {
  return "{\"entity\":\"" + entity + "\",\"key\":\"" + key + "\",\"version\":\"" + version +
         "\",\"body\":{\"id\":\"" + key + "\",\"updatedAt\":\"" + version +
         "\",\"lines\":[{\"sku\":\"A-1\",\"qty\":2}]}}\n";
}

std::string hostSection(const TempDir& dir) {
  return "[host]\n"
         "journal = " +
         dir.file("journal.db") +
         "\n"
         "plugin_dir = " +
         testPluginDir() +
         "\n"
         "log_level = info\n"
         "retry_initial = 50ms\n"
         "retry_max = 500ms\n\n";
}

}  // namespace ferry::it
