// Instants and durations as the host handles them: versions are compared as instants
// (nanoseconds since the Unix epoch), cursors travel as UTC text with milliseconds.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ferry::core {

// Parses an ISO-8601 instant that carries a zone: "2025-04-23T10:01:53.812Z",
// "2025-04-23T12:01:53+02:00", "2025-04-23 10:01:53.812345Z" (space for 'T', any number of
// fraction digits, "+hhmm" too). A naive time, a bad calendar date or trailing text gives nullopt.
std::optional<int64_t> parseInstantNs(std::string_view text);

// UTC "YYYY-MM-DDThh:mm:ss.sssZ", rounded down to the millisecond.
std::string formatInstantMs(int64_t ns);

// Wall clock, nanoseconds since the epoch.
int64_t nowNs();
inline int64_t nowMs() { return nowNs() / 1000000; }

// Monotonic clock, milliseconds from an arbitrary start: for intervals, deadlines and timeouts
// (never goes back when the wall clock is set).
int64_t steadyMs();

// Parses "250ms", "20s", "5m", "1h", "2d", or bare seconds ("30"). Negative or junk: nullopt.
std::optional<int64_t> parseDurationMs(std::string_view text);

// The largest whole unit that divides it exactly ("2d", "65m", "20s", "250ms"), so that
// parseDurationMs reads it back.
std::string formatDurationMs(int64_t ms);

}  // namespace ferry::core
