// Special tokens as llama.cpp treats them, for both vocabulary types:
//  - which tokens are cut out of the text before encoding (control, unknown
//    and user-defined tokens, longest text first; control and unknown ones
//    only when special parsing is asked for),
//  - which tokens end a generation,
//  - llama.cpp's corrections by token text, since converters often get the
//    types wrong: end-of-turn / end-of-generation / fill-in-the-middle texts
//    ("<|eot_id|>", "<|im_end|>", "<|endoftext|>", "</s>", "<|fim_pad|>",
//    ...) become control tokens, so they are only parsed when asked (Qwen's
//    vocabulary has an ordinary "</s>", Phi-3's a user-defined one); the
//    EOT/EOM ids are found by text when the GGUF has none,
//  - per-token whitespace stripping: for Phi-3 (general.name contains
//    "phi-3"/"phi3") every special token except <unk>, <s> and
//    <|endoftext|> swallows the whitespace after it (HF's rstrip).
#ifndef SHARDLM_COMMON_TOKENIZER_SPECIAL_TOKENS_H_
#define SHARDLM_COMMON_TOKENIZER_SPECIAL_TOKENS_H_

#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/functional/function_ref.h"
#include "common/tokenizer/vocabulary.h"

namespace shardlm {

struct SpecialTokens {
  // Tokens that special-text parsing looks for, longest text first.
  std::vector<int32_t> parse_order;
  // Per token: kStripLeft | kStripRight, or 0.
  std::vector<uint8_t> strip;
  // Ids that end a generation: EOS, EOT, EOM and the texts above.
  absl::flat_hash_set<int32_t> end_of_generation;

  static constexpr uint8_t kStripLeft = 1;   // whitespace before it is dropped
  static constexpr uint8_t kStripRight = 2;  // whitespace after it is dropped
};

// Applies the corrections above to `vocab` (types, eot_id, eom_id) and
// builds the tables. `lookup` gives the id of a token text or kNoToken.
SpecialTokens PrepareSpecialTokens(Vocabulary* vocab,
                                   absl::FunctionRef<int32_t(std::string_view)> lookup);

// A piece of the input: text [offset, offset + length), or one token.
struct Fragment {
  size_t offset;
  size_t length;
  int32_t token;  // kNoToken for text
};

// Step 1 of encoding (llama.cpp tokenizer_st_partition): cuts the special
// tokens out of `text`; each token, longest first, takes its leftmost
// non-overlapping occurrences in every remaining text fragment.
std::vector<Fragment> PartitionSpecial(std::string_view text, const Vocabulary& vocab,
                                       const SpecialTokens& special, bool parse_special);

}  // namespace shardlm

#endif  // SHARDLM_COMMON_TOKENIZER_SPECIAL_TOKENS_H_
