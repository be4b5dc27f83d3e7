// Instants as Ferry compares them: the remote's version text ("2025-04-23T10:01:53.812Z", any
// `Z`/`±hh:mm` zone, any number of fraction digits) as nanoseconds since the Unix epoch, the same
// rule the host's cursor engine applies. Sinks use it to store a version next to a number that
// orders versions as instants (sink_sql's version guard).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ferry::instant {

// "YYYY-MM-DD(T| )hh:mm:ss[.fraction](Z|±hh:mm|±hhmm)" to nanoseconds since the epoch; nullopt
// when the text is no such instant or lies outside 1677-09-21 … 2262-04-11 (int64 nanoseconds).
// Digits past the ninth fraction digit are ignored.
std::optional<int64_t> parseNs(std::string_view text);

// Nanoseconds since the epoch as "YYYY-MM-DDThh:mm:ss.sssZ" (milliseconds, UTC).
std::string formatMs(int64_t ns);

// The current time as "YYYY-MM-DDThh:mm:ss.sssZ" (UTC, system clock).
std::string nowText();

}  // namespace ferry::instant
