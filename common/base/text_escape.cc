#include "common/base/text_escape.h"

#include <cstdint>

namespace shardlm {
namespace {

// Length of the valid UTF-8 character at the start of `s` (RFC 3629: no
// overlongs, no surrogates, nothing above U+10FFFF), or 0 when invalid or
// truncated. `cp` receives its code point.
size_t DecodeUtf8(std::string_view s, uint32_t* cp) {
  const auto b = [&](size_t i) { return static_cast<uint8_t>(s[i]); };
  const uint8_t lead = b(0);
  if (lead < 0x80) {
    *cp = lead;
    return 1;
  }
  size_t n;
  uint32_t min;
  if (lead >= 0xC2 && lead <= 0xDF) {
    n = 2, min = 0x80, *cp = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    n = 3, min = 0x800, *cp = lead & 0x0F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    n = 4, min = 0x10000, *cp = lead & 0x07;
  } else {
    return 0;  // continuation byte, C0/C1 overlong lead, or beyond U+10FFFF
  }
  if (s.size() < n) return 0;
  for (size_t i = 1; i < n; ++i) {
    if ((b(i) & 0xC0) != 0x80) return 0;
    *cp = (*cp << 6) | (b(i) & 0x3F);
  }
  if (*cp < min || *cp > 0x10FFFF || (*cp >= 0xD800 && *cp <= 0xDFFF)) return 0;
  return n;
}

bool IsControl(uint32_t cp) { return cp < 0x20 || (cp >= 0x7F && cp <= 0x9F); }

void AppendHexByte(uint8_t byte, std::string* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out->append("\\x");
  out->push_back(kHex[byte >> 4]);
  out->push_back(kHex[byte & 0xF]);
}

}  // namespace

std::string EscapeNonPrintable(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    uint32_t cp = 0;
    const size_t n = DecodeUtf8(text.substr(i), &cp);
    if (n == 0 || IsControl(cp)) {
      // An invalid byte is escaped alone; decoding resumes at the next one.
      const size_t bad = n == 0 ? 1 : n;
      for (size_t k = 0; k < bad; ++k) AppendHexByte(static_cast<uint8_t>(text[i + k]), &out);
      i += bad;
    } else if (cp == '\\') {
      out.append("\\\\");
      i += 1;
    } else {
      out.append(text.substr(i, n));
      i += n;
    }
  }
  return out;
}

bool IsPrintableUtf8(std::string_view text) {
  size_t i = 0;
  while (i < text.size()) {
    uint32_t cp = 0;
    const size_t n = DecodeUtf8(text.substr(i), &cp);
    if (n == 0 || IsControl(cp)) return false;
    i += n;
  }
  return true;
}

}  // namespace shardlm
