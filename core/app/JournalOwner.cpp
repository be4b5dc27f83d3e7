#include "app/JournalOwner.h"

#ifdef _WIN32
#include <windows.h>
#else
#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>
#endif

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "journal/JournalError.h"

namespace ferry::core {
namespace {

namespace fs = std::filesystem;

#ifndef _WIN32
flock wholeFile(short type) {
  flock lock{};
  lock.l_type = type;
  lock.l_whence = SEEK_SET;
  lock.l_start = 0;
  lock.l_len = 0;
  return lock;
}

// The owner of the lock on `fd`, nullopt when nobody holds it. F_GETLK names the holder; in
// another PID namespace it says 0, then the PID the holder wrote into the file is the answer.
std::optional<pid_t> holderOf(int fd, const std::string& lock_file) {
  flock probe = wholeFile(F_WRLCK);
  if (::fcntl(fd, F_GETLK, &probe) != 0 || probe.l_type == F_UNLCK) return std::nullopt;
  if (probe.l_pid > 0) return probe.l_pid;
  pid_t written = 0;
  std::ifstream(lock_file) >> written;
  return written;
}

std::string userName(uid_t uid) {
  const passwd* pw = ::getpwuid(uid);
  return pw != nullptr ? pw->pw_name : std::to_string(uid);
}
#endif

std::string busyMessage(const std::string& journal, const std::string& pid,
                        const std::string& command) {
  const bool run = command.rfind("run", 0) == 0;
#ifdef _WIN32
  const char* stop = "sc.exe stop Ferry";
#else
  const char* stop = "systemctl stop ferry";
#endif
  return "journal " + journal + " is in use by another ferry (PID " + pid + ", see " +
         lockFileOf(journal) + "); " +
         (run ? std::string("one ferry per journal: stop it first (e.g. ") + stop +
                    "), or give this config its own journal"
              : "`ferry " + command +
                    "` writes the journal and would be a second writer: stop it first (e.g. " +
                    stop + "), run the command again, then start it again");
}

}  // namespace

std::string lockFileOf(const std::string& journal) { return journal + ".lock"; }

void requireJournal(const std::string& journal) {
  std::error_code ec;
  if (!fs::exists(journal, ec))
    throw NoJournal("no journal yet at " + journal +
                    ": `ferry run` creates it (check [host] journal in the config if ferry has "
                    "already run)");
}


#ifdef _WIN32
namespace {

// Far beyond the PID text: the locked byte never hides the text from readers.
constexpr DWORD kLockOffset = 1u << 20;

HANDLE openLockFile(const std::string& path, DWORD access, DWORD disposition) {
  return ::CreateFileW(fs::path(path).wstring().c_str(), access,
                       FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, nullptr,
                       disposition, FILE_ATTRIBUTE_NORMAL, nullptr);
}

bool tryLock(HANDLE h) {
  OVERLAPPED at{};
  at.Offset = kLockOffset;
  return ::LockFileEx(h, LOCKFILE_EXCLUSIVE_LOCK | LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &at) != 0;
}

void unlock(HANDLE h) {
  OVERLAPPED at{};
  at.Offset = kLockOffset;
  ::UnlockFileEx(h, 0, 1, 0, &at);
}

pid_t writtenPid(const std::string& lock_file) {
  pid_t written = 0;
  std::ifstream(lock_file) >> written;
  return written;
}

}  // namespace

std::optional<pid_t> journalOwner(const std::string& journal) {
  const std::string lock_file = lockFileOf(journal);
  HANDLE h = openLockFile(lock_file, GENERIC_READ, OPEN_EXISTING);
  if (h == INVALID_HANDLE_VALUE) return std::nullopt;
  std::optional<pid_t> holder;
  if (tryLock(h)) unlock(h);
  else holder = writtenPid(lock_file);
  ::CloseHandle(h);
  return holder;
}

void refuseRootOnOthersJournal(const std::string&, const std::string&) {
  // No root on Windows: the service account and administrators share ProgramData\Ferry.
}

JournalLock::JournalLock(const std::string& journal, const std::string& command) {
  const std::string lock_file = lockFileOf(journal);
  HANDLE h = openLockFile(lock_file, GENERIC_READ | GENERIC_WRITE, OPEN_ALWAYS);
  if (h == INVALID_HANDLE_VALUE)
    throw JournalError("journal " + journal + ": cannot open its lock file " + lock_file +
                       " (Windows error " + std::to_string(::GetLastError()) +
                       "); the journal's folder must exist and be writable by the account "
                       "ferry runs as");
  if (!tryLock(h)) {
    ::CloseHandle(h);
    const pid_t pid = writtenPid(lock_file);
    throw JournalBusy(busyMessage(journal, pid > 0 ? std::to_string(pid) : "unknown", command));
  }
  const std::string text = std::to_string(::GetCurrentProcessId()) + "\n";
  DWORD written = 0;
  ::SetFilePointer(h, 0, nullptr, FILE_BEGIN);
  ::SetEndOfFile(h);
  ::WriteFile(h, text.data(), static_cast<DWORD>(text.size()), &written, nullptr);
  handle_ = h;
}

JournalLock::~JournalLock() {
  if (handle_ != nullptr) ::CloseHandle(static_cast<HANDLE>(handle_));
}

#else
std::optional<pid_t> journalOwner(const std::string& journal) {
  const std::string lock_file = lockFileOf(journal);
  const int fd = ::open(lock_file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;  // never owned since the journal exists (or unreadable)
  auto holder = holderOf(fd, lock_file);
  ::close(fd);
  return holder;
}

void refuseRootOnOthersJournal(const std::string& journal, const std::string& command) {
  if (::geteuid() == 0) {
    // Before the first run, the journal's directory tells who the journal will belong to.
    struct stat st {};
    const std::string dir = fs::path(journal).parent_path().string();
    if (::stat(journal.c_str(), &st) == 0 || ::stat(dir.c_str(), &st) == 0) {
      if (st.st_uid != 0) {
        const std::string user = userName(st.st_uid);
        throw JournalNotOurs(
            "journal " + journal + " belongs to user " + user + ": as root, `ferry " + command +
            "` would leave files there (the journal, its -wal and -shm, the lock file) that the "
            "service cannot write; run it as the service user: sudo -u " + user + " ferry " +
            command);
      }
    }
  }
}

JournalLock::JournalLock(const std::string& journal, const std::string& command) {
  refuseRootOnOthersJournal(journal, command);
  const std::string lock_file = lockFileOf(journal);
  fd_ = ::open(lock_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw JournalError("journal " + journal + ": cannot open its lock file " + lock_file + " (" +
                       std::strerror(errno) +
                       "); the journal's directory must exist and be writable by the user ferry "
                       "runs as");
  flock lock = wholeFile(F_WRLCK);
  if (::fcntl(fd_, F_SETLK, &lock) != 0) {
    const auto holder = holderOf(fd_, lock_file);
    ::close(fd_);
    throw JournalBusy(busyMessage(journal, holder ? std::to_string(*holder) : "unknown", command));
  }
  // The PID in the file is for people and for a holder in another PID namespace.
  const std::string text = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, text.data(), text.size(), 0) < 0) {
    // The lock is what counts; the text is informative.
  }
}

JournalLock::~JournalLock() {
  if (fd_ >= 0) ::close(fd_);
}

#endif

}  // namespace ferry::core
