// The configuration: one INI file.
//
//   [host]                      journal, plugin_dir, log_level, retention, retry and commit bounds
//   [source.<name>]             plugin = <plugin name>, enabled, the plugin's options
//   [sink.<name>]               plugin, enabled, from = <source names> (default: all), options
//
// `${system.env.NAME}` in a value is replaced by the environment variable (for secrets). Every
// option is validated against the plugin's declared table (plus the host's settings for its kind)
// before anything is created; every error names the file, the section and the key, and never
// shows the value of a secret option.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "config/OptionSpec.h"

namespace ferry::core {

class PluginRegistry;

// The fewest characters a secret may have (a secret option's value, a URL's password). A shorter
// one is refused by validate(): it is too short to be a real credential, and masking its text in
// every message would mangle unrelated words (a one-letter secret turns "expected" into
// "e***pected"). NIST SP 800-63B asks the same minimum of memorised secrets.
inline constexpr size_t kMinSecretLength = 8;

// A configuration problem: `ferry` exits with 78 (EX_CONFIG) and prints what().
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// The most `[host] workers`: with a few sinks, the admin endpoint and a journal commit in flight
// per worker, the whole process stays under 64 threads.
constexpr int64_t kMaxWorkers = 24;

// Settings of the [host] section, resolved.
struct HostSettings {
  std::string journal;       // absolute path of the SQLite journal, or a postgresql:// URL (a
                             // secret: show it with journalDisplayName())
  std::string host_id;       // this host's name in a shared (PostgreSQL) journal; default: hostname
  std::string plugin_dir;    // absolute; "" = the default next to the executable
  std::string log_level;     // debug|info|warning|error
  std::string log_file;      // "" = standard error
  std::string log_format;    // text|json
  int64_t retention_ms;      // events every sink has passed are removed after this age
  int64_t retry_initial_ms;  // first backoff step
  int64_t retry_max_ms;      // backoff cap
  int64_t commit_pages;      // pages per journal transaction while a source is behind
  int64_t commit_interval_ms;  // …or this long, whichever comes first
  int64_t workers;             // threads of the sources' scheduler (pipeline/Scheduler.h)
  std::string include;         // "" or the folder / pattern of more instance files
  std::string admin_listen;    // "host:port" of /healthz and /metrics; "" = off
  int64_t unhealthy_after_ms;  // /healthz: longest retry streak or time without success
  int64_t lease_time_ms = 30000;  // PostgreSQL journal: a lease's life unrenewed (LeaseKeeper.h)
};

// A [source.<name>] or [sink.<name>] section.
struct InstanceConfig {
  std::string kind;    // "source" | "sink"
  std::string name;    // <name> of the section
  std::string section; // "source.<name>"
  std::string file;    // absolute path of the file that holds the section
  std::string plugin;
  bool enabled = true;
  // Keys of the section other than plugin/enabled, values after ${system.env.*} expansion.
  std::map<std::string, std::string> raw;

  // Filled by validate(): every option of the effective table (the host's settings for this
  // kind, overridden by the plugin's declarations of the same name, then the plugin's own), in
  // that order, with the resolved value (nullopt: unset and no default).
  std::vector<std::pair<std::string, std::optional<std::string>>> resolved;
  // What every message of this instance is redacted of (services/Text.h redact()): the values
  // of secret options and their parts, and URL credentials in any option (see validate()).
  std::vector<std::string> secret_values;

  // Host settings, resolved by validate().
  // Sources:
  int64_t interval_ms = 60000;
  int64_t lookback_ms = 5000;
  std::string start_from;  // UTC instant text
  int64_t page_size = 100;
  int64_t set_aside_after = 3;  // fetches of a page before an unreadable item is set aside
  int64_t clock_skew_ms = 3600 * 1000;  // how far ahead of this host a version moves the cursor
  // Sinks:
  std::vector<std::string> from;  // source names; empty = every source
  int64_t batch_size = 100;
  int64_t batch_delay_ms = 1000;
  bool skip_echo = true;

  // The resolved value of an option, nullopt when unset.
  std::optional<std::string> value(const std::string& name) const;
};

struct Config {
  std::string file;  // absolute path of the INI file
  HostSettings host;
  std::vector<InstanceConfig> sources;  // enabled and disabled, in file order
  std::vector<InstanceConfig> sinks;
};

// The configuration a running ferry works with. A reload (SIGHUP) replaces it as a whole. Every
// version is kept for the life of the process (reloads are rare), so that a reference taken
// before a reload never dangles, also on another thread (the admin endpoint, a runner carrying
// out an operator's request).
class LiveConfig {
 public:
  explicit LiveConfig(Config config) { set(std::move(config)); }
  const Config& get() const { return *current_.load(); }
  void set(Config config) {
    std::lock_guard lock(mutex_);
    versions_.push_back(std::make_unique<const Config>(std::move(config)));
    current_.store(versions_.back().get());
  }

 private:
  std::mutex mutex_;
  std::vector<std::unique_ptr<const Config>> versions_;
  std::atomic<const Config*> current_{nullptr};
};

// Whether every `${system.env.NAME}` must resolve. Commands that only read the journal (status,
// trace, dead-letters list) need no secrets: with kMayBeUnset, a plugin option whose variable is
// unset keeps the reference text in `raw` (the [host] section and plugin, enabled, from and
// skip_echo must still resolve). Never pass such a Config to validate() or to plugins.
enum class EnvReferences { kRequired, kMayBeUnset };

// Reads the file: sections, names, plugin keys, env expansion, [host] settings, `from`
// references. Throws ConfigError("<file>: [section] key: what is wrong; what to do").
Config loadConfig(const std::string& path, EnvReferences env = EnvReferences::kRequired);

// Checks every enabled instance against its plugin's option table: unknown plugin, wrong kind,
// unknown keys (listing the allowed ones), missing required options, wrong types, values outside
// `choices`, secrets shorter than kMinSecretLength (a secret option's value, a password in a
// URL). Fills `resolved`, `secret_values` and the host settings. Throws ConfigError.
// secret_values holds, of kMinSecretLength characters or more: the value of every secret option;
// its parts, which are the items between ';', ',' and line breaks, the text after an item's first
// ':' or '=' and that text's last word (a header value and the token in "Bearer <token>"); and,
// in every option, a URL's "user:password" and password.
// Disabled instances are not validated (their plugin need not even be installed, their keys are
// kept in `raw` unchecked); loadConfig() still requires their `plugin` key. A sink's `from` is
// checked by loadConfig(), for enabled sinks only.
void validate(Config& config, const PluginRegistry& plugins);

// The host's own settings for sources and sinks, as option tables: `ferry plugins` prints them
// beside each plugin's table, and a plugin may redeclare one to change its default or help.
const std::vector<OptionSpec>& hostSourceOptions();
const std::vector<OptionSpec>& hostSinkOptions();

// Checks and normalises one value against its declaration (see OptionType).
// Returns the normalised value, or throws ConfigError with `where` ("file: [section] key") in
// the message; a secret's value never appears in it.
std::string normaliseOption(const OptionSpec& def, const std::string& value,
                            const std::string& where);

}  // namespace ferry::core
