#include "common/tokenizer/utf8.h"

namespace shardlm {

void AppendCodePoint(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

size_t AppendValidUtf8(std::string_view in, bool final, std::string* out) {
  const size_t n = in.size();
  size_t i = 0;
  while (i < n) {
    const uint8_t b = static_cast<uint8_t>(in[i]);
    if (b < 0x80) {
      // ASCII run: the common case, copied in one append.
      size_t j = i + 1;
      while (j < n && static_cast<uint8_t>(in[j]) < 0x80) ++j;
      out->append(in.data() + i, j - i);
      i = j;
      continue;
    }
    // Table 3-7 of the Unicode standard: the number of continuation bytes
    // and the allowed range of the FIRST continuation byte, which is what
    // excludes overlongs (E0, F0), surrogates (ED) and > U+10FFFF (F4).
    size_t need = 0;
    uint8_t lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
      need = 1;
    } else if (b == 0xE0) {
      need = 2, lo = 0xA0;
    } else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) {
      need = 2;
    } else if (b == 0xED) {
      need = 2, hi = 0x9F;
    } else if (b == 0xF0) {
      need = 3, lo = 0x90;
    } else if (b >= 0xF1 && b <= 0xF3) {
      need = 3;
    } else if (b == 0xF4) {
      need = 3, hi = 0x8F;
    } else {
      // 0x80-0xC1 and 0xF5-0xFF can never start a character.
      out->append(kUtf8Replacement);
      ++i;
      continue;
    }
    size_t j = 1;
    for (; j <= need && i + j < n; ++j) {
      const uint8_t c = static_cast<uint8_t>(in[i + j]);
      const uint8_t l = j == 1 ? lo : 0x80;
      const uint8_t h = j == 1 ? hi : 0xBF;
      if (c < l || c > h) break;
    }
    if (j > need) {
      out->append(in.data() + i, need + 1);
      i += need + 1;
      continue;
    }
    if (i + j >= n && !final) return i;  // a valid prefix: wait for more bytes
    // Lead byte plus the continuation bytes that were still acceptable form
    // the maximal subpart; the offending byte is examined afresh.
    out->append(kUtf8Replacement);
    i += j;
  }
  return n;
}

bool IsValidUtf8(std::string_view s) {
  // Sanitizing changes at least one byte of any invalid input.
  return SanitizeUtf8(s) == s;
}

std::string SanitizeUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  AppendValidUtf8(s, /*final=*/true, &out);
  return out;
}

}  // namespace shardlm
