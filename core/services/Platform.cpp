#include "services/Platform.h"

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <system_error>

#ifdef _WIN32
#include <windows.h>
#else
#include <unistd.h>
#endif

namespace ferry::core::platform {

namespace fs = std::filesystem;

#ifdef _WIN32

std::string executableDir() {
  wchar_t buffer[MAX_PATH * 4];
  const DWORD n = ::GetModuleFileNameW(nullptr, buffer, sizeof buffer / sizeof buffer[0]);
  if (n == 0 || n >= sizeof buffer / sizeof buffer[0]) return {};
  return fs::path(std::wstring(buffer, n)).parent_path().string();
}

std::string defaultConfigPath() {
  const char* data = std::getenv("ProgramData");
  return (fs::path(data != nullptr && *data != '\0' ? data : "C:\\ProgramData") / "Ferry" /
          "ferry.ini")
      .string();
}

std::string defaultPluginDir() { return (fs::path(executableDir()) / "plugins").string(); }

const char* pluginSuffix() { return ".dll"; }

long processId() { return static_cast<long>(::GetCurrentProcessId()); }

std::string makeScratchDir(const std::string& prefix) {
  std::error_code ec;
  const fs::path base = fs::temp_directory_path(ec);
  if (ec) throw std::runtime_error("no temporary directory: " + ec.message());
  std::random_device random;
  const char* letters = "abcdefghijklmnopqrstuvwxyz0123456789";
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::string name = prefix + ".";
    for (int i = 0; i < 6; ++i) name += letters[random() % 36];
    const fs::path dir = base / name;
    if (fs::create_directory(dir, ec)) return dir.string();
    if (ec) throw std::runtime_error("cannot create a temporary directory " + dir.string() + ": " +
                                     ec.message());
  }
  throw std::runtime_error("cannot create a temporary directory in " + base.string());
}

#else

std::string executableDir() {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : exe.parent_path().string();
}

std::string defaultConfigPath() { return "/etc/ferry/ferry.ini"; }

std::string defaultPluginDir() {
  return (fs::path(executableDir()) / ".." / "lib" / "ferry" / "plugins").lexically_normal().string();
}

const char* pluginSuffix() { return ".so"; }

long processId() { return static_cast<long>(::getpid()); }

std::string makeScratchDir(const std::string& prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern =
      std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/" + prefix + ".XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr)
    throw std::runtime_error("cannot create a temporary directory " + pattern + ": " +
                             std::strerror(errno));
  return pattern;
}

#endif

}  // namespace ferry::core::platform
