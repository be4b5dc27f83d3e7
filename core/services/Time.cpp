#include "services/Time.h"

#include <ferry/instant.hpp>

#include <cctype>
#include <chrono>

namespace ferry::core {

// Versions are compared by the rule plugins see in the SDK (<ferry/instant.hpp>): one parser for
// the host and every plugin.
std::optional<int64_t> parseInstantNs(std::string_view text) { return instant::parseNs(text); }

std::string formatInstantMs(int64_t ns) { return instant::formatMs(ns); }

int64_t nowNs() { return instant::nowNs(); }

int64_t steadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

std::optional<int64_t> parseDurationMs(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  if (s.empty()) return std::nullopt;
  size_t pos = 0;
  int64_t value = 0;
  while (pos < s.size() && std::isdigit(static_cast<unsigned char>(s[pos]))) {
    if (value > (INT64_MAX / 10 - 9)) return std::nullopt;
    value = value * 10 + (s[pos] - '0');
    ++pos;
  }
  if (pos == 0) return std::nullopt;
  std::string_view unit = s.substr(pos);
  int64_t factor;
  if (unit.empty() || unit == "s") factor = 1000;
  else if (unit == "ms") factor = 1;
  else if (unit == "m" || unit == "min") factor = 60000;
  else if (unit == "h") factor = 3600000;
  else if (unit == "d") factor = 86400000;
  else return std::nullopt;
  if (value > INT64_MAX / factor) return std::nullopt;
  return value * factor;
}

std::string formatDurationMs(int64_t ms) {
  if (ms % 1000 != 0 || ms == 0) return std::to_string(ms) + "ms";
  int64_t s = ms / 1000;
  if (s % 86400 == 0) return std::to_string(s / 86400) + "d";
  if (s % 3600 == 0) return std::to_string(s / 3600) + "h";
  if (s % 60 == 0) return std::to_string(s / 60) + "m";
  return std::to_string(s) + "s";
}

}  // namespace ferry::core
