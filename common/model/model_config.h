// Hyper-parameters of a Llama-family model read from GGUF metadata (keys
// prefixed with the architecture: `llama.*`, `qwen2.*`, `qwen3.*`), shared by
// the workers (shapes of their tensors) and the coordinator (context length,
// vocabulary size), plus the model fingerprint that lets mismatched peers
// fail fast.
#ifndef SHARDLM_COMMON_MODEL_MODEL_CONFIG_H_
#define SHARDLM_COMMON_MODEL_MODEL_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/model/architecture.h"
#include "common/model/gguf.h"

namespace shardlm {

// Largest rope.dimension_count supported (FromGguf rejects larger ones; the
// RoPE angle cache of worker/rope.h is this size).
inline constexpr int kMaxRopeDims = 512;

struct ModelConfig {
  // Keys below are `{arch}.…`, arch = general.architecture.
  std::string architecture;         // "llama", "qwen2", "qwen3"
  ArchFeatures features;            // what the architecture adds to the Llama block
  std::string name;                 // general.name, for display
  int n_vocab = 0;                  // rows of token_embd
  int n_ctx_train = 0;              // context_length
  int n_embd = 0;                   // embedding_length
  int n_layer = 0;                  // block_count
  int n_ff = 0;                     // feed_forward_length
  int n_head = 0;                   // attention.head_count
  int n_head_kv = 0;                // attention.head_count_kv (defaults to n_head)
  int head_dim = 0;                 // attention.key_length (= value_length), else n_embd / n_head
  int n_rot = 0;                    // rope.dimension_count (defaults to head_dim)
  float rms_eps = 1e-5f;            // attention.layer_norm_rms_epsilon
  float rope_freq_base = 10000.0f;  // rope.freq_base
  float rope_freq_scale = 1.0f;     // 1 / rope.scaling.factor (linear scaling), else 1
  bool tied_output = false;         // no output.weight: the head reuses token_embd

  RopeType rope_type() const { return features.rope_type; }
  int n_embd_q() const { return n_head * head_dim; }  // width of q and of attn_output's input

  int n_embd_kv() const { return n_head_kv * head_dim; }

  // Reads and validates the hyper-parameters. Errors name the file and key:
  // a missing required key, an architecture shardlm cannot run (UNIMPLEMENTED,
  // naming it), RoPE scaling other than linear, or shapes that do not divide
  // (n_embd % n_head without key_length, n_head % n_head_kv, odd rope dims).
  static absl::StatusOr<ModelConfig> FromGguf(const GgufFile& file);
};

// A 64-bit fingerprint of what makes two files the same model for a pipeline:
// the hyper-parameters, the tensor table (names, types, shapes, offsets) and
// the file size. Printed as 16 hex digits.
std::string ModelFingerprint(const GgufFile& file);

}  // namespace shardlm

#endif  // SHARDLM_COMMON_MODEL_MODEL_CONFIG_H_
