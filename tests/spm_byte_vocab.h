// The start of a small SentencePiece vocabulary that tests and fuzzers extend
// with their own pieces (header-only: the fuzzers link no test library).
#ifndef SHARDLM_TESTS_SPM_BYTE_VOCAB_H_
#define SHARDLM_TESTS_SPM_BYTE_VOCAB_H_

#include "absl/strings/str_format.h"
#include "common/tokenizer/vocabulary.h"

namespace shardlm::testing {

// Ids 0 <unk>, 1 <s>, 2 </s>, 3..258 the byte tokens <0x00>..<0xFF>; every
// score 0.
inline Vocabulary SpmByteVocab() {
  Vocabulary v;
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.types = {TokenType::kUnknown, TokenType::kControl, TokenType::kControl};
  for (int b = 0; b < 256; ++b) {
    v.tokens.push_back(absl::StrFormat("<0x%02X>", b));
    v.types.push_back(TokenType::kByte);
  }
  v.scores.assign(v.tokens.size(), 0.0f);
  return v;
}

}  // namespace shardlm::testing

#endif  // SHARDLM_TESTS_SPM_BYTE_VOCAB_H_
