#include <ferry/common/StateMap.h>

#include <string_view>

namespace ferry::common {

namespace {

// A state value: "<number>\n" then entries "<key length>:<key><value length>:<value>".
void appendEntry(std::string& out, const std::string& key, const std::string& value) {
  out += std::to_string(key.size());
  out += ':';
  out += key;
  out += std::to_string(value.size());
  out += ':';
  out += value;
}

bool readLength(std::string_view& in, size_t& n) {
  const size_t colon = in.find(':');
  if (colon == std::string_view::npos || colon == 0) return false;
  n = 0;
  for (char c : in.substr(0, colon)) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + static_cast<size_t>(c - '0');
  }
  in.remove_prefix(colon + 1);
  return n <= in.size();
}

// The number in the value's first line, or -1 for a value that is not ours.
int64_t number(std::string_view& in) {
  const size_t eol = in.find('\n');
  if (eol == std::string_view::npos || eol == 0) return -1;
  int64_t n = 0;
  for (char c : in.substr(0, eol)) {
    if (c < '0' || c > '9') return -1;
    n = n * 10 + (c - '0');
  }
  in.remove_prefix(eol + 1);
  return n;
}

}  // namespace

StateMap::StateMap(ferry::Host host, std::string prefix) : host_(host), prefix_(std::move(prefix)) {
  auto apply = [&](std::string_view in) {
    size_t k = 0, v = 0;
    while (!in.empty()) {
      if (!readLength(in, k)) return;
      const std::string key(in.substr(0, k));
      in.remove_prefix(k);
      if (!readLength(in, v)) return;
      map_[key] = std::string(in.substr(0, v));
      in.remove_prefix(v);
    }
  };
  if (auto snapshot = host_.state(prefix_ + "snapshot")) {
    std::string_view in = *snapshot;
    const int64_t n = number(in);
    if (n >= 0) {
      snapshot_ = n;
      apply(in);
    }
  }
  // Segments after the snapshot, in order, until one is missing or left from an older round.
  for (next_ = snapshot_;; ++next_) {
    auto segment = host_.state(prefix_ + std::to_string(next_ % kSegments));
    if (!segment) break;
    std::string_view in = *segment;
    if (number(in) != next_) break;
    apply(in);
  }
}

const std::string* StateMap::find(const std::string& key) const {
  auto it = map_.find(key);
  return it == map_.end() ? nullptr : &it->second;
}

void StateMap::put(const std::string& key, std::string value) {
  auto [it, inserted] = map_.insert_or_assign(key, std::move(value));
  dirty_[key] = &it->second;
}

void StateMap::flush() {
  if (dirty_.empty()) return;
  std::string out;
  if (next_ - snapshot_ >= kSegments) {
    // Every slot is taken: the whole map as the snapshot; the segments up to here are covered.
    out = std::to_string(next_) + "\n";
    for (const auto& [key, value] : map_) appendEntry(out, key, value);
    host_.setState(prefix_ + "snapshot", out);
    snapshot_ = next_;
  } else {
    out = std::to_string(next_) + "\n";
    for (const auto& [key, value] : dirty_) appendEntry(out, key, *value);
    host_.setState(prefix_ + std::to_string(next_ % kSegments), out);
    ++next_;
  }
  dirty_.clear();
}

}  // namespace ferry::common
