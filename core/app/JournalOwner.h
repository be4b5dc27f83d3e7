// One owner per journal. `ferry run` and the commands that write the journal hold an exclusive
// lock (fcntl F_SETLK) on `<journal>.lock` for as long as they run; the file holds the owner's
// PID. On Windows the lock is LockFileEx on a byte beyond the PID text (so that the text stays
// readable). The OS releases the lock when the process ends, however it ends (kill -9 too), so a
// file left behind never blocks anybody. Read-only commands only probe the lock (F_GETLK) and never
// create the file.
//
// A PostgreSQL journal ([host] journal = postgresql://…) has no lock file: each ferry's journal
// connection holds a session-level advisory lock for its [host] host_id (PostgresJournal::own()),
// which PostgreSQL releases when the connection ends, however the process ends; its
// application_name ("ferry/<host_id>/<pid>") names the holder. So one ferry runs per host_id, and
// several host_ids share the journal, splitting its sources and sinks by leases (LeaseKeeper.h).
#pragma once

#include <sys/types.h>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "journal/Journal.h"

namespace ferry::core {

// Another process owns the journal: `ferry` exits with 75 (EX_TEMPFAIL).
class JournalBusy : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Root about to write a journal that belongs to another user: `ferry` exits with 77 (EX_NOPERM).
class JournalNotOurs : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// A read-only command found no journal: `ferry` exits with 66 (EX_NOINPUT).
class NoJournal : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// `<journal>.lock`
std::string lockFileOf(const std::string& journal);

// The PID of the process owning `journal`, nullopt when none does (PostgreSQL: of a ferry running
// on it as any host_id, on whichever machine). Creates nothing.
std::optional<pid_t> journalOwner(const std::string& journal);

// Whether the journal exists (the file; PostgreSQL: the journal's tables). Creates nothing.
bool journalExists(const std::string& journal);

// Throws NoJournal ("no journal yet at <path>") when the journal does not exist.
void requireJournal(const std::string& journal);

// Throws JournalNotOurs when running as root on a journal (or, before the first run, a journal
// directory) that belongs to another user: files root creates there (the journal, its -wal and
// -shm, the lock file) would lock the service out. `command` goes into the fix it names.
void refuseRootOnOthersJournal(const std::string& journal, const std::string& command);

// Makes this process the owner of `journal` until destruction. `command` ("run", "sinks pause
// out") goes into the messages. Throws JournalNotOurs as refuseRootOnOthersJournal() does, and
// JournalBusy, naming the owner's PID, when another process owns the journal. A PostgreSQL
// journal is opened (created when missing) here, as its connection holds the lock; `host_id`
// names this host there.
class JournalLock {
 public:
  JournalLock(const std::string& journal, const std::string& command,
              const std::string& host_id = "");
  ~JournalLock();
  JournalLock(const JournalLock&) = delete;
  JournalLock& operator=(const JournalLock&) = delete;

  // The owned journal, opened (created when missing); call once. A PostgreSQL journal takes the
  // lock with it: it stays owned as long as the returned journal lives.
  std::unique_ptr<Journal> open();

 private:
  std::string journal_;
#ifdef _WIN32
  void* handle_ = nullptr;  // the lock file, a byte beyond its text locked with LockFileEx
#else
  int fd_ = -1;
#endif
  std::unique_ptr<Journal> owned_;  // PostgreSQL: the journal whose connection holds the lock
};

}  // namespace ferry::core
