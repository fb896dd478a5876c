#include "common/tokenizer/pre_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/tokenizer/utf8.h"

namespace shardlm {
namespace {

// llama.cpp's regexes (llama-vocab.cpp, llm_tokenizer_bpe), verbatim.
//   Llama 3: letters with one optional leading non-letter (" word"), digits
//   in groups of up to three, punctuation runs with an optional leading space
//   and trailing newlines, newline runs, and runs of other whitespace that
//   leave their last character to the next word.
constexpr char kLlama3[] =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
//   Qwen2: the same with single digits.
constexpr char kQwen2[] =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
//   Qwen3.5: as Qwen2, with combining marks (\p{M}) kept inside words.
constexpr char kQwen35[] =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]"
    "+|"
    "\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// The White_Space code points, as the inside of a character class.
constexpr char kWhitespace[] =
    "\\t-\\r \\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}"
    "\\x{3000}";

// Code points that Unicode 15.0 and 15.1 assigned as letters, numbers and
// marks (Kawi, Nag Mundari, CJK extensions H and I, ...). llama.cpp v0.4.0's
// category table is Unicode 15.1; Debian 12's PCRE2 (10.42) knows Unicode 14
// and calls them unassigned. Adding them to the classes makes the two agree
// on every code point (checked against llama.cpp's unicode-data.cpp); with a
// newer PCRE2 they are simply redundant.
constexpr char kLetters15[] =
    "\\x{1123F}-\\x{11240}\\x{11F02}\\x{11F04}-\\x{11F10}\\x{11F12}-\\x{11F33}\\x{1342F}"
    "\\x{13441}-\\x{13446}\\x{1B132}\\x{1B155}\\x{1DF25}-\\x{1DF2A}\\x{1E030}-\\x{1E06D}"
    "\\x{1E4D0}-\\x{1E4EB}\\x{2B739}\\x{2EBF0}-\\x{2EE5D}\\x{31350}-\\x{323AF}";
constexpr char kNumbers15[] = "\\x{11F50}-\\x{11F59}\\x{1D2C0}-\\x{1D2D3}\\x{1E4F0}-\\x{1E4F9}";
constexpr char kMarks15[] =
    "\\x{0CF3}\\x{0ECE}\\x{10EFD}-\\x{10EFF}\\x{11241}\\x{11F00}-\\x{11F01}\\x{11F03}"
    "\\x{11F34}-\\x{11F3A}\\x{11F3E}-\\x{11F42}\\x{13440}\\x{13447}-\\x{13455}\\x{1E08F}"
    "\\x{1E4EC}-\\x{1E4EF}";

struct Spec {
  std::string_view name;
  const char* pattern;
  PreTokenizerTraits traits;
};

// `tokenizer.ggml.pre` names as llama.cpp maps them (llama_vocab::impl::load).
constexpr Spec kSpecs[] = {
    {"llama-bpe", kLlama3, {.ignore_merges = true, .add_bos = true}},
    {"llama3", kLlama3, {.ignore_merges = true, .add_bos = true}},
    {"llama-v3", kLlama3, {.ignore_merges = true, .add_bos = true}},
    {"qwen2", kQwen2, {}},
    {"deepseek-r1-qwen", kQwen2, {}},
    {"qwen35", kQwen35, {}},
};

const Spec* FindSpec(std::string_view name) {
  for (const Spec& spec : kSpecs) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

// Encodes a code point the way llama.cpp's unicode_cpt_to_utf8 does for
// anything <= U+10FFFF (surrogates included); `Valid` gives the stand-in that
// PCRE2 accepts: a surrogate (category Cs) becomes U+E000 (Co), which every
// class of these regexes treats alike, and has the same 3-byte length.
void AppendLenient(uint32_t cp, std::string* words, std::string* subject) {
  if (cp > 0x10FFFF) cp = 0xFFFD;  // llama.cpp throws here; we substitute
  AppendCodePoint(cp, words);
  AppendCodePoint(cp >= 0xD800 && cp <= 0xDFFF ? 0xE000 : cp, subject);
}

// llama.cpp's unicode_cpt_from_utf8: the lead byte's high bits give the
// length, continuation bytes must be 10xxxxxx, nothing else is checked.
// Returns U+FFFD and consumes one byte for anything else.
uint32_t LenientCodePoint(std::string_view s, size_t* i) {
  const auto lead = static_cast<uint8_t>(s[*i]);
  size_t n;
  uint32_t cp;
  if (lead < 0x80) {
    ++*i;
    return lead;
  } else if (lead < 0xC0) {
    ++*i;
    return 0xFFFD;
  } else if (lead < 0xE0) {
    n = 2;
    cp = lead & 0x1F;
  } else if (lead < 0xF0) {
    n = 3;
    cp = lead & 0x0F;
  } else if (lead < 0xF8) {
    n = 4;
    cp = lead & 0x07;
  } else {
    ++*i;
    return 0xFFFD;
  }
  if (*i + n > s.size()) {
    ++*i;
    return 0xFFFD;
  }
  for (size_t k = 1; k < n; ++k) {
    const auto c = static_cast<uint8_t>(s[*i + k]);
    if ((c & 0xC0) != 0x80) {
      ++*i;
      return 0xFFFD;
    }
    cp = (cp << 6) | (c & 0x3F);
  }
  *i += n;
  return cp;
}

}  // namespace

std::string ExpandClasses(std::string_view pattern) {
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 4 < pattern.size() && pattern.substr(i, 3) == "\\p{" &&
        pattern[i + 4] == '}') {
      const char category = pattern[i + 3];
      const char* extra = category == 'L'   ? kLetters15
                          : category == 'N' ? kNumbers15
                          : category == 'M' ? kMarks15
                                            : "";
      absl::StrAppend(&out, in_class ? "" : "[", std::string(pattern.substr(i, 5)), extra,
                      in_class ? "" : "]");
      i += 4;
      continue;
    }
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[++i];
      if (e == 's') {
        absl::StrAppend(&out, in_class ? "" : "[", kWhitespace, in_class ? "" : "]");
      } else if (e == 'S' && !in_class) {
        absl::StrAppend(&out, "[^", kWhitespace, "]");
      } else {
        out.push_back('\\');
        out.push_back(e);
      }
      continue;
    }
    if (c == '[') in_class = true;
    if (c == ']') in_class = false;
    out.push_back(c);
  }
  return out;
}

struct PreTokenizer::Regex {
  pcre2_code* code = nullptr;
  bool jit = false;
  ~Regex() { pcre2_code_free(code); }
};

PreTokenizer::PreTokenizer(std::unique_ptr<Regex> regex, PreTokenizerTraits traits)
    : regex_(std::move(regex)), traits_(traits) {}

PreTokenizer::~PreTokenizer() = default;

const PreTokenizerTraits* PreTokenizer::Traits(std::string_view name) {
  const Spec* spec = FindSpec(name);
  return spec == nullptr ? nullptr : &spec->traits;
}

absl::StatusOr<std::unique_ptr<PreTokenizer>> PreTokenizer::Create(std::string_view name) {
  const Spec* spec = FindSpec(name);
  if (spec == nullptr) {
    std::string supported;
    for (const Spec& s : kSpecs)
      absl::StrAppend(&supported, supported.empty() ? "" : ", ", std::string(s.name));
    return absl::UnimplementedError(absl::StrCat("BPE pre-tokenizer \"", std::string(name),
                                                 "\" (tokenizer.ggml.pre) is not supported "
                                                 "(supported: ",
                                                 supported, ")"));
  }
  const std::string pattern = ExpandClasses(spec->pattern);
  auto regex = std::make_unique<Regex>();
  int error = 0;
  PCRE2_SIZE offset = 0;
  regex->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                              PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (regex->code == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(error, message, sizeof(message));
    return absl::InternalError(absl::StrCat("pre-tokenizer \"", std::string(name),
                                            "\": PCRE2 error at ", offset, ": ",
                                            reinterpret_cast<char*>(message)));
  }
  // Without JIT (e.g. a platform PCRE2 lacks it for) the interpreter gives
  // the same matches, only slower.
  regex->jit = pcre2_jit_compile(regex->code, PCRE2_JIT_COMPLETE) == 0;
  return std::unique_ptr<PreTokenizer>(new PreTokenizer(std::move(regex), spec->traits));
}

void PreTokenizer::Split(std::string_view text,
                         absl::FunctionRef<void(std::string_view)> word) const {
  if (IsValidUtf8(text)) {
    SplitValid(text, text, word);
    return;
  }
  std::string words_from;
  std::string subject;
  words_from.reserve(text.size() + 8);
  subject.reserve(text.size() + 8);
  for (size_t i = 0; i < text.size();) {
    AppendLenient(LenientCodePoint(text, &i), &words_from, &subject);
  }
  SplitValid(subject, words_from, word);
}

void PreTokenizer::SplitValid(std::string_view subject, std::string_view words_from,
                              absl::FunctionRef<void(std::string_view)> word) const {
  pcre2_match_data* match = pcre2_match_data_create_from_pattern(regex_->code, nullptr);
  const auto* data = reinterpret_cast<PCRE2_SPTR>(subject.data());
  const size_t size = subject.size();
  size_t pos = 0;
  while (pos < size) {
    int rc = regex_->jit ? pcre2_jit_match(regex_->code, data, size, pos, 0, match, nullptr)
                         : PCRE2_ERROR_JIT_BADOPTION;
    // Interpreter fallback: no JIT, or the JIT stack ran out (the interpreter
    // keeps its backtracking frames on the heap).
    if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
      rc = pcre2_match(regex_->code, data, size, pos, PCRE2_NO_UTF_CHECK, match, nullptr);
    }
    if (rc < 0) break;  // no match: the rest is one word, as in llama.cpp
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(match);
    const size_t begin = ovector[0];
    const size_t end = ovector[1];
    if (end <= begin) break;  // the patterns never match empty; be safe
    // Text the regex skipped becomes a word of its own (llama.cpp's
    // unicode_regex_split_stl); the patterns above leave no such gaps.
    if (begin > pos) word(words_from.substr(pos, begin - pos));
    word(words_from.substr(begin, end - begin));
    pos = end;
  }
  if (pos < size) word(words_from.substr(pos));
  pcre2_match_data_free(match);
}

}  // namespace shardlm
