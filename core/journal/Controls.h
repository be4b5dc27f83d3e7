// Operator controls, the fourth part of the journal (Journal.h): the requests an operator's
// command leaves for the journal's owner (`ferry sinks rewind …` beside a running ferry), whether
// a sink is paused, what each source was first started from, each instance's activity (last
// poll, last success, counts, progress), and the positions an operator moves (a sink's offset, a
// retained range, a dead letter dropped).
//
// Why requests go through the journal: one process owns the journal (JournalOwner.h) and is the
// only one that moves positions. A command run beside it only inserts a request; the owner picks
// it up within a second, carries it out at a safe point of the runner concerned (between two
// batches, between two poll cycles) and writes the answer back, which the command prints. With no
// owner, the command takes the ownership itself and carries out the request the same way.
//
// Threading: every method is safe to call from any thread; implementations serialise writes.
// Errors: storage failures throw JournalError (nothing of the failed call is stored).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "journal/JournalError.h"

namespace ferry::core {

// An operator's request, as stored.
struct CommandRequest {
  int64_t id = 0;
  std::string action;    // "sink.rewind", "source.backfill", …
  std::string target;    // the sink or source name ("" when none)
  std::string argument;  // JSON object text with the action's parameters
  std::string state;     // "pending" | "done" | "failed"
  std::string result;    // what the owner answered
  int64_t requested_at_ms = 0;
};

// What a source or sink did lately (`ferry status`).
struct InstanceActivity {
  std::string name;
  std::string kind;            // "source" | "sink"
  int64_t last_attempt_ms = 0; // last poll cycle (source) or write (sink) that started
  int64_t last_success_ms = 0; // last one that succeeded
  int64_t events_total = 0;    // events journalled (source) or written (sink), ever
  std::string progress;        // a catch-up under way: pages, events, position, rate; "" if none
};

class Controls {
 public:
  virtual ~Controls() = default;

  // --- requests ------------------------------------------------------------------------------

  // Stores a pending request; returns its id.
  virtual int64_t submitCommand(const std::string& action, const std::string& target,
                                const std::string& argument) = 0;
  // The pending requests, oldest first.
  virtual std::vector<CommandRequest> pendingCommands() = 0;
  // One request, nullopt when unknown.
  virtual std::optional<CommandRequest> command(int64_t id) = 0;
  // Answers a request: `ok` (done) or not (failed), with the text the command prints.
  virtual void finishCommand(int64_t id, bool ok, const std::string& result) = 0;

  // --- sinks ---------------------------------------------------------------------------------

  virtual bool sinkPaused(const std::string& sink) = 0;
  virtual void setSinkPaused(const std::string& sink, bool paused) = 0;
  // Every sink with an offset or a pause recorded, by name: the sinks that hold retention even
  // when the config no longer runs them.
  virtual std::vector<std::string> knownSinks() = 0;
  // Moves the sink's offset (a rewind); no delivery record.
  virtual void setSinkOffset(const std::string& sink, int64_t offset) = 0;
  // Removes the sink's offset and pause: it no longer holds retention.
  virtual void forgetSink(const std::string& sink) = 0;

  // --- retained range ------------------------------------------------------------------------

  // The lowest retained sequence, 0 when no event is retained.
  virtual int64_t oldestSequence() = 0;
  // The lowest retained sequence fetched at or after `fetched_at_ms`, 0 when none.
  virtual int64_t firstSequenceFetchedFrom(int64_t fetched_at_ms) = 0;
  // When the event `sequence` was fetched, nullopt when it is not retained.
  virtual std::optional<int64_t> fetchedAt(int64_t sequence) = 0;

  // --- dead letters --------------------------------------------------------------------------

  // Deletes the dead letters `ids`; returns how many existed.
  virtual int64_t dropDeadLetters(const std::vector<int64_t>& ids) = 0;

  // --- sources -------------------------------------------------------------------------------

  // The start_from a source's first cursor came from (or the last backfill's), nullopt before.
  virtual std::optional<std::string> sourceOrigin(const std::string& source) = 0;
  virtual void setSourceOrigin(const std::string& source, const std::string& start_from) = 0;
  // Many at once (source, start_from), as one transaction where the journal can: the first start
  // of thousands of new sources would otherwise cost one commit (one fsync) each.
  virtual void setSourceOrigins(
      const std::vector<std::pair<std::string, std::string>>& origins) = 0;

  // --- activity ------------------------------------------------------------------------------

  // Replaces the activity of `activity.name`.
  virtual void recordActivity(const InstanceActivity& activity) = 0;
  virtual std::vector<InstanceActivity> activities() = 0;
};

}  // namespace ferry::core
