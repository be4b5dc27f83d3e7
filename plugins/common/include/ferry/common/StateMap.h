// A map from keys to short values kept in an instance's durable plugin state (the host's
// journal), written in batches rather than one state write per key.
//
// put() changes the map in memory; flush() writes what changed since the last flush as one state
// value (a segment). Every kSegments flushes the whole map is written as one snapshot instead,
// which makes the older segments obsolete: a map of n keys costs one state write per flush and
// n/kSegments entries per flush on average, and loading reads at most kSegments + 1 values.
// Each state write is atomic; a crash (kill -9) loses only the puts not flushed yet, never
// leaves a half-written map. Not thread-safe (one plugin instance, never called concurrently).
#pragma once

#include <ferry/plugin.hpp>

#include <cstdint>
#include <string>
#include <unordered_map>

namespace ferry::common {

class StateMap {
 public:
  // Loads the map kept under state keys starting with `prefix`.
  StateMap(ferry::Host host, std::string prefix);

  // The value of `key`, or nullptr.
  const std::string* find(const std::string& key) const;
  void put(const std::string& key, std::string value);
  // Puts not flushed yet.
  size_t pending() const { return dirty_.size(); }
  // Writes the pending puts (one state write); nothing when there are none.
  void flush();

  static constexpr int64_t kSegments = 64;

 private:
  ferry::Host host_;
  std::string prefix_;
  std::unordered_map<std::string, std::string> map_;
  std::unordered_map<std::string, const std::string*> dirty_;  // key -> value in map_
  int64_t snapshot_ = 0;  // number of the first segment after the snapshot
  int64_t next_ = 0;      // number of the next segment to write
};

}  // namespace ferry::common
