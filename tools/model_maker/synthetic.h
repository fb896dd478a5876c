// Building blocks of the synthetic model maker (tools/model_maker/model_maker.h):
// counter-based deterministic random numbers, the byte-level llama vocabulary
// used when no --vocab-from file is given, and llama.cpp's rules for which
// tensor gets which quantization type in a file of a given "ftype".
#ifndef SHARDLM_TOOLS_MODEL_MAKER_SYNTHETIC_H_
#define SHARDLM_TOOLS_MODEL_MAKER_SYNTHETIC_H_

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/ggml_type.h"
#include "common/tokenizer/vocabulary.h"

namespace shardlm {

// Deterministic pseudo-random values for element indices of one named
// stream: value(i) depends only on (seed, stream name, i), never on thread
// scheduling, so rows can be generated in parallel and the file's bytes are
// the same on every run and machine (integer hashing, IEEE double scaling).
class SyntheticStream {
 public:
  SyntheticStream(uint64_t seed, std::string_view name);

  // Approximately N(0, 1): the Irwin-Hall sum of four 16-bit fields of a
  // SplitMix64 hash, centred and scaled to unit variance (bounded at +-3.46).
  double Normal(uint64_t index) const;
  // Uniform in [0, 1) with 53 random bits.
  double Uniform(uint64_t index) const;

 private:
  uint64_t Hash(uint64_t index) const;
  uint64_t key_;
};

// Token types as written to tokenizer.ggml.token_type (the tokenizer's
// TokenType values, which are llama.cpp's numbers).
inline constexpr int32_t kTokenNormal = static_cast<int32_t>(TokenType::kNormal);
inline constexpr int32_t kTokenUnknown = static_cast<int32_t>(TokenType::kUnknown);
inline constexpr int32_t kTokenControl = static_cast<int32_t>(TokenType::kControl);
inline constexpr int32_t kTokenUserDefined = static_cast<int32_t>(TokenType::kUserDefined);
inline constexpr int32_t kTokenUnused = static_cast<int32_t>(TokenType::kUnused);
inline constexpr int32_t kTokenByte = static_cast<int32_t>(TokenType::kByte);

struct SyntheticVocab {
  std::vector<std::string> tokens;
  std::vector<float> scores;
  std::vector<int32_t> types;
};

// A valid llama (SentencePiece BPE, byte fallback) vocabulary of exactly
// n_vocab tokens: <unk>, <s>, </s>, the 256 byte tokens <0x00>..<0xFF>, then
// "▁", single characters, and "▁"-prefixed / lower-case letter pieces that
// BPE can merge step by step, scored so shorter pieces merge first.
// n_vocab must be at least 260.
absl::StatusOr<SyntheticVocab> MakeSyntheticVocab(int64_t n_vocab);

// The --type values: a base tensor type plus llama.cpp's per-tensor rules.
struct WeightMix {
  const char* name;        // "q4_k_m"
  GgmlType base;           // type of most matrices
  uint32_t file_type;      // general.file_type (llama_ftype)
  bool more_bits_k_m;      // *_K_M: Q6_K for attn_v / ffn_down of some layers
};

// Parses a --type value (case-insensitive); the error lists the valid ones.
absl::StatusOr<WeightMix> ParseWeightMix(std::string_view name);
// "f32|f16|bf16|q4_0|..." for help texts.
std::string WeightMixNames();

// Which tensor of the model a matrix is (norm vectors are always F32).
enum class MatrixKind { kTokenEmbd, kOutput, kAttnQ, kAttnK, kAttnV, kAttnOutput, kFfnGate, kFfnUp, kFfnDown };

// llama.cpp's choice (llama_tensor_get_type, no imatrix) for one matrix:
// output.weight gets Q6_K in every quantized mix but q8_0; *_K_M mixes give Q6_K to attn_v and ffn_down of
// layer i when i < n/8, i >= 7n/8 or (i - n/8) % 3 == 2. Rows that do not
// fit the chosen type's block fall back as llama.cpp does (Q4_K -> Q5_0,
// Q5_K -> Q5_1, Q6_K -> Q8_0), and to F16 where even that does not fit;
// `fallback` (if non-null) is set to true when that happened.
GgmlType MatrixType(const WeightMix& mix, MatrixKind kind, int layer, int n_layer, int64_t row_length,
                    bool* fallback);

// llama.cpp's use_more_bits(i_layer, n_layers).
bool UseMoreBits(int layer, int n_layer);

}  // namespace shardlm

#endif  // SHARDLM_TOOLS_MODEL_MAKER_SYNTHETIC_H_
