#include <gtest/gtest.h>

#include "services/Text.h"

namespace ferry::core {
namespace {

TEST(Printable, KeepsTextAndUtf8) {
  EXPECT_EQ(printable("HTTP 400: {\"error\":\"bad\"}"), "HTTP 400: {\"error\":\"bad\"}");
  EXPECT_EQ(printable("Müller – 東京 😀"), "Müller – 東京 😀");
}

TEST(Printable, ControlCharactersCannotReachATerminal) {
  // OSC "set window title", then a colour escape, a bell and line breaks.
  const std::string hostile = "\x1b]0;pwned\x07 \x1b[31mred\x1b[0m\r\nnext\tcol";
  const std::string shown = printable(hostile);
  EXPECT_EQ(shown.find('\x1b'), std::string::npos) << shown;
  EXPECT_EQ(shown.find('\x07'), std::string::npos) << shown;
  EXPECT_EQ(shown, "?]0;pwned? ?[31mred?[0m  next col");
  EXPECT_EQ(printable(std::string("a\0b", 3)), "a?b");
  EXPECT_EQ(printable("\xC2\x9B" "2J"), "?2J");  // C1 CSI
}

TEST(Printable, InvalidUtf8BecomesTheReplacementCharacter) {
  EXPECT_EQ(printable("a\xFF\xFE" "b"), "a\xEF\xBF\xBD\xEF\xBF\xBD" "b");
  EXPECT_EQ(printable("\xC3"), "\xEF\xBF\xBD");                       // cut short
  EXPECT_EQ(printable("\xC0\xAF"), "\xEF\xBF\xBD\xEF\xBF\xBD");       // overlong '/'
  EXPECT_EQ(printable("\xED\xA0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(printable("\xF4\x90\x80\x80").find("\xF4"), std::string::npos);  // > U+10FFFF
}

TEST(Redact, MasksEveryOccurrenceAndLeavesTheRestWhole) {
  EXPECT_EQ(redact("expected tok-12345678, got tok-12345678 twice", {"tok-12345678"}),
            "expected ***, got *** twice");
  EXPECT_EQ(redact("nothing to hide", {"tok-12345678", ""}), "nothing to hide");
  EXPECT_EQ(redact("", {"tok-12345678"}), "");
}

TEST(Redact, ALongerSecretIsMaskedWholeBeforeOneItContains) {
  // The header value and the token inside it: either order of the list gives one mask.
  const std::string text = "Authorization: Bearer tok-12345678 refused";
  EXPECT_EQ(redact(text, {"tok-12345678", "Bearer tok-12345678"}), "Authorization: *** refused");
  EXPECT_EQ(redact(text, {"Bearer tok-12345678", "tok-12345678"}), "Authorization: *** refused");
}

TEST(Redact, MaskedTextIsNeverSearchedAgain) {
  // A secret that would match across the inserted "***" or inside it must not.
  EXPECT_EQ(redact("aaaaaaaaaa", {"aaaaaaaa"}), "***aa");
  EXPECT_EQ(redact("x-secret-1 y", {"x-secret-1", "** y"}), "*** y");
}

}  // namespace
}  // namespace ferry::core
