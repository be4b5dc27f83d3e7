#include "journal/VersionIndex.h"

#include <algorithm>
#include <cstdio>

#include "journal/EventLog.h"

namespace ferry::core {
namespace {

// A segment grows by half once it is 80 % full: 20 to 30 bytes a key.
constexpr size_t kMinCapacity = 8;
constexpr size_t kMaxLoadPercent = 80;

void mix(uint64_t& hash, std::string_view text) {
  for (unsigned char c : text) hash = (hash ^ c) * 1099511628211ULL;
  hash = (hash ^ 0x1fu) * 1099511628211ULL;
}

}  // namespace

uint64_t defaultKeyHash(std::string_view source, std::string_view entity, std::string_view key) {
  uint64_t h = 14695981039346656037ULL;
  mix(h, source);
  mix(h, entity);
  mix(h, key);
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ULL;
  h ^= h >> 33;
  return h;
}

std::string setAsideFingerprint(std::string_view entity, std::string_view key,
                                std::string_view version, std::string_view raw) {
  uint64_t h = 14695981039346656037ULL;
  mix(h, entity);
  mix(h, key);
  mix(h, version);
  mix(h, raw);
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(h));
  return text;
}

size_t VersionIndex::home(uint64_t hash, size_t capacity) {
  // The top byte chose the segment; the rest, scaled to the capacity, chooses the slot.
  return static_cast<size_t>((static_cast<unsigned __int128>(hash << 8) * capacity) >> 64);
}

std::optional<int64_t> VersionIndex::find(uint64_t hash) const {
  hash = normalized(hash);
  const Segment& segment = segments_[hash >> 56];
  const size_t capacity = segment.slots.size();
  if (capacity == 0) return std::nullopt;
  for (size_t i = home(hash, capacity);; i = i + 1 == capacity ? 0 : i + 1) {
    const Slot& slot = segment.slots[i];
    if (slot.hash == hash) return slot.sequence;
    if (slot.hash == 0) return std::nullopt;
  }
}

void VersionIndex::set(uint64_t hash, int64_t sequence) {
  hash = normalized(hash);
  Segment& segment = segments_[hash >> 56];
  if ((segment.used + 1) * 100 > segment.slots.size() * kMaxLoadPercent)
    resize(segment, std::max(kMinCapacity, segment.slots.size() + segment.slots.size() / 2));
  const size_t capacity = segment.slots.size();
  for (size_t i = home(hash, capacity);; i = i + 1 == capacity ? 0 : i + 1) {
    Slot& slot = segment.slots[i];
    if (slot.hash == hash) {
      slot.sequence = sequence;
      return;
    }
    if (slot.hash == 0) {
      slot = Slot{hash, sequence};
      ++segment.used;
      ++size_;
      return;
    }
  }
}

void VersionIndex::resize(Segment& segment, size_t capacity) {
  std::vector<Slot> old;
  old.swap(segment.slots);
  segment.slots.assign(capacity, Slot{});
  for (const Slot& s : old) {
    if (s.hash == 0) continue;
    size_t i = home(s.hash, capacity);
    while (segment.slots[i].hash != 0) i = i + 1 == capacity ? 0 : i + 1;
    segment.slots[i] = s;
  }
}

void VersionIndex::clear() {
  for (Segment& segment : segments_) {
    std::vector<Slot>().swap(segment.slots);
    segment.used = 0;
  }
  size_ = 0;
}

size_t VersionIndex::bytes() const {
  size_t total = sizeof(*this);
  for (const Segment& segment : segments_) total += segment.slots.capacity() * sizeof(Slot);
  return total;
}

}  // namespace ferry::core
