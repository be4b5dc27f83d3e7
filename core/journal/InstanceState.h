// Instance state, the third part of the journal (Journal.h): each plugin instance's durable
// private state (the host API's state_get/state_set) and each source's and sink's run-time
// status, so that `ferry status` and /metrics (another process, or another thread) can show it.
//
// Transactions: every method is one statement; nothing here is read or written together with
// the event log or the sink ledger, so this part needs no transaction shared with them.
// Threading: every method is safe to call from any thread; implementations serialise writes.
// Errors: storage failures throw JournalError (nothing of the failed call is stored).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "journal/JournalError.h"

namespace ferry::core {

// Run-time state of a source or sink, so that `ferry status` (another process) can show it.
struct InstanceStatus {
  std::string name;
  std::string kind;     // "source" | "sink"
  std::string state;    // "running" | "retrying" | "stopped" | "idle"
  std::string message;  // last error, "" when fine
  int64_t updated_at_ms = 0;
  int64_t retry_attempt = 0;
  int64_t next_attempt_at_ms = 0;
};

class InstanceState {
 public:
  virtual ~InstanceState() = default;

  // The bytes stored under `key` for `instance` (may hold NULs; "" is a value, distinct from
  // absent), nullopt when none.
  virtual std::optional<std::string> stateGet(const std::string& instance,
                                              const std::string& key) = 0;
  // Stores `value` under `key` for `instance`; nullopt deletes it.
  virtual void stateSet(const std::string& instance, const std::string& key,
                        const std::optional<std::string>& value) = 0;

  // Records the status of `status.name` (one row per name, replaced).
  virtual void setStatus(const InstanceStatus& status) = 0;
  // Every recorded status, by name.
  virtual std::vector<InstanceStatus> statuses() = 0;
};

}  // namespace ferry::core
