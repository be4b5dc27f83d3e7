// One declared option, as the host's settings and every plugin's option table are validated:
// the host's own view of a declaration, free of the C ABI (the loader copies each plugin's
// ferry_option_def into one of these).
#pragma once

namespace ferry::core {

enum class OptionType { String, Int, Bool, Double, Duration, Instant, List };

// The text fields point to static text: the host's literals, or a plugin's table inside its
// library, which the loaded Plugin keeps mapped for as long as the spec is used.
struct OptionSpec {
  const char* name = "";                // config key: [a-z0-9_]+
  OptionType type = OptionType::String;
  const char* default_value = nullptr;  // config syntax; nullptr: no default
  bool required = false;                // the config must set it
  bool secret = false;                  // never logged, printed or echoed in an error
  const char* help = "";                // one line
  const char* choices = nullptr;        // nullptr, or the allowed values separated by '|'
};

// "string", "int", "bool", "double", "duration", "instant", "list".
inline const char* optionTypeName(OptionType type) {
  switch (type) {
    case OptionType::String: return "string";
    case OptionType::Int: return "int";
    case OptionType::Bool: return "bool";
    case OptionType::Double: return "double";
    case OptionType::Duration: return "duration";
    case OptionType::Instant: return "instant";
    case OptionType::List: return "list";
  }
  return "unknown";
}

}  // namespace ferry::core
