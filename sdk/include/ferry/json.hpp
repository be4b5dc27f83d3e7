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

// `text` without the JSON whitespace (space, tab, CR, LF) around it. A parser's view of one
// value of an array (simdjson's raw_json()) may carry the whitespace that follows it in the
// page; an event body is the value exactly as received, without it.
inline std::string_view trimmed(std::string_view text) {
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; };
  while (!text.empty() && space(text.front())) text.remove_prefix(1);
  while (!text.empty() && space(text.back())) text.remove_suffix(1);
  return text;
}

}  // namespace ferry::json
