// UTF-8 helpers shared by the tokenizer and the streaming detokenizer.
//
// Two different notions of "character" live here on purpose:
//  - Utf8LeadLength() is llama.cpp's `unicode_len_utf8`: it looks only at the
//    high nibble of a lead byte and is what the SentencePiece encoder uses to
//    split text into initial symbols. It must stay bug-for-bug identical to
//    llama.cpp, or token ids differ on invalid input.
//  - AppendValidUtf8() is a strict validator (RFC 3629: no overlongs, no
//    surrogates, nothing above U+10FFFF) used on the way out, so that a client
//    never receives broken UTF-8.
#ifndef SHARDLM_COMMON_TOKENIZER_UTF8_H_
#define SHARDLM_COMMON_TOKENIZER_UTF8_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace shardlm {

// U+FFFD REPLACEMENT CHARACTER, encoded.
inline constexpr std::string_view kUtf8Replacement = "\xEF\xBF\xBD";

// llama.cpp's length-from-lead-byte table: 0x00-0xBF -> 1, 0xC0-0xDF -> 2,
// 0xE0-0xEF -> 3, 0xF0-0xFF -> 4. Continuation bytes count as 1.
inline size_t Utf8LeadLength(uint8_t lead) {
  static constexpr uint8_t kLengths[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
  return kLengths[lead >> 4];
}

// Appends the code point `cp` (must be <= 0x10FFFF) to `out`.
void AppendCodePoint(uint32_t cp, std::string* out);

// Appends to `out` every complete, valid character of `in`. Each maximal
// invalid subpart (Unicode §3.9 "U+FFFD substitution of maximal subparts", as
// WHATWG decoders do) becomes one U+FFFD.
//
// When `final` is false, a trailing sequence that is incomplete but could
// still become valid (at most 3 bytes) is NOT consumed; the return value is
// the number of bytes of `in` consumed, so the caller keeps the rest and
// retries when more bytes arrive. Such a tail can never exceed 3 bytes: any
// byte that makes a sequence impossible is resolved to U+FFFD at once, so a
// stream never stalls. When `final` is true, the tail becomes U+FFFD and the
// whole input is consumed.
size_t AppendValidUtf8(std::string_view in, bool final, std::string* out);

// True if `s` is entirely valid UTF-8.
bool IsValidUtf8(std::string_view s);

// `s` with each maximal invalid subpart replaced by U+FFFD.
std::string SanitizeUtf8(std::string_view s);

}  // namespace shardlm

#endif  // SHARDLM_COMMON_TOKENIZER_UTF8_H_
