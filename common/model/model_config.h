// Llama hyper-parameters read from GGUF metadata (`llama.*` keys), shared by
// the workers (shapes of their tensors) and the coordinator (context length,
// vocabulary size), plus the model fingerprint that lets mismatched peers
// fail fast.
#ifndef SHARDLM_COMMON_MODEL_MODEL_CONFIG_H_
#define SHARDLM_COMMON_MODEL_MODEL_CONFIG_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/model/gguf.h"

namespace shardlm {

struct ModelConfig {
  std::string architecture;   // "llama"
  std::string name;           // general.name, for display
  int n_vocab = 0;            // rows of token_embd
  int n_ctx_train = 0;        // llama.context_length
  int n_embd = 0;             // llama.embedding_length
  int n_layer = 0;            // llama.block_count
  int n_ff = 0;               // llama.feed_forward_length
  int n_head = 0;             // llama.attention.head_count
  int n_head_kv = 0;          // llama.attention.head_count_kv (defaults to n_head)
  int head_dim = 0;           // n_embd / n_head
  int n_rot = 0;              // llama.rope.dimension_count (defaults to head_dim)
  float rms_eps = 1e-5f;      // llama.attention.layer_norm_rms_epsilon
  float rope_freq_base = 10000.0f;  // llama.rope.freq_base
  bool tied_output = false;   // no output.weight: the head reuses token_embd

  int n_embd_kv() const { return n_head_kv * head_dim; }

  // Reads and validates the hyper-parameters. Errors name the file and key:
  // a missing required key, an architecture other than llama, or shapes that
  // do not divide (n_embd % n_head, n_head % n_head_kv, odd rope dims).
  static absl::StatusOr<ModelConfig> FromGguf(const GgufFile& file);
};

// A 64-bit fingerprint of what makes two files the same model for a pipeline:
// the hyper-parameters, the tensor table (names, types, shapes, offsets) and
// the file size. Printed as 16 hex digits.
std::string ModelFingerprint(const GgufFile& file);

}  // namespace shardlm

#endif  // SHARDLM_COMMON_MODEL_MODEL_CONFIG_H_
