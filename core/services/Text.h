// Text from outside (a remote's error body, a plugin's message) made safe to print: it reaches
// terminals (`ferry status`), logs and JSON.
#pragma once

#include <string>
#include <string_view>

namespace ferry::core {

// `text` as valid UTF-8 without control characters: tab, CR and LF become spaces, other control
// characters (C0, DEL, C1) '?', and every byte that is not part of valid UTF-8 U+FFFD. Terminal
// escape sequences thus lose their ESC and cannot retitle or recolour an operator's terminal.
std::string printable(std::string_view text);

}  // namespace ferry::core
