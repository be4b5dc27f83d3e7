#include "config/Config.h"

#include <Poco/Environment.h>
#include <Poco/Exception.h>
#include <Poco/URI.h>
#include <Poco/Util/IniFileConfiguration.h>
#include <Poco/Util/LayeredConfiguration.h>
#include <Poco/Util/SystemConfiguration.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "loader/Loader.h"
#include "services/Text.h"
#include "services/Time.h"

namespace ferry::core {

namespace fs = std::filesystem;

namespace {

std::string trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return std::string(s);
}

std::string lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(separator, start);
    if (end == std::string::npos) end = text.size();
    std::string item = trim(std::string_view(text).substr(start, end - start));
    if (!item.empty()) out.push_back(item);
    start = end + 1;
  }
  return out;
}

std::string join(const std::vector<std::string>& items, const std::string& separator) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : separator) + item;
  return out;
}

bool isInstanceName(const std::string& s) {
  if (s.empty()) return false;
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
  return true;
}

// Poco's IniFileConfiguration keeps only a map of "section.key" (sorted, case-insensitive), so
// the file order of sections, empty sections, keys given twice and keys outside any section are
// invisible through it. One pass over the lines recovers that structure; Poco still parses the
// values and expands ${...}.
struct Key {
  std::string name;
  int line;
};
struct Section {
  std::string name;
  int line;
  std::vector<Key> keys;
};
struct Scanned {
  std::string text;  // what Poco reads: '#' comment lines turned into ';' ones
  std::vector<Section> sections;
};

Scanned scan(const std::string& file) {
  std::ifstream in(file);
  if (!in)
    throw ConfigError(file + ": cannot read the configuration file (" +
                      (fs::exists(file) ? "permission denied" : "no such file") +
                      "); pass the path of a readable file");
  Scanned out;
  std::string line;
  int number = 0;
  while (std::getline(in, line)) {
    ++number;
    const std::string where = file + ", line " + std::to_string(number);
    std::string t = trim(line);
    // Poco 1.11 knows only ';' comments; '#' is what most INI files (and our examples) use.
    if (!t.empty() && t[0] == '#') {
      out.text += ";\n";
      continue;
    }
    out.text += line + "\n";
    if (t.empty() || t[0] == ';') continue;
    if (t[0] == '[') {
      size_t close = t.find(']');
      if (close == std::string::npos)
        throw ConfigError(where +
                          ": section header without ']'; write [host], "
                          "[source.<name>] or [sink.<name>]");
      out.sections.push_back({trim(std::string_view(t).substr(1, close - 1)), number, {}});
      continue;
    }
    size_t eq = t.find('=');
    if (eq == std::string::npos)
      throw ConfigError(where + ": '" + t + "' is not a setting; write `key = value`");
    std::string key = trim(std::string_view(t).substr(0, eq));
    if (key.empty()) throw ConfigError(where + ": no key before '='; write `key = value`");
    if (out.sections.empty())
      throw ConfigError(where + ": " + key +
                        " is outside of any section; put it under [host], [source.<name>] or "
                        "[sink.<name>]");
    auto& keys = out.sections.back().keys;
    for (const auto& k : keys)
      if (lower(k.name) == lower(key))
        throw ConfigError(file + ": [" + out.sections.back().name + "] " + key +
                          ": set twice (lines " + std::to_string(k.line) + " and " +
                          std::to_string(number) + "); keep one");
    keys.push_back({key, number});
  }
  return out;
}

class Reader {
 public:
  Reader(std::string file, const std::string& text) : file_(std::move(file)) {
    std::istringstream in(text);
    config_ = new Poco::Util::LayeredConfiguration;
    config_->add(new Poco::Util::IniFileConfiguration(in), 0);
    // SystemConfiguration's own keys are "system.*", so "${system.env.NAME}" in a value resolves
    // through this layer; the INI layer cannot shadow it because [system] is not a valid section.
    config_->add(new Poco::Util::SystemConfiguration, 100);
  }

  // The value with ${...} expanded. Poco leaves a reference it cannot resolve as it is, so a
  // remaining "${system.env." means the variable is not set: an error unless `unset_ok`, in which
  // case the value keeps the reference.
  std::string get(const std::string& section, const std::string& key,
                  bool unset_ok = false) const {
    const std::string where = file_ + ": [" + section + "] " + key;
    std::string value;
    try {
      value = config_->getString(section + "." + key);
    } catch (const Poco::Exception& e) {
      throw ConfigError(where + ": " + e.displayText() + "; check the ${...} references");
    }
    const std::string marker = "${system.env.";
    size_t at = value.find(marker);
    if (at != std::string::npos && !unset_ok) {
      size_t end = value.find('}', at);
      std::string name =
          value.substr(at + marker.size(),
                       end == std::string::npos ? std::string::npos : end - at - marker.size());
      throw ConfigError(where + ": environment variable " + name +
                        " is not set; set it in the environment ferry runs in (e.g. "
                        "Environment= or EnvironmentFile= of its systemd unit)");
    }
    return value;
  }

 private:
  std::string file_;
  Poco::AutoPtr<Poco::Util::LayeredConfiguration> config_;
};

OptionSpec def(const char* name, OptionType type, const char* default_value, const char* help,
               const char* choices = nullptr) {
  return {name, type, default_value, false, false, help, choices};
}

// The [host] section is validated with the same machinery as a plugin's options.
const std::vector<OptionSpec>& hostSectionOptions() {
  static const std::vector<OptionSpec> table = {
      def("journal", OptionType::String, "ferry-journal.db",
          "SQLite journal file, or postgresql://user:password@host:port/database for a "
          "PostgreSQL journal"),
      def("host_id", OptionType::String, "",
          "this host's name in a PostgreSQL journal (empty: the machine's hostname)"),
      def("lease_time", OptionType::Duration, "30s",
          "PostgreSQL journal: how long a host's leases of its sources and sinks last unrenewed "
          "(a killed host's work moves after this long; 3s-10m)"),
      def("plugin_dir", OptionType::String, "", "plugin directory (empty: next to ferry)"),
      def("log_level", OptionType::String, "info", "least severe level logged",
          "debug|info|warning|error"),
      def("log_file", OptionType::String, "", "log file (empty: standard error)"),
      def("log_format", OptionType::String, "text", "log lines as text or one JSON object each",
          "text|json"),
      def("retention", OptionType::Duration, "7d", "age after which delivered events are removed"),
      def("retry_initial", OptionType::Duration, "1s", "first retry delay"),
      def("retry_max", OptionType::Duration, "5m", "longest retry delay"),
      def("commit_pages", OptionType::Int, "20", "pages per journal transaction while behind"),
      def("commit_interval", OptionType::Duration, "500ms", "longest wait before a commit"),
      def("workers", OptionType::Int, "8",
          "threads that run the sources' poll cycles, however many sources there are (1-24)"),
      def("include", OptionType::String, "",
          "more [source.*] and [sink.*] sections: a folder (its *.ini files) or a pattern such "
          "as conf.d/*.ini, read in name order"),
      def("admin_listen", OptionType::String, "",
          "address of the /healthz and /metrics endpoint, e.g. 127.0.0.1:9464 (empty: off)"),
      def("unhealthy_after", OptionType::Duration, "5m",
          "/healthz reports an instance retrying, or without success, for longer than this "
          "(a source: or 3 poll intervals, whichever is longer)"),
  };
  return table;
}

std::vector<std::string> namesOf(const std::vector<OptionSpec>& table) {
  std::vector<std::string> out;
  for (const auto& d : table) out.push_back(d.name);
  return out;
}

const OptionSpec* findDef(const std::vector<OptionSpec>& table,
                                const std::string& name) {
  for (const auto& d : table)
    if (name == d.name) return &d;
  return nullptr;
}

int64_t toInt(const std::string& normalised) { return std::stoll(normalised); }

void requireAtLeast(int64_t value, int64_t minimum, const std::string& where) {
  if (value < minimum)
    throw ConfigError(where + ": must be at least " + std::to_string(minimum) +
                      "; raise the value or remove the key for the default");
}

std::string resolvePath(const std::string& value, const fs::path& base) {
  if (value.empty()) return value;
  fs::path p(value);
  return (p.is_absolute() ? p : base / p).lexically_normal().string();
}

// The number of characters (UTF-8 code points) of `s`.
size_t characters(std::string_view s) {
  return static_cast<size_t>(std::count_if(
      s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

// The user-info ("user:password") and password of every URL in `value`.
std::vector<std::pair<std::string, std::string>> urlCredentials(std::string_view value) {
  std::vector<std::pair<std::string, std::string>> out;
  for (size_t at = value.find("://"); at != std::string_view::npos;
       at = value.find("://", at + 3)) {
    std::string_view authority = value.substr(at + 3);
    authority = authority.substr(0, authority.find_first_of("/?#;, \t\r\n"));
    const size_t sign = authority.rfind('@');
    if (sign == std::string_view::npos) continue;
    const std::string_view info = authority.substr(0, sign);
    const size_t colon = info.find(':');
    out.emplace_back(info,
                     colon == std::string_view::npos ? std::string_view() : info.substr(colon + 1));
  }
  return out;
}

// What validateInstance adds to the secrets for one option's value: a secret option's value and
// its parts (the items between ';', ',' and line breaks, the text after an item's first ':' or
// '=', and that text's last word: "Authorization: Bearer <token>" gives the header value and the
// token), and the credentials of a URL in any option. Only text of kMinSecretLength characters
// or more: shorter parts (a header value "7") would mask unrelated text.
void addSecrets(std::vector<std::string>& out, const OptionSpec& def, const std::string& value) {
  std::vector<std::string> parts;
  if (def.secret) {
    parts.push_back(trim(value));
    std::string items = value;
    std::replace_if(
        items.begin(), items.end(), [](char c) { return c == ';' || c == '\r' || c == '\n'; }, ',');
    for (const auto& item : split(items, ',')) {
      parts.push_back(item);
      const size_t separator = item.find_first_of(":=");
      if (separator == std::string::npos) continue;
      const std::string after = trim(std::string_view(item).substr(separator + 1));
      parts.push_back(after);
      parts.push_back(after.substr(after.find_last_of(" \t") + 1));
    }
  }
  for (const auto& [info, password] : urlCredentials(value)) {
    parts.push_back(info);
    parts.push_back(password);
    std::string decoded;
    Poco::URI::decode(password, decoded);
    parts.push_back(decoded);
  }
  for (auto& part : parts)
    if (characters(part) >= kMinSecretLength) out.push_back(std::move(part));
}

// Why a value is refused as a secret too short to mask safely.
std::string tooShort(const std::string& what) {
  return what + " is shorter than " + std::to_string(kMinSecretLength) +
         " characters; use the real credential (a secret must have at least " +
         std::to_string(kMinSecretLength) +
         " characters, or it would be masked wherever its text occurs in a message)";
}

// The plugins of one kind ("source", "sink"), or of every kind ("").
std::string pluginNames(const PluginRegistry& plugins, const std::string& kind) {
  std::vector<std::string> names;
  for (const auto& p : plugins.all())
    if (kind.empty() || (p->isSource() ? "source" : "sink") == kind) names.push_back(p->name());
  return names.empty() ? "(none)" : join(names, ", ");
}

void validateInstance(InstanceConfig& inst, const PluginRegistry& plugins) {
  auto where = [&](const std::string& key) {
    return inst.file + ": [" + inst.section + "] " + key;
  };
  const bool wants_source = inst.kind == "source";
  auto plugin = plugins.find(inst.plugin);
  if (plugin == nullptr)
    throw ConfigError(where("plugin") + ": unknown plugin '" + inst.plugin +
                      "'; available plugins: " + pluginNames(plugins, "") + " (in " +
                      plugins.directory().string() + ")");
  if (plugin->isSource() != wants_source)
    throw ConfigError(where("plugin") + ": plugin " + plugin->name() + " is a " +
                      (plugin->isSource() ? "source" : "sink") + ", but [" + inst.section +
                      "] needs a " + inst.kind + " plugin; use one of: " +
                      pluginNames(plugins, inst.kind));

  // The effective table: host settings first (a plugin's redeclaration replaces the host's entry
  // in place, keeping the order stable for `ferry plugins`), then the plugin's own options.
  std::vector<OptionSpec> table = wants_source ? hostSourceOptions() : hostSinkOptions();
  const size_t host_count = table.size();
  for (const auto& pd : plugin->options) {
    auto it =
        std::find_if(table.begin(), table.begin() + host_count,
                     [&](const OptionSpec& d) { return std::string(d.name) == pd.name; });
    if (it == table.begin() + host_count) {
      table.push_back(pd);
      continue;
    }
    if (it->type != pd.type)
      throw ConfigError(where("plugin") + ": plugin " + plugin->name() + " (" +
                        plugin->file.string() + ") redeclares the host setting '" + pd.name +
                        "' as " + optionTypeName(pd.type) + ", but it is a " +
                        optionTypeName(it->type) +
                        "; this is a bug in the plugin: fix its option table");
    *it = pd;
  }

  // Collected before anything is checked, so that every error below is redacted.
  std::vector<std::string> secrets;
  for (const auto& d : table)
    if (auto raw = inst.raw.find(d.name); raw != inst.raw.end())
      addSecrets(secrets, d, raw->second);

  try {
    for (const auto& [key, value] : inst.raw)
      if (findDef(table, key) == nullptr)
        throw ConfigError(where(key) + ": unknown key for plugin " + plugin->name() +
                          "; allowed keys: plugin, enabled, " + join(namesOf(table), ", "));

    inst.resolved.clear();
    for (const auto& d : table) {
      std::optional<std::string> resolved;
      auto raw = inst.raw.find(d.name);
      if (raw != inst.raw.end()) {
        resolved = normaliseOption(d, raw->second, where(d.name));
      } else if (d.required) {
        throw ConfigError(where(d.name) + ": required option is not set; add `" + d.name +
                          " = …` to [" + inst.section + "]" +
                          (d.help != nullptr && *d.help ? std::string(" (") + d.help + ")" : ""));
      } else if (d.default_value != nullptr) {
        try {
          resolved = normaliseOption(d, d.default_value, where(d.name));
        } catch (const ConfigError& e) {
          throw ConfigError(std::string(e.what()) + " (this is the default declared by plugin " +
                            plugin->name() + ": fix the plugin, or set the key)");
        }
      }
      if (resolved) {
        if (d.secret && !resolved->empty() && characters(*resolved) < kMinSecretLength)
          throw ConfigError(where(d.name) + ": " + tooShort("the secret"));
        for (const auto& [info, password] : urlCredentials(*resolved))
          if (!password.empty() && characters(password) < kMinSecretLength)
            throw ConfigError(where(d.name) + ": " + tooShort("the password in the URL"));
        addSecrets(secrets, d, *resolved);
      }
      inst.resolved.emplace_back(d.name, resolved);
    }

    if (wants_source) {
      inst.interval_ms = toInt(*inst.value("interval"));
      requireAtLeast(inst.interval_ms, 1, where("interval"));
      inst.lookback_ms = toInt(*inst.value("lookback"));
      inst.start_from = *inst.value("start_from");
      inst.page_size = toInt(*inst.value("page_size"));
      requireAtLeast(inst.page_size, 1, where("page_size"));
      inst.set_aside_after = toInt(*inst.value("set_aside_after"));
      requireAtLeast(inst.set_aside_after, 1, where("set_aside_after"));
      inst.clock_skew_ms = toInt(*inst.value("clock_skew"));
    } else {
      auto from = inst.value("from");
      inst.from = from ? split(*from, ',') : std::vector<std::string>{};
      inst.batch_size = toInt(*inst.value("batch_size"));
      requireAtLeast(inst.batch_size, 1, where("batch_size"));
      inst.batch_delay_ms = toInt(*inst.value("batch_delay"));
      inst.skip_echo = *inst.value("skip_echo") == "true";
    }
  } catch (const ConfigError& e) {
    throw ConfigError(redact(e.what(), secrets));
  } catch (const std::bad_optional_access&) {
    // A plugin redeclared a host setting without a default: the host cannot run without it.
    throw ConfigError(where("plugin") + ": plugin " + plugin->name() +
                      " redeclares a host setting without a default; set every host setting in [" +
                      inst.section + "] or fix the plugin");
  }
  std::sort(secrets.begin(), secrets.end());
  secrets.erase(std::unique(secrets.begin(), secrets.end()), secrets.end());
  inst.secret_values = std::move(secrets);
}

}  // namespace

std::optional<std::string> InstanceConfig::value(const std::string& name) const {
  for (const auto& [key, value] : resolved)
    if (key == name) return value;
  return std::nullopt;
}

const std::vector<OptionSpec>& hostSourceOptions() {
  static const std::vector<OptionSpec> table = {
      def("interval", OptionType::Duration, "60s", "time between poll cycles"),
      def("lookback", OptionType::Duration, "5s",
          "each cycle asks from this long before the cursor, to catch late commits"),
      def("start_from", OptionType::Instant, "now", "the first cursor of a new source"),
      def("page_size", OptionType::Int, "100", "items per page"),
      def("set_aside_after", OptionType::Int, "3",
          "fetches of a page before an item that cannot be read is set aside as a source dead "
          "letter (ferry dead-letters list) and the source goes on without it"),
      def("clock_skew", OptionType::Duration, "1h",
          "how far ahead of this host's clock a change time may be and still move the cursor; "
          "items stamped further ahead are delivered with a warning, the cursor stays"),
  };
  return table;
}

const std::vector<OptionSpec>& hostSinkOptions() {
  static const std::vector<OptionSpec> table = {
      def("from", OptionType::List, nullptr, "source names to take events from (unset: all)"),
      def("batch_size", OptionType::Int, "100", "most events per write"),
      def("batch_delay", OptionType::Duration, "1s", "longest wait to fill a batch"),
      def("skip_echo", OptionType::Bool, "true", "skip changes this integration caused itself"),
  };
  return table;
}

std::string normaliseOption(const OptionSpec& def, const std::string& value,
                            const std::string& where) {
  const std::string v = trim(value);
  auto fail = [&](const std::string& what, const std::string& fix) {
    if (def.secret) return ConfigError(where + ": invalid value (hidden: secret option); " + fix);
    return ConfigError(where + ": " + what + "; " + fix);
  };
  std::string out;
  switch (def.type) {
    case OptionType::String:
      out = v;
      break;
    case OptionType::Int: {
      int64_t n = 0;
      const char* begin = v.data() + (v.size() > 1 && v[0] == '+' ? 1 : 0);
      auto [end, ec] = std::from_chars(begin, v.data() + v.size(), n);
      if (v.empty() || ec != std::errc() || end != v.data() + v.size())
        throw fail("'" + v + "' is not an integer", "write a whole number, e.g. 100");
      out = std::to_string(n);
      break;
    }
    case OptionType::Bool: {
      const std::string l = lower(v);
      if (l == "true" || l == "yes" || l == "on" || l == "1") {
        out = "true";
      } else if (l == "false" || l == "no" || l == "off" || l == "0") {
        out = "false";
      } else {
        throw fail("'" + v + "' is not a bool", "write true or false (or yes/no, on/off, 1/0)");
      }
      break;
    }
    case OptionType::Double: {
      double d = 0;
      auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), d);
      if (v.empty() || ec != std::errc() || end != v.data() + v.size() || !std::isfinite(d))
        throw fail("'" + v + "' is not a number", "write a decimal number with '.', e.g. 0.5");
      out = v;
      break;
    }
    case OptionType::Duration: {
      auto ms = parseDurationMs(v);
      if (!ms) throw fail("'" + v + "' is not a duration", "write e.g. 250ms, 20s, 5m, 1h or 2d");
      out = std::to_string(*ms);
      break;
    }
    case OptionType::Instant: {
      if (lower(v) == "now") {
        out = formatInstantMs(nowNs());
        break;
      }
      auto ns = parseInstantNs(v);
      if (!ns)
        throw fail("'" + v + "' is not an instant with a time zone",
                   "write e.g. 2025-04-23T10:01:53Z or 2025-04-23T12:01:53+02:00, or now");
      out = formatInstantMs(*ns);
      break;
    }
    case OptionType::List:
      out = join(split(v, ','), ",");
      break;
    default:
      throw ConfigError(where + ": the option has the unknown type " +
                        std::to_string(static_cast<int>(def.type)) + "; fix the plugin");
  }
  if (def.choices != nullptr) {
    const auto allowed = split(def.choices, '|');
    auto check = [&](const std::string& item) {
      if (std::find(allowed.begin(), allowed.end(), item) == allowed.end())
        throw fail("'" + item + "' is not one of " + def.choices,
                   "choose one of: " + join(allowed, ", "));
    };
    if (def.type == OptionType::List) {
      for (const auto& item : split(out, ',')) check(item);
    } else {
      check(def.type == OptionType::String ? out : v);
    }
  }
  return out;
}

namespace {

// The files `[host] include` names: a folder (its *.ini files) or a pattern whose last part has
// '*' (conf.d/*.ini), relative to the main file's folder; in name order. None is an error only
// when the folder itself is missing.
std::vector<std::string> includedFiles(const std::string& include, const fs::path& base,
                                       const std::string& where) {
  fs::path p(include);
  if (p.is_relative()) p = base / p;
  std::string pattern = "*.ini";
  std::error_code ec;
  if (!fs::is_directory(p, ec)) {
    pattern = p.filename().string();
    p = p.parent_path();
    if (pattern.find('*') == std::string::npos || !fs::is_directory(p, ec))
      throw ConfigError(where + ": '" + include +
                        "' is neither a folder nor a pattern like conf.d/*.ini in an existing "
                        "folder; create " + p.lexically_normal().string() + " or fix the key");
  }
  const size_t star = pattern.find('*');
  const std::string head = pattern.substr(0, star), tail = pattern.substr(star + 1);
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(p, ec)) {
    const std::string name = e.path().filename().string();
    if (name.size() >= head.size() + tail.size() && name.rfind(head, 0) == 0 &&
        name.compare(name.size() - tail.size(), tail.size(), tail) == 0 && name[0] != '.' &&
        e.is_regular_file(ec))
      files.push_back(e.path().lexically_normal().string());
  }
  if (ec)
    throw ConfigError(where + ": cannot list " + p.string() + ": " + ec.message() +
                      "; check its permissions");
  std::sort(files.begin(), files.end());
  return files;
}

// The [source.*] and [sink.*] sections of one file, appended to `config`. `seen` maps each
// lower-case instance name to "[section]" (and "in <file>" for another file), so that names
// stay unique across files. [host] is allowed only in the main file (`host` non-null).
void readInstances(Config& config, const std::string& file, const Scanned& scanned,
                   const Reader& reader, EnvReferences env,
                   std::map<std::string, std::pair<std::string, std::string>>& seen,
                   const Section** host) {
  for (const auto& section : scanned.sections) {
    const std::string l = lower(section.name);
    if (l == "host") {
      if (host == nullptr)
        throw ConfigError(file + ": [host]: only the main config file (" + config.file +
                          ") may have it; move these keys there");
      if (*host != nullptr)
        throw ConfigError(file + ": [host] appears twice (lines " + std::to_string((*host)->line) +
                          " and " + std::to_string(section.line) + "); merge them");
      *host = &section;
      continue;
    }
    std::string kind;
    if (l.rfind("source.", 0) == 0) kind = "source";
    if (l.rfind("sink.", 0) == 0) kind = "sink";
    const std::string name = kind.empty() ? "" : section.name.substr(kind.size() + 1);
    if (kind.empty() || !isInstanceName(name))
      throw ConfigError(
          file + ": [" + section.name +
          "]: " + (kind.empty() ? "unknown section" : "invalid instance name '" + name + "'") +
          "; allowed sections are [host], [source.<name>] and [sink.<name>], "
          "with <name> made of letters, digits, '_' and '-'");

    InstanceConfig inst;
    inst.kind = kind;
    inst.name = name;
    inst.section = kind + "." + name;
    inst.file = file;
    auto [it, fresh] = seen.emplace(lower(name), std::make_pair(inst.section, file));
    if (!fresh)
      throw ConfigError(file + ": [" + inst.section + "]: the name '" + name +
                        "' is already used by [" + it->second.first + "]" +
                        (it->second.second == file ? "" : " in " + it->second.second) +
                        "; instance names must be unique across sources and sinks: rename one");
    bool has_plugin = false;
    for (const auto& key : section.keys) {
      const std::string k = lower(key.name);
      // What the host reads itself (plugin, enabled, from, skip_echo) must resolve in any case;
      // the plugin's options only matter when plugins run.
      const bool host_key = k == "plugin" || k == "enabled" || k == "from" || k == "skip_echo";
      const std::string value =
          reader.get(section.name, key.name, env == EnvReferences::kMayBeUnset && !host_key);
      if (k == "plugin") {
        inst.plugin = value;
        has_plugin = !value.empty();
      } else if (k == "enabled") {
        static const OptionSpec kEnabled =
            def("enabled", OptionType::Bool, "true", "run this instance");
        inst.enabled =
            normaliseOption(kEnabled, value, file + ": [" + inst.section + "] enabled") == "true";
      } else {
        inst.raw[k] = value;
      }
    }
    if (!has_plugin)
      throw ConfigError(file + ": [" + inst.section +
                        "] plugin: missing; add `plugin = <name>` "
                        "naming the " +
                        kind + " plugin this instance runs");
    (kind == "source" ? config.sources : config.sinks).push_back(std::move(inst));
  }
}

}  // namespace

Config loadConfig(const std::string& path, EnvReferences env) {
  Config config;
  config.file = fs::absolute(path).lexically_normal().string();
  const fs::path base = fs::path(config.file).parent_path();
  Scanned scanned = scan(config.file);
  Reader reader(config.file, scanned.text);
  const std::string file = config.file;

  std::map<std::string, std::pair<std::string, std::string>> seen;
  const Section* host = nullptr;
  readInstances(config, file, scanned, reader, env, seen, &host);

  // [host], with the same checks as plugin options.
  const auto& table = hostSectionOptions();
  std::map<std::string, std::string> values;
  if (host != nullptr) {
    for (const auto& key : host->keys) {
      const std::string k = lower(key.name);
      if (findDef(table, k) == nullptr)
        throw ConfigError(file + ": [host] " + key.name +
                          ": unknown key; allowed keys: " + join(namesOf(table), ", "));
      values[k] = reader.get(host->name, key.name);
    }
  }
  auto setting = [&](const char* name) {
    const OptionSpec& d = *findDef(table, name);
    auto it = values.find(name);
    return normaliseOption(d, it != values.end() ? it->second : d.default_value,
                           file + ": [host] " + name);
  };
  {
    // A PostgreSQL URL is no path; its password is a secret like a plugin's, so it must be long
    // enough to be masked (services/Text.h redact()).
    const std::string journal = setting("journal");
    const bool url = journal.rfind("postgresql://", 0) == 0 || journal.rfind("postgres://", 0) == 0;
    if (!url && journal.find("://") != std::string::npos)
      throw ConfigError(file + ": [host] journal: '" + journal.substr(0, journal.find("://")) +
                        "://' is no journal ferry knows; give a file path (SQLite) or a "
                        "postgresql://user:password@host:port/database URL");
#ifdef _WIN32
    if (url)
      throw ConfigError(file + ": [host] journal: this ferry is built without the PostgreSQL "
                        "journal (the Windows build has no libpq); give a file path (SQLite)");
#endif
    for (const auto& [info, password] : urlCredentials(journal))
      if (!password.empty() && characters(password) < kMinSecretLength)
        throw ConfigError(file + ": [host] journal: " + tooShort("the password in the URL"));
    config.host.journal = url ? journal : resolvePath(journal, base);
  }
  config.host.host_id = setting("host_id");
  if (config.host.host_id.empty()) {
    // The hostname; a long one by its first label.
    const std::string node = Poco::Environment::nodeName();
    config.host.host_id = node.size() <= 40 ? node : node.substr(0, std::min<size_t>(node.find('.'), 40));
  }
  if (config.host.host_id.size() > 40 ||
      std::any_of(config.host.host_id.begin(), config.host.host_id.end(), [](char c) {
        return !std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.';
      }))
    throw ConfigError(file + ": [host] host_id: '" + config.host.host_id +
                      "' must be 1 to 40 letters, digits, '-', '_' or '.'; set host_id to a "
                      "short name for this host");
  config.host.plugin_dir = resolvePath(setting("plugin_dir"), base);
  config.host.log_level = setting("log_level");
  config.host.log_file = resolvePath(setting("log_file"), base);
  config.host.retention_ms = toInt(setting("retention"));
  config.host.retry_initial_ms = toInt(setting("retry_initial"));
  config.host.retry_max_ms = toInt(setting("retry_max"));
  config.host.commit_pages = toInt(setting("commit_pages"));
  requireAtLeast(config.host.commit_pages, 1, file + ": [host] commit_pages");
  config.host.commit_interval_ms = toInt(setting("commit_interval"));
  config.host.workers = toInt(setting("workers"));
  requireAtLeast(config.host.workers, 1, file + ": [host] workers");
  if (config.host.workers > kMaxWorkers)
    throw ConfigError(file + ": [host] workers: at most " + std::to_string(kMaxWorkers) +
                      " (the sources of every size of configuration share these threads; a "
                      "stuck remote holds one until its timeout)");
  config.host.lease_time_ms = toInt(setting("lease_time"));
  if (config.host.lease_time_ms < 3000 || config.host.lease_time_ms > 600000)
    throw ConfigError(file + ": [host] lease_time: must be between 3s and 10m, got " +
                      formatDurationMs(config.host.lease_time_ms) +
                      " (hosts renew their leases every third of it; a killed host's sources and "
                      "sinks move to another host after it)");
  config.host.admin_listen = setting("admin_listen");
  config.host.include = setting("include");
  if (!config.host.include.empty()) {
    const std::string where = file + ": [host] include";
    for (const auto& included : includedFiles(config.host.include, base, where)) {
      Scanned more = scan(included);
      Reader more_reader(included, more.text);
      readInstances(config, included, more, more_reader, env, seen, nullptr);
    }
  }
  config.host.log_format = setting("log_format");
  config.host.unhealthy_after_ms = toInt(setting("unhealthy_after"));
  requireAtLeast(config.host.unhealthy_after_ms, 1, file + ": [host] unhealthy_after");
  if (config.host.journal.empty())
    throw ConfigError(file +
                      ": [host] journal: empty; name the journal file or remove the key "
                      "for the default");

  // `from` is checked here, not in validate(), because it is about the file, not about a
  // plugin. Disabled sinks are skipped like every other check of a disabled instance, so that
  // removing a source does not block a sink nobody runs.
  std::vector<std::string> source_names;
  for (const auto& s : config.sources) source_names.push_back(s.name);
  for (auto& sink : config.sinks) {
    // Known without the plugins too, for `ferry trace`; a bad value is reported by validate().
    if (auto skip = sink.raw.find("skip_echo"); skip != sink.raw.end()) {
      static const OptionSpec kSkipEcho =
          def("skip_echo", OptionType::Bool, "true", "skip changes this integration caused itself");
      try {
        sink.skip_echo = normaliseOption(kSkipEcho, skip->second, sink.file) == "true";
      } catch (const ConfigError&) {
      }
    }
    auto from = sink.raw.find("from");
    if (from == sink.raw.end()) continue;
    auto names = split(from->second, ',');
    // Known without the plugins: `ferry status` and `ferry trace` route by it too.
    sink.from = names;
    if (!sink.enabled) continue;
    const std::string where = sink.file + ": [" + sink.section + "] from";
    if (names.empty())
      throw ConfigError(where +
                        ": empty; name the sources to take events from, or remove the "
                        "key to take every source");
    for (const auto& n : names)
      if (std::find(source_names.begin(), source_names.end(), n) == source_names.end())
        throw ConfigError(where + ": no source named '" + n + "'; configured sources: " +
                          (source_names.empty() ? "(none)" : join(source_names, ", ")));
  }
  return config;
}

void validate(Config& config, const PluginRegistry& plugins) {
  for (auto* list : {&config.sources, &config.sinks})
    for (auto& inst : *list)
      if (inst.enabled) validateInstance(inst, plugins);
}

}  // namespace ferry::core
