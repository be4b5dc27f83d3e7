// Text from outside (a remote's error body, a plugin's message) made safe to print: it reaches
// terminals (`ferry status`), logs and JSON.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace ferry::core {

// `text` as valid UTF-8 without control characters: tab, CR and LF become spaces, other control
// characters (C0, DEL, C1) '?', and every byte that is not part of valid UTF-8 U+FFFD. Terminal
// escape sequences thus lose their ESC and cannot retitle or recolour an operator's terminal.
std::string printable(std::string_view text);

// `text` with every occurrence of each secret replaced by "***": the one redaction of the host
// (config errors, plugin messages, HTTP errors). Longer secrets are matched first, so that a
// secret containing another is masked whole, and masked text is never searched again. Empty
// secrets are ignored. What is a secret, and how short one may be, is the config's rule
// (config/Config.h: secret_values, kMinSecretLength).
std::string redact(std::string_view text, const std::vector<std::string>& secrets);

}  // namespace ferry::core
