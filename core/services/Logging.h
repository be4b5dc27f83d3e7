// The host's log: the Poco logger "ferry", one line per message, to standard error or a file.
//
//   text:  2026-07-05T12:00:00.000Z WARN source venue-berlin: HTTP 503; retry 1 in 1s
//   json:  {"time":"2026-07-05T12:00:00.000Z","level":"WARN","message":"source …"}
//
// Levels are DEBUG, INFO, NOTICE, WARN, ERROR, CRIT, FATAL. A message is made one printable
// line (services/Text.h: control characters and newlines cannot split or forge lines).
// When standard error is the systemd journal (JOURNAL_STREAM names its device and inode, as
// systemd sets it for a unit's stderr), each line starts with its sd-daemon priority prefix
// (`<3>` error, `<4>` warning, `<6>` info, `<7>` debug) so that journald records the priority
// (`journalctl -p warning` finds them), and the text line drops its timestamp (journald stamps
// every entry).
#pragma once

#include <string>

namespace Poco {
class Message;
}

namespace ferry::core {

struct LogSettings {
  std::string level = "info";    // debug | info | warning | error
  std::string file;              // "" = standard error
  std::string format = "text";   // text | json
};

// Points the logger "ferry" at `settings`. Opens the file at once (appending, created 0640 when
// missing); throws std::runtime_error naming the file when it cannot be opened.
void configureLogging(const LogSettings& settings);

// Opens the log file again under its name, for log rotation: after logrotate moved the file
// away, the next lines go to a new file of that name. Nothing to do when logging to standard
// error. Safe from any thread (a signal handler must not call it: a signal-watching thread may).
// On failure the old file stays in use and std::runtime_error says why.
void reopenLogFile();

// One formatted line, with its newline: for the channel, and for the tests.
std::string formatLogLine(const Poco::Message& message, bool json, bool journal_prefix);

// True when standard error is the systemd journal's stream (JOURNAL_STREAM matches it).
bool stderrIsJournal();

}  // namespace ferry::core
