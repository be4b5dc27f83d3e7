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
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "journal/JournalError.h"
#if FERRY_POSTGRES_JOURNAL
#include "journal/PostgresJournal.h"
#endif

namespace ferry::core {
namespace {

namespace fs = std::filesystem;

#ifdef _WIN32
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
#else
flock wholeFile(short type) {
  flock lock{};
  lock.l_type = type;
  lock.l_whence = SEEK_SET;
  lock.l_start = 0;
  lock.l_len = 0;
  return lock;
}

std::string userName(uid_t uid) {
  const passwd* pw = ::getpwuid(uid);
  return pw != nullptr ? pw->pw_name : std::to_string(uid);
}
#endif

// The PID the owner wrote into its lock file: for people, and for a holder in another PID
// namespace.
pid_t writtenPid(const std::string& lock_file) {
  pid_t written = 0;
  std::ifstream(lock_file) >> written;
  return written;
}

// The process holding the lock file of `journal`, nullopt when nobody does. Creates nothing.
std::optional<pid_t> fileLockHolder(const std::string& journal) {
  const std::string lock_file = lockFileOf(journal);
#ifdef _WIN32
  HANDLE h = openLockFile(lock_file, GENERIC_READ, OPEN_EXISTING);
  if (h == INVALID_HANDLE_VALUE) return std::nullopt;
  std::optional<pid_t> holder;
  if (tryLock(h))
    unlock(h);
  else
    holder = writtenPid(lock_file);
  ::CloseHandle(h);
  return holder;
#else
  const int fd = ::open(lock_file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;  // never owned since the journal exists (or unreadable)
  // F_GETLK names the holder; in another PID namespace it says 0, then the written PID answers.
  flock probe = wholeFile(F_WRLCK);
  const bool held = ::fcntl(fd, F_GETLK, &probe) == 0 && probe.l_type != F_UNLCK;
  ::close(fd);
  if (!held) return std::nullopt;
  return probe.l_pid > 0 ? probe.l_pid : writtenPid(lock_file);
#endif
}

std::string busyFix(const std::string& command) {
#ifdef _WIN32
  const std::string stop = "sc.exe stop Ferry";
#else
  const std::string stop = "systemctl stop ferry";
#endif
  const bool run = command.rfind("run", 0) == 0;
  return run ? "one ferry per journal: stop it first (e.g. " + stop +
                   "), or give this config its own journal"
             : "`ferry " + command +
                   "` writes the journal and would be a second writer: stop it first (e.g. " +
                   stop + "), run the command again, then start it again";
}

std::string busyMessage(const std::string& journal, std::optional<pid_t> holder,
                        const std::string& command) {
  const std::string pid = holder && *holder > 0 ? std::to_string(*holder) : "unknown";
  return "journal " + journal + " is in use by another ferry (PID " + pid + ", see " +
         lockFileOf(journal) + "); " + busyFix(command);
}

}  // namespace

std::string lockFileOf(const std::string& journal) { return journal + ".lock"; }

std::optional<pid_t> journalOwner(const std::string& journal) {
#if FERRY_POSTGRES_JOURNAL
  if (isPostgresJournal(journal)) {
    // "ferry/<host_id>/<pid>"
    const auto owner = PostgresJournal::ownerOf(journal);
    if (!owner) return std::nullopt;
    return static_cast<pid_t>(std::atol(owner->substr(owner->rfind('/') + 1).c_str()));
  }
#endif
  return fileLockHolder(journal);
}

bool journalExists(const std::string& journal) {
#if FERRY_POSTGRES_JOURNAL
  if (isPostgresJournal(journal)) return PostgresJournal::exists(journal);
#endif
  std::error_code ec;
  return fs::exists(journal, ec);
}

void requireJournal(const std::string& journal) {
  if (!journalExists(journal))
    throw NoJournal("no journal yet at " + journalDisplayName(journal) +
                    ": `ferry run` creates it (check [host] journal in the config if ferry has "
                    "already run)");
}

void refuseRootOnOthersJournal(const std::string& journal, const std::string& command) {
#ifdef _WIN32
  // No root on Windows: the service account and administrators share ProgramData\Ferry.
  (void)journal;
  (void)command;
#else
  if (isPostgresJournal(journal)) return;  // no files: PostgreSQL's own users decide
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
#endif
}

JournalLock::JournalLock(const std::string& journal, const std::string& command,
                         const std::string& host_id)
    : journal_(journal) {
  if (isPostgresJournal(journal)) {
#if FERRY_POSTGRES_JOURNAL
    auto pg = std::make_unique<PostgresJournal>(journal, host_id);
    // A ferry that just ended leaves its lock until the server has ended its connection's
    // backend, a few milliseconds later: a second's grace before calling the journal busy.
    std::optional<std::string> holder;
    for (int i = 0; i < 10 && (holder = pg->own()); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (holder)
      throw JournalBusy("journal " + pg->displayName() + " is in use by another ferry (" +
                        *holder +
                        ", as ferry/<host_id>/<PID>: one ferry runs per host_id, and hosts "
                        "sharing the journal each need their own [host] host_id); " +
                        busyFix(command));
    owned_ = std::move(pg);
#else
    owned_ = openJournal(journal, host_id);  // throws: this build has no PostgreSQL journal
#endif
    return;
  }
  refuseRootOnOthersJournal(journal, command);
  const std::string lock_file = lockFileOf(journal);
#ifdef _WIN32
  HANDLE h = openLockFile(lock_file, GENERIC_READ | GENERIC_WRITE, OPEN_ALWAYS);
  if (h == INVALID_HANDLE_VALUE)
    throw JournalError("journal " + journal + ": cannot open its lock file " + lock_file +
                       " (Windows error " + std::to_string(::GetLastError()) +
                       "); the journal's folder must exist and be writable by the account "
                       "ferry runs as");
  if (!tryLock(h)) {
    ::CloseHandle(h);
    throw JournalBusy(busyMessage(journal, writtenPid(lock_file), command));
  }
  const std::string text = std::to_string(::GetCurrentProcessId()) + "\n";
  DWORD written = 0;
  ::SetFilePointer(h, 0, nullptr, FILE_BEGIN);
  ::SetEndOfFile(h);
  ::WriteFile(h, text.data(), static_cast<DWORD>(text.size()), &written, nullptr);
  handle_ = h;
#else
  fd_ = ::open(lock_file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0)
    throw JournalError("journal " + journal + ": cannot open its lock file " + lock_file + " (" +
                       std::strerror(errno) +
                       "); the journal's directory must exist and be writable by the user ferry "
                       "runs as");
  flock lock = wholeFile(F_WRLCK);
  if (::fcntl(fd_, F_SETLK, &lock) != 0) {
    ::close(fd_);
    fd_ = -1;
    throw JournalBusy(busyMessage(journal, fileLockHolder(journal), command));
  }
  // The PID in the file is for people and for a holder in another PID namespace.
  const std::string text = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, text.data(), text.size(), 0) < 0) {
    // The lock is what counts; the text is informative.
  }
#endif
}

std::unique_ptr<Journal> JournalLock::open() {
  if (isPostgresJournal(journal_)) {
    if (!owned_) throw std::logic_error("JournalLock::open() called twice");
    return std::move(owned_);
  }
  return openSqliteJournal(journal_);
}

JournalLock::~JournalLock() {
#ifdef _WIN32
  if (handle_ != nullptr) ::CloseHandle(static_cast<HANDLE>(handle_));
#else
  if (fd_ >= 0) ::close(fd_);
#endif
}

}  // namespace ferry::core
