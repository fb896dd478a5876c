// The pre-tokenizer of a byte-level BPE vocabulary: splits text into the
// "words" that BPE merges never cross, with the regular expression that
// llama.cpp uses for the vocabulary's `tokenizer.ggml.pre`.
//
// The regexes are llama.cpp's (llama-vocab.cpp), run with PCRE2 (UTF, UCP,
// JIT). llama.cpp itself runs them with hand-written splitters
// (unicode.cpp: unicode_regex_split_custom_llama3 / _qwen2 / _qwen35) whose
// semantics are those of the regex with:
//  - `\s` = the Unicode White_Space property (llama.cpp's table: U+0009-000D,
//    U+0020, U+0085, U+00A0, U+1680, U+2000-200A, U+2028, U+2029, U+202F,
//    U+205F, U+3000). PCRE2's `\s` leaves out U+0085, so we spell the class
//    out instead of writing `\s`.
//  - the contractions `(?i:'s|'t|...)` matched on ASCII letters only, which
//    is why llama.cpp's regexes write them as `'[sS]|'[tT]|...`: PCRE2's
//    caseless mode would also take U+017F (long s) and U+212A (Kelvin).
//  - text that is not valid UTF-8 first decoded leniently: each byte that
//    does not start a well-formed sequence becomes U+FFFD, while overlong
//    forms and surrogates are kept as the code point they spell
//    (unicode_cpts_from_utf8); the words are then re-encoded from those code
//    points. Words are therefore not always substrings of the input.
//  - \p{L}, \p{N}, \p{M} as in llama.cpp's own table (Unicode 15.1): PCRE2's
//    (Debian 12: Unicode 14) plus the code points assigned since.
#ifndef SHARDLM_COMMON_TOKENIZER_PRE_TOKENIZER_H_
#define SHARDLM_COMMON_TOKENIZER_PRE_TOKENIZER_H_

#include <memory>
#include <string>
#include <string_view>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"

namespace shardlm {

// What llama.cpp derives from `tokenizer.ggml.pre` besides the regex.
struct PreTokenizerTraits {
  // Whole words that are tokens skip the merges (llama.cpp `ignore_merges`).
  bool ignore_merges = false;
  // add_bos_token when the GGUF does not say (Llama 3: yes; Qwen: no).
  bool add_bos = false;
};

class PreTokenizer {
 public:
  // UNIMPLEMENTED naming `name` (and the supported names) for a
  // pre-tokenizer we do not have; INTERNAL if PCRE2 rejects the pattern.
  static absl::StatusOr<std::unique_ptr<PreTokenizer>> Create(std::string_view name);
  // The traits of `name`, or nullptr if unsupported.
  static const PreTokenizerTraits* Traits(std::string_view name);

  ~PreTokenizer();
  PreTokenizer(const PreTokenizer&) = delete;
  PreTokenizer& operator=(const PreTokenizer&) = delete;

  // Calls `word` with each word of `text` in order; the words concatenate to
  // `text` (or to its lenient re-encoding, see above). Thread-safe.
  void Split(std::string_view text, absl::FunctionRef<void(std::string_view)> word) const;

  const PreTokenizerTraits& traits() const { return traits_; }

 private:
  struct Regex;
  PreTokenizer(std::unique_ptr<Regex> regex, PreTokenizerTraits traits);
  // Split on text that is valid UTF-8 for PCRE2; words are cut from `words_from`,
  // which has the same length.
  void SplitValid(std::string_view subject, std::string_view words_from,
                  absl::FunctionRef<void(std::string_view)> word) const;

  std::unique_ptr<Regex> regex_;
  PreTokenizerTraits traits_;
};

// llama.cpp's regex as we give it to PCRE2: `\s` / `\S` spelled out as the
// White_Space class, `\p{L}`, `\p{N}`, `\p{M}` widened by the Unicode 15
// additions (exposed for tests).
std::string ExpandClasses(std::string_view pattern);

}  // namespace shardlm

#endif  // SHARDLM_COMMON_TOKENIZER_PRE_TOKENIZER_H_
