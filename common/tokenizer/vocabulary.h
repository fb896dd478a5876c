// The tokenizer's view of a model: the `tokenizer.ggml.*` metadata of a GGUF
// as plain vectors, with nothing of the weights. Kept separate from the
// Tokenizer so tests, fuzzers and tools can build a vocabulary in memory.
#ifndef SHARDLM_COMMON_TOKENIZER_VOCABULARY_H_
#define SHARDLM_COMMON_TOKENIZER_VOCABULARY_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace shardlm {

class GgufFile;

// GGUF `tokenizer.ggml.token_type` values (llama.cpp's llama_token_type).
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

std::string_view TokenTypeName(TokenType type);

inline constexpr int32_t kNoToken = -1;

struct Vocabulary {
  // `tokenizer.ggml.model`: "llama" (SentencePiece) and "gpt2" (byte-level
  // BPE) are supported; others are refused by Tokenizer::Create.
  std::string model = "llama";
  // `tokenizer.ggml.pre` (pre-tokenizer name, only meaningful for "gpt2";
  // see pre_tokenizer.h for the supported ones).
  std::string pre;
  // `general.name`: llama.cpp keys a few per-token attributes on it (Phi-3's
  // special tokens swallow the whitespace after them).
  std::string name;

  // One entry per token id. `scores` and `types` have the same length as
  // `tokens` (FromGguf fills 0 / kNormal when the GGUF omits them).
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<TokenType> types;
  // `tokenizer.ggml.merges` ("a b" per line), used only by "gpt2".
  std::vector<std::string> merges;

  // Special ids; kNoToken when the vocabulary has none. Defaults are
  // llama.cpp's for SentencePiece vocabularies (FromGguf uses its "gpt2"
  // defaults, BOS = EOS = 11 and no unknown token, for BPE ones).
  int32_t bos_id = 1;
  int32_t eos_id = 2;
  int32_t unk_id = 0;
  int32_t pad_id = kNoToken;
  int32_t eot_id = kNoToken;  // end of turn (chat models)
  int32_t eom_id = kNoToken;  // end of message (tool calls)

  // `tokenizer.ggml.add_bos_token`. When the GGUF lacks it, FromGguf uses
  // llama.cpp's default: true for SentencePiece; for BPE it depends on the
  // pre-tokenizer (Llama 3: true, Qwen: false).
  bool add_bos = true;
  bool add_eos = false;  // `tokenizer.ggml.add_eos_token`
  // `tokenizer.ggml.add_space_prefix` (SentencePiece's dummy prefix); BPE
  // vocabularies never add one.
  bool add_space_prefix = true;

  int32_t size() const { return static_cast<int32_t>(tokens.size()); }

  // Reads `tokenizer.ggml.*` from an opened GGUF. Fails (naming the key) on a
  // missing model or token list, on arrays whose length differs from the
  // token list, and on non-integer types. An out-of-range special id (such as
  // the 0xFFFFFFFF that converters write for "none") leaves the default, as
  // llama.cpp does, with a warning unless it is the "none" marker.
  static absl::StatusOr<Vocabulary> FromGguf(const GgufFile& gguf);
};

}  // namespace shardlm

#endif  // SHARDLM_COMMON_TOKENIZER_VOCABULARY_H_
