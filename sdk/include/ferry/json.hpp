// Writing JSON text by hand, header-only: the one escaping routine for plugins that build
// request bodies or output lines without a JSON library (and for the test programs).
//
// Thread-safe (pure functions); nothing throws but std::bad_alloc.
#pragma once

#include <string>
#include <string_view>

namespace ferry::json {

// Appends `text` (UTF-8) as a JSON string literal, quotes included: `"`, `\` and control
// characters are escaped, everything else (UTF-8 sequences too) is copied as is.
inline void appendString(std::string& out, std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  for (unsigned char c : text) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out.push_back(kHex[c >> 4]);
          out.push_back(kHex[c & 0xf]);
        } else {
          out.push_back(static_cast<char>(c));
        }
    }
  }
  out.push_back('"');
}

// `text` as a JSON string literal.
inline std::string quote(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  appendString(out, text);
  return out;
}

}  // namespace ferry::json
