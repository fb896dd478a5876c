#include "common/tokenizer/byte_unicode.h"

#include <array>

#include "absl/strings/str_format.h"
#include "common/tokenizer/utf8.h"

namespace shardlm {
namespace {

bool MapsToItself(int byte) {
  return (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) || byte >= 0xAE;
}

struct Tables {
  std::array<std::string, 256> encoded;
  // Code points 0..0x143 -> byte, -1 elsewhere.
  std::array<int16_t, 0x144> decoded;

  Tables() {
    decoded.fill(-1);
    int next = 0x100;
    for (int b = 0; b < 256; ++b) {
      const uint32_t cp = MapsToItself(b) ? b : next++;
      AppendCodePoint(cp, &encoded[b]);
      decoded[cp] = static_cast<int16_t>(b);
    }
  }
};

const Tables& GetTables() {
  static const Tables* const tables = new Tables();
  return *tables;
}

// One code point of `s` at `*i` (lenient: a malformed sequence yields -1 and
// advances one byte, like llama.cpp's U+FFFD substitution).
int64_t NextCodePoint(std::string_view s, size_t* i) {
  const auto lead = static_cast<uint8_t>(s[*i]);
  const size_t n = Utf8LeadLength(lead);
  if (lead >= 0x80 && lead < 0xC0) {
    ++*i;
    return -1;
  }
  if (*i + n > s.size()) {
    ++*i;
    return -1;
  }
  uint32_t cp = n == 1 ? lead : n == 2 ? (lead & 0x1F) : n == 3 ? (lead & 0x0F) : (lead & 0x07);
  for (size_t k = 1; k < n; ++k) {
    const auto c = static_cast<uint8_t>(s[*i + k]);
    if ((c & 0xC0) != 0x80) {
      ++*i;
      return -1;
    }
    cp = (cp << 6) | (c & 0x3F);
  }
  *i += n;
  return cp;
}

}  // namespace

std::string_view ByteToUnicode(uint8_t byte) { return GetTables().encoded[byte]; }

void AppendByteLevel(std::string_view bytes, std::string* out) {
  const Tables& t = GetTables();
  for (const char c : bytes) out->append(t.encoded[static_cast<uint8_t>(c)]);
}

int UnicodeToByte(uint32_t code_point) {
  return code_point < GetTables().decoded.size() ? GetTables().decoded[code_point] : -1;
}

void AppendByteLevelDecoded(std::string_view text, std::string* out) {
  for (size_t i = 0; i < text.size();) {
    const size_t start = i;
    const int64_t cp = NextCodePoint(text, &i);
    const int byte = cp < 0 ? -1 : UnicodeToByte(static_cast<uint32_t>(cp));
    if (byte >= 0) {
      out->push_back(static_cast<char>(byte));
      continue;
    }
    // llama.cpp first turns a malformed sequence into U+FFFD (EF BF BD).
    const std::string_view utf8 =
        cp < 0 ? std::string_view("\xEF\xBF\xBD") : text.substr(start, i - start);
    out->append("[UNK_BYTE_0x");
    for (const char c : utf8) out->append(absl::StrFormat("%02x", static_cast<uint8_t>(c)));
    out->append(text);
    out->push_back(']');
  }
}

}  // namespace shardlm
