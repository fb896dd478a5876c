#include "common/tokenizer/utf8.h"

#include <gtest/gtest.h>

#include <string>

namespace shardlm {
namespace {

const std::string kFffd(kUtf8Replacement);

std::string Sanitized(std::string_view in) { return SanitizeUtf8(in); }

TEST(Utf8Test, ValidTextPassesThrough) {
  const std::string text = "héllo wörld, привет, 你好, 🦙, \x7F";
  EXPECT_TRUE(IsValidUtf8(text));
  EXPECT_EQ(Sanitized(text), text);
  EXPECT_TRUE(IsValidUtf8(""));
}

TEST(Utf8Test, ImpossibleBytesBecomeOneReplacementEach) {
  EXPECT_EQ(Sanitized("\xFF"), kFffd);
  EXPECT_EQ(Sanitized("a\x80z"), "a" + kFffd + "z");
  EXPECT_EQ(Sanitized("\xC0\x80"), kFffd + kFffd);  // overlong NUL
  EXPECT_EQ(Sanitized("\xF5\x80"), kFffd + kFffd);  // beyond U+10FFFF
  EXPECT_FALSE(IsValidUtf8("\xFF"));
}

TEST(Utf8Test, MaximalSubpartsFollowTheUnicodeStandard) {
  // Surrogate: ED allows only 80-9F next, so ED, A0 and 80 are each invalid.
  EXPECT_EQ(Sanitized("\xED\xA0\x80"), kFffd + kFffd + kFffd);
  // Truncated 3-byte character followed by ASCII: one U+FFFD, then the ASCII.
  EXPECT_EQ(Sanitized("\xE2\x82"
                      "A"),
            kFffd + "A");
  // F4 90 is above U+10FFFF.
  EXPECT_EQ(Sanitized("\xF4\x90\x80\x80"), kFffd + kFffd + kFffd + kFffd);
  // E0 80 is an overlong prefix.
  EXPECT_EQ(Sanitized("\xE0\x80\x80"), kFffd + kFffd + kFffd);
  // Truncated 4-byte at the very end: one U+FFFD for the whole prefix.
  EXPECT_EQ(Sanitized("x\xF0\x9F\xA6"), "x" + kFffd);
}

TEST(Utf8Test, IncompleteTailIsHeldBackUnlessFinal) {
  std::string out;
  // "€" is E2 82 AC.
  EXPECT_EQ(AppendValidUtf8("ab\xE2\x82", /*final=*/false, &out), 2u);
  EXPECT_EQ(out, "ab");
  out.clear();
  EXPECT_EQ(AppendValidUtf8("\xE2\x82\xAC", false, &out), 3u);
  EXPECT_EQ(out, "\xE2\x82\xAC");
  out.clear();
  EXPECT_EQ(AppendValidUtf8("ab\xE2\x82", /*final=*/true, &out), 4u);
  EXPECT_EQ(out, "ab" + kFffd);
  // A tail that is already impossible is never held.
  out.clear();
  EXPECT_EQ(AppendValidUtf8("\xE2\x41", false, &out), 2u);
  EXPECT_EQ(out, kFffd + "A");
  out.clear();
  EXPECT_EQ(AppendValidUtf8("\xFF", false, &out), 1u);
  EXPECT_EQ(out, kFffd);
}

TEST(Utf8Test, AppendCodePointRoundTrips) {
  for (uint32_t cp : {0x41u, 0xE9u, 0x20ACu, 0x1F999u, 0x10FFFFu}) {
    std::string s;
    AppendCodePoint(cp, &s);
    EXPECT_TRUE(IsValidUtf8(s)) << cp;
    EXPECT_EQ(s.size(), cp < 0x80 ? 1u : cp < 0x800 ? 2u : cp < 0x10000 ? 3u : 4u);
  }
}

TEST(Utf8Test, LeadLengthMatchesLlamaCpp) {
  EXPECT_EQ(Utf8LeadLength('a'), 1u);
  EXPECT_EQ(Utf8LeadLength(0x80), 1u);  // stray continuation byte: its own symbol
  EXPECT_EQ(Utf8LeadLength(0xC3), 2u);
  EXPECT_EQ(Utf8LeadLength(0xE2), 3u);
  EXPECT_EQ(Utf8LeadLength(0xFF), 4u);
}

}  // namespace
}  // namespace shardlm
