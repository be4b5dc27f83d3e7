#include "journal/Journal.h"

#include "journal/JournalError.h"
#if FERRY_POSTGRES_JOURNAL
#include "journal/PostgresJournal.h"
#endif

namespace ferry::core {

bool isPostgresJournal(const std::string& journal) {
  return journal.rfind("postgresql://", 0) == 0 || journal.rfind("postgres://", 0) == 0;
}

std::string journalDisplayName(const std::string& journal) {
  if (!isPostgresJournal(journal)) return journal;
  const size_t start = journal.find("://") + 3;
  const size_t end = journal.find_first_of("/?#", start);
  const size_t at = journal.substr(0, end).rfind('@');
  if (at == std::string::npos || at < start) return journal;
  const size_t colon = journal.find(':', start);
  if (colon == std::string::npos || colon > at) return journal;
  return journal.substr(0, colon + 1) + "***" + journal.substr(at);
}

std::unique_ptr<Journal> openJournal(const std::string& journal, const std::string& host_id) {
  if (isPostgresJournal(journal)) {
#if FERRY_POSTGRES_JOURNAL
    return std::make_unique<PostgresJournal>(journal, host_id);
#else
    (void)host_id;
    throw JournalError("journal " + journalDisplayName(journal) +
                       ": this ferry is built without the PostgreSQL journal (the Windows build "
                       "has no libpq); use a SQLite journal file");
#endif
  }
  return openSqliteJournal(journal);
}

}  // namespace ferry::core
