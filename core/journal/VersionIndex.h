// Where the latest version of each key lives, kept in memory by the SQLite journal: a 64-bit hash
// of (source, entity, key) -> the sequence of the event that carries the key's latest version,
// 16 bytes a slot. The index is a hint that the journal verifies: on a hit it reads that event
// and compares its source, entity and key, and when they differ (another key with the same
// hash) or the slot says kInTable, the key's latest version is in the journal's latest_versions
// table. A miss is final: every key the journal knows has its hash in the index.
//
// Threading: none; the journal guards it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace ferry::core {

// The hash of a key. It is stored in the journal (events.key_hash), so the default is part of the
// file format: changing it needs a schema migration that rewrites that column.
using KeyHasher = uint64_t (*)(std::string_view source, std::string_view entity,
                               std::string_view key);

// FNV-1a over source, entity and key (each followed by a 0x1f byte), then MurmurHash3's final
// mix so that every bit of the result depends on every byte.
uint64_t defaultKeyHash(std::string_view source, std::string_view entity, std::string_view key);

class VersionIndex {
 public:
  // The sequence a slot holds when the key's latest version is in the latest_versions table.
  static constexpr int64_t kInTable = 0;

  // The sequence stored for `hash`, nullopt when no key with this hash is known.
  std::optional<int64_t> find(uint64_t hash) const;
  // Stores `sequence` for `hash`, replacing what was there.
  void set(uint64_t hash, int64_t sequence);
  void clear();

  size_t size() const { return size_; }
  // The memory the slots take.
  size_t bytes() const;

  // The hash as the index keeps it: 0 marks an empty slot, so a key whose hash is 0 is kept as 1.
  // Whoever compares hashes alongside the index compares these.
  static uint64_t normalized(uint64_t hash) { return hash == 0 ? 1 : hash; }

 private:
  struct Slot {
    uint64_t hash = 0;  // normalized(); 0: empty
    int64_t sequence = 0;
  };
  // The slots are split into segments by the hash's top byte, each growing on its own: growing
  // one copies 1/256 of the index, so memory never holds two copies of the whole of it.
  struct Segment {
    std::vector<Slot> slots;
    size_t used = 0;
  };
  static constexpr size_t kSegments = 256;

  static size_t home(uint64_t hash, size_t capacity);
  static void resize(Segment& segment, size_t capacity);

  std::array<Segment, kSegments> segments_;
  size_t size_ = 0;
};

}  // namespace ferry::core
