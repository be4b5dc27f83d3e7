#include "services/Text.h"

#include <algorithm>
#include <cstdint>

namespace ferry::core {

std::string printable(std::string_view text) {
  static constexpr char kReplacement[] = "\xEF\xBF\xBD";  // U+FFFD
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x80) {
      if (c == '\t' || c == '\r' || c == '\n') out.push_back(' ');
      else if (c < 0x20 || c == 0x7F) out.push_back('?');
      else out.push_back(static_cast<char>(c));
      ++i;
      continue;
    }
    // The length of a well-formed sequence starting with `c` (RFC 3629), 0 when none can.
    const size_t length = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3
                          : c >= 0xF0 && c <= 0xF4                 ? 4
                                                                   : 0;
    bool valid = length > 0 && i + length <= text.size();
    uint32_t cp = length == 2 ? c & 0x1F : length == 3 ? c & 0x0F : c & 0x07;
    for (size_t k = 1; valid && k < length; ++k) {
      const auto cc = static_cast<unsigned char>(text[i + k]);
      valid = (cc & 0xC0) == 0x80;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates and code points past U+10FFFF are not UTF-8 either.
    if (valid && ((length == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
                  (length == 4 && (cp < 0x10000 || cp > 0x10FFFF))))
      valid = false;
    if (!valid) {
      out += kReplacement;
      ++i;
      continue;
    }
    if (cp >= 0x80 && cp <= 0x9F) out.push_back('?');  // C1 controls (e.g. CSI)
    else out.append(text.substr(i, length));
    i += length;
  }
  return out;
}

std::string redact(std::string_view text, const std::vector<std::string>& secrets) {
  std::vector<std::string_view> longest_first;
  for (const auto& s : secrets)
    if (!s.empty()) longest_first.push_back(s);
  if (longest_first.empty()) return std::string(text);
  std::stable_sort(longest_first.begin(), longest_first.end(),
                   [](std::string_view a, std::string_view b) { return a.size() > b.size(); });
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    const std::string_view rest = text.substr(i);
    auto match = std::find_if(longest_first.begin(), longest_first.end(),
                              [&](std::string_view s) { return rest.starts_with(s); });
    if (match == longest_first.end()) {
      out.push_back(text[i++]);
    } else {
      out += "***";
      i += match->size();
    }
  }
  return out;
}

}  // namespace ferry::core
