// The event log, the first part of the journal (Journal.h): events with their sequence, and per
// source its cursor and the latest version of each key. Sources write it (CursorEngine), sinks
// and the delivered hook read it, retention trims it, `ferry trace` and `ferry status` look into
// it.
//
// Threading: every method is safe to call from any thread; implementations serialise writes.
// Errors: storage failures throw JournalError (nothing of the failed call is stored).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "journal/JournalError.h"

namespace ferry::core {

// A change as the source runner hands it to the journal, already deduplicated.
struct NewEvent {
  std::string entity;
  std::string key;
  std::string version;     // exact text as received
  int64_t version_ns = 0;  // the same, as an instant
  std::string previous;    // "" for a key never seen
  std::string body;
  bool echo = false;
  std::string meta;  // the source's metadata about the event: a JSON object, or ""
};

// A journalled change.
struct JournalEvent {
  int64_t sequence = 0;
  std::string source;
  std::string entity;
  std::string key;
  std::string version;
  std::string previous;
  std::string body;
  bool echo = false;
  int64_t fetched_at_ms = 0;
  std::string meta;  // as NewEvent::meta
  // "source/entity/key/version"
  std::string idempotencyKey() const { return source + "/" + entity + "/" + key + "/" + version; }
};

// Where a source stands: ask from `since`, having taken `offset` items of that instant.
struct Cursor {
  std::string since;  // UTC "YYYY-MM-DDThh:mm:ss.sssZ" or the exact version text it came from
  int64_t since_ns = 0;
  int64_t offset = 0;
};

// An item a source could not hand over as an event (not an object, an id of the wrong type, a
// key with a control character, a version that is no instant, …), set aside so that the source
// goes on: a source dead letter.
struct SetAsideItem {
  std::string fingerprint;  // the same for every fetch of the same text (setAsideFingerprint)
  std::string entity, key, version;  // as the plugin emitted them, "" when it could not read them
  std::string raw;     // the item's text as received
  std::string reason;  // printable
  int64_t since_ms = 0;  // the instant the page holding it was asked from (a replay reads again
                         // from there)
};

// A source dead letter as the journal keeps it.
struct SourceDeadLetter {
  int64_t id = 0;
  std::string source;
  SetAsideItem item;
  int64_t set_aside_at_ms = 0;
};

// The fingerprint of an item's text: 16 hex digits of a 64-bit FNV-1a over entity, key, version
// and raw text (each followed by a 0x1f byte). Stored in the journal: changing it needs a
// migration.
std::string setAsideFingerprint(std::string_view entity, std::string_view key,
                                std::string_view version, std::string_view raw);

// A key to look up; the text belongs to the caller and must outlive the call.
struct KeyRef {
  std::string_view entity;
  std::string_view key;
};

struct VersionSeen {
  std::string version;
  int64_t version_ns = 0;
};

// Transactions: commit() and resetCursor() each change events, latest versions and cursor in ONE
// transaction of their own; nothing else in this part needs more than one statement's
// consistency. The sink ledger (SinkLedger.h) copies events into dead letters inside its own
// transaction, so a backend keeps both parts in one database.
class EventLog {
 public:
  virtual ~EventLog() = default;

  // --- written by sources --------------------------------------------------------------------

  // The stored cursor of `source`, nullopt before its first commit.
  virtual std::optional<Cursor> cursor(const std::string& source) = 0;

  // The latest version seen for each of `keys`, in the same order (nullopt: never seen, or
  // forgotten by resetCursor). Sees whole commits only. Versions outlive their events: purge()
  // keeps them.
  virtual std::vector<std::optional<VersionSeen>> latestVersions(
      const std::string& source, const std::vector<KeyRef>& keys) = 0;

  // In ONE transaction: appends `events` in order (assigning increasing sequences), records each
  // one's version as the latest of its key, and stores `cursor`. Returns the last sequence
  // assigned, or 0 when `events` is empty. Sequences are never reused, not even after purge().
  // An event with an empty source, entity, key or version, or a cursor with a negative offset, is
  // refused: JournalError, and nothing of the call is stored.
  // Items set aside on the committed pages are kept in the same transaction (an item already
  // kept for the source, by fingerprint, is not kept twice), so the cursor never passes an
  // unreadable item that was not recorded.
  virtual int64_t commit(const std::string& source, const std::vector<NewEvent>& events,
                         const Cursor& cursor, const std::vector<SetAsideItem>& set_aside) = 0;
  int64_t commit(const std::string& source, const std::vector<NewEvent>& events,
                 const Cursor& cursor) {
    return commit(source, events, cursor, {});
  }

  // --- source dead letters -------------------------------------------------------------------

  // Whether `source` already keeps an item with this fingerprint.
  virtual bool setAsideKnown(const std::string& source, const std::string& fingerprint) = 0;
  // Every source dead letter, or those of one source, oldest first.
  virtual std::vector<SourceDeadLetter> sourceDeadLetters(
      const std::optional<std::string>& source) = 0;
  // In ONE transaction: removes the dead letters `ids` of `source` (all of them when `ids` is
  // empty) and moves the source's cursor back (never forward) to the earliest instant their pages
  // were asked from, so that the next cycle reads them again: read well now, they become events;
  // still unreadable, they are set aside again. Returns how many were removed.
  virtual int64_t replaySetAside(const std::string& source, const std::vector<int64_t>& ids) = 0;
  // Removes source dead letters for good; returns how many.
  virtual int64_t dropSetAside(const std::vector<int64_t>& ids) = 0;

  // Operator actions. resetCursor sets the cursor (a backfill moves it back); with
  // forget_versions the latest-version table of the source is cleared too, so that everything
  // fetched again is delivered again (with the same idempotency keys). One transaction.
  virtual void resetCursor(const std::string& source, const Cursor& cursor,
                           bool forget_versions) = 0;

  // All cursors (for `ferry status`).
  virtual std::vector<std::pair<std::string, Cursor>> cursors() = 0;

  // --- read by sinks and the delivered hook --------------------------------------------------

  // Events with sequence > after, from `sources` (empty: every source), ascending, at most
  // `limit`.
  virtual std::vector<JournalEvent> readAfter(int64_t after,
                                              const std::vector<std::string>& sources,
                                              size_t limit) = 0;

  // The highest sequence ever assigned (0 for an empty journal).
  virtual int64_t lastSequence() = 0;

  // How many events from `sources` (empty: all) lie after `after`.
  virtual int64_t countAfter(int64_t after, const std::vector<std::string>& sources) = 0;

  // --- retention and audit -------------------------------------------------------------------

  // Deletes the oldest events: those with sequence <= `up_to_sequence`, up to the first one
  // fetched at or after `fetched_before_ms` (events are only ever deleted oldest first, also when
  // the clock went back). Returns how many were deleted. The latest versions of their keys stay
  // (dedupe needs them) and dead letters keep their copies (SinkLedger). Not one transaction: a
  // large purge commits in chunks, oldest first, each whole.
  virtual int64_t purge(int64_t up_to_sequence, int64_t fetched_before_ms) = 0;

  // The retained events whose key is `key` (any source and entity), oldest first (`ferry
  // trace`). Scans the events table: an operator's question, not a hot path.
  virtual std::vector<JournalEvent> eventsOfKey(const std::string& key) = 0;
};

}  // namespace ferry::core
