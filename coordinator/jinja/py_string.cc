#include "coordinator/jinja/py_string.h"

#include <algorithm>

#include "absl/strings/ascii.h"

namespace shardlm::jinja {
namespace {

// Decodes the code point at s[*pos] and advances; an invalid sequence
// yields its first byte as is.
char32_t Next(std::string_view s, size_t* pos) {
  const auto b0 = static_cast<unsigned char>(s[*pos]);
  int len = b0 < 0x80 ? 1 : (b0 >> 5) == 6 ? 2 : (b0 >> 4) == 14 ? 3 : (b0 >> 3) == 30 ? 4 : 0;
  if (len == 0 || *pos + len > s.size()) {
    ++*pos;
    return b0;
  }
  char32_t c = len == 1 ? b0 : len == 2 ? (b0 & 0x1f) : len == 3 ? (b0 & 0x0f) : (b0 & 0x07);
  for (int i = 1; i < len; ++i) {
    const auto b = static_cast<unsigned char>(s[*pos + i]);
    if ((b & 0xc0) != 0x80) {
      ++*pos;
      return b0;
    }
    c = (c << 6) | (b & 0x3f);
  }
  *pos += len;
  return c;
}

struct CodePoint {
  size_t begin, end;
  char32_t c;
};

std::vector<CodePoint> Decode(std::string_view s) {
  std::vector<CodePoint> out;
  for (size_t pos = 0; pos < s.size();) {
    const size_t begin = pos;
    const char32_t c = Next(s, &pos);
    out.push_back({begin, pos, c});
  }
  return out;
}

}  // namespace

std::vector<size_t> CodePointOffsets(std::string_view s) {
  std::vector<size_t> out;
  for (const CodePoint& cp : Decode(s)) out.push_back(cp.begin);
  out.push_back(s.size());
  return out;
}

size_t CodePointCount(std::string_view s) { return Decode(s).size(); }

bool IsPySpace(char32_t c) {
  return (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20) || c == 0x85 || c == 0xa0 ||
         c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x2028 || c == 0x2029 || c == 0x202f ||
         c == 0x205f || c == 0x3000;
}

std::string PyStrip(std::string_view s, const std::optional<std::string>& chars, bool left,
                    bool right) {
  std::vector<char32_t> set;
  if (chars) {
    for (const CodePoint& cp : Decode(*chars)) set.push_back(cp.c);
  }
  auto strip = [&](char32_t c) {
    return chars ? std::find(set.begin(), set.end(), c) != set.end() : IsPySpace(c);
  };
  const std::vector<CodePoint> cps = Decode(s);
  size_t a = 0, b = cps.size();
  while (left && a < b && strip(cps[a].c)) ++a;
  while (right && b > a && strip(cps[b - 1].c)) --b;
  if (a == b) return "";
  return std::string(s.substr(cps[a].begin, cps[b - 1].end - cps[a].begin));
}

std::vector<std::string> PySplit(std::string_view s, const std::optional<std::string>& sep,
                                 int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep) {
    size_t start = 0;
    while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
      const size_t at = s.find(*sep, start);
      if (at == std::string_view::npos) break;
      out.emplace_back(s.substr(start, at - start));
      start = at + sep->size();
    }
    out.emplace_back(s.substr(start));
    return out;
  }
  const std::vector<CodePoint> cps = Decode(s);
  size_t i = 0;
  while (i < cps.size()) {
    while (i < cps.size() && IsPySpace(cps[i].c)) ++i;
    if (i == cps.size()) break;
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) == maxsplit) {
      // The rest, with its trailing whitespace stripped, is the last piece.
      out.push_back(PyStrip(s.substr(cps[i].begin), std::nullopt, false, true));
      break;
    }
    const size_t begin = i;
    while (i < cps.size() && !IsPySpace(cps[i].c)) ++i;
    out.emplace_back(s.substr(cps[begin].begin, cps[i - 1].end - cps[begin].begin));
  }
  return out;
}

std::vector<std::string> PySplitLines(std::string_view s) {
  std::vector<std::string> out;
  const std::vector<CodePoint> cps = Decode(s);
  size_t begin = 0;  // byte offset of the current line
  for (size_t i = 0; i < cps.size(); ++i) {
    const char32_t c = cps[i].c;
    const bool brk = c == '\n' || c == '\r' || c == '\v' || c == '\f' || (c >= 0x1c && c <= 0x1e) ||
                     c == 0x85 || c == 0x2028 || c == 0x2029;
    if (!brk) continue;
    out.emplace_back(s.substr(begin, cps[i].begin - begin));
    if (c == '\r' && i + 1 < cps.size() && cps[i + 1].c == '\n') ++i;
    begin = cps[i].end;
  }
  if (begin < s.size()) out.emplace_back(s.substr(begin));
  return out;
}

std::string PyUpper(std::string_view s) { return absl::AsciiStrToUpper(std::string(s)); }
std::string PyLower(std::string_view s) { return absl::AsciiStrToLower(std::string(s)); }

std::string PyTitle(std::string_view s) {
  std::string out(s);
  bool prev_letter = false;
  for (char& c : out) {
    const bool letter = absl::ascii_isalpha(static_cast<unsigned char>(c));
    if (letter) c = prev_letter ? absl::ascii_tolower(c) : absl::ascii_toupper(c);
    prev_letter = letter;
  }
  return out;
}

std::string PyCapitalize(std::string_view s) {
  std::string out = absl::AsciiStrToLower(std::string(s));
  if (!out.empty()) out[0] = absl::ascii_toupper(out[0]);
  return out;
}

std::string PyReplace(std::string_view s, std::string_view from, std::string_view to,
                      int64_t count) {
  std::string out;
  size_t start = 0;
  int64_t n = 0;
  if (from.empty()) {
    // Python inserts `to` around every code point.
    const std::vector<size_t> offs = CodePointOffsets(s);
    for (size_t i = 0; i + 1 < offs.size(); ++i) {
      if (count < 0 || n++ < count) out.append(to);
      out.append(s.substr(offs[i], offs[i + 1] - offs[i]));
    }
    if (count < 0 || n < count) out.append(to);
    return out;
  }
  while (count < 0 || n < count) {
    const size_t at = s.find(from, start);
    if (at == std::string_view::npos) break;
    out.append(s.substr(start, at - start));
    out.append(to);
    start = at + from.size();
    ++n;
  }
  out.append(s.substr(start));
  return out;
}

}  // namespace shardlm::jinja
