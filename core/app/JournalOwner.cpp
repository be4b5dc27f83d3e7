#include "app/JournalOwner.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <thread>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "journal/JournalError.h"
#include "journal/PostgresJournal.h"

namespace ferry::core {
namespace {

namespace fs = std::filesystem;

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

}  // namespace

std::string lockFileOf(const std::string& journal) { return journal + ".lock"; }

std::optional<pid_t> journalOwner(const std::string& journal) {
  if (isPostgresJournal(journal)) {
    // "ferry/<host_id>/<pid>"
    const auto owner = PostgresJournal::ownerOf(journal);
    if (!owner) return std::nullopt;
    return static_cast<pid_t>(std::atol(owner->substr(owner->rfind('/') + 1).c_str()));
  }
  const std::string lock_file = lockFileOf(journal);
  const int fd = ::open(lock_file.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;  // never owned since the journal exists (or unreadable)
  auto holder = holderOf(fd, lock_file);
  ::close(fd);
  return holder;
}

bool journalExists(const std::string& journal) {
  if (isPostgresJournal(journal)) return PostgresJournal::exists(journal);
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
}

namespace {

std::string busyFix(const std::string& command) {
  const bool run = command.rfind("run", 0) == 0;
  return run ? "one ferry per journal: stop it first (e.g. systemctl stop ferry), or give this "
               "config its own journal"
             : "`ferry " + command +
                   "` writes the journal and would be a second writer: stop it first (e.g. "
                   "systemctl stop ferry), run the command again, then start it again";
}

}  // namespace

JournalLock::JournalLock(const std::string& journal, const std::string& command,
                         const std::string& host_id)
    : journal_(journal) {
  if (isPostgresJournal(journal)) {
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
    return;
  }
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
    const std::string pid = holder ? std::to_string(*holder) : "unknown";
    throw JournalBusy("journal " + journal + " is in use by another ferry (PID " + pid + ", see " +
                      lock_file + "); " + busyFix(command));
  }
  // The PID in the file is for people and for a holder in another PID namespace.
  const std::string text = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, text.data(), text.size(), 0) < 0) {
    // The lock is what counts; the text is informative.
  }
}

std::unique_ptr<Journal> JournalLock::open() {
  if (isPostgresJournal(journal_)) {
    if (!owned_) throw std::logic_error("JournalLock::open() called twice");
    return std::move(owned_);
  }
  return openSqliteJournal(journal_);
}

JournalLock::~JournalLock() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace ferry::core
