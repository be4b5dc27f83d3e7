// The journal: the host's durable state, in three parts so that a backend can be written (and
// tested) one part at a time:
//
//   EventLog      (EventLog.h)      events with their sequence; per source its cursor and the
//                                   latest version of each key
//   SinkLedger    (SinkLedger.h)    per sink its offset, delivery records, dead letters and their
//                                   replays; per source the delivered() hook's progress
//   InstanceState (InstanceState.h) plugin state and each instance's run-time status
//   Controls      (Controls.h)      operators' requests, sink pauses, source origins, activity
//
// Which parts must share a backend: the SinkLedger's advanceSink() copies events out of the
// EventLog in its own transaction, so those two live in ONE database and a backend runs
// advanceSink as one transaction over both. InstanceState shares no transaction with either.
// Callers take the part they use (CursorEngine an EventLog, a sink runner an EventLog and a
// SinkLedger, the host API's state calls an InstanceState); only the places that open the journal
// hold the whole of it.
//
// SQLite is the first backend (SqliteJournal: every part over one file); PostgreSQL the second
// (PostgresJournal: every part in one database, for hosts sharing a journal).
//
// Threading: every method of every part is safe to call from any thread.
// Errors: storage failures throw JournalError; callers on the event path treat it as transient.
#pragma once

#include <memory>
#include <string>

#include "journal/Controls.h"
#include "journal/EventLog.h"
#include "journal/InstanceState.h"
#include "journal/JournalError.h"
#include "journal/SinkLedger.h"

namespace ferry::core {

// The three parts of one journal. The references stay valid as long as the Journal lives; the
// event log and the sink ledger returned by one Journal always share a database (see above).
class Journal {
 public:
  virtual ~Journal() = default;

  virtual EventLog& events() = 0;
  virtual SinkLedger& ledger() = 0;
  virtual InstanceState& state() = 0;
  // Shares the database of the event log and the sink ledger (a rewind moves a sink's offset).
  virtual Controls& controls() = 0;
  // The journal's identity, made when it was created and never changed: "<UTC time of creation,
  // YYYYMMDDThhmmssZ>-<16 hex digits>". Sinks tie what they keep about deliveries to it, so that
  // a new journal (whose sequences start again at 1) can never overwrite or skip what an old one
  // delivered.
  virtual const std::string& identity() const = 0;
};

// Opens (creating when missing) the SQLite journal at `path`: WAL, synchronous=FULL, schema
// created or migrated. Throws JournalError naming the path when it cannot be opened, and for a
// file that is no ferry journal (empty, or another program's database): it is never taken for a
// new journal, which would fetch and deliver everything again.
std::unique_ptr<Journal> openSqliteJournal(const std::string& path);

// Whether `journal` ([host] journal) names a PostgreSQL journal: postgresql://… or postgres://….
bool isPostgresJournal(const std::string& journal);

// `journal` as it may be shown: a URL's password replaced by "***"; a path unchanged.
std::string journalDisplayName(const std::string& journal);

// Opens (creating when missing) the journal `journal` names ([host] journal): a PostgreSQL
// journal for a postgresql:// URL (PostgresJournal.h; `host_id` names this host there), else the
// SQLite journal at that path. The Windows build has no PostgreSQL journal (no libpq): a URL
// there throws JournalError.
std::unique_ptr<Journal> openJournal(const std::string& journal, const std::string& host_id);

}  // namespace ferry::core
