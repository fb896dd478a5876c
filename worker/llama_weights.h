// Views of the GGUF tensors one stage needs: its layers [first, last), plus
// the token embedding on the first stage and the final norm and output head
// on the last (with a tied head, no output.weight, that is token_embd: then
// the first and the last stage bind it). What an architecture adds (biases,
// q/k norms, RoPE factors) is bound as its ArchFeatures say. Shapes and
// types are validated against the hyper-parameters before anything is
// computed; only these tensors are paged in.
#ifndef SHARDLM_WORKER_LLAMA_WEIGHTS_H_
#define SHARDLM_WORKER_LLAMA_WEIGHTS_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/gguf.h"
#include "common/model/model_config.h"
#include "worker/matmul.h"

namespace shardlm {

// Matrix shapes are [rows, cols] as ggml stores them row-major: a row is
// ne[0] = cols contiguous elements of the input dimension, and there is one
// row per output (ne[1]), so y = W x is one dot product per row. Tensor names
// are the GGUF's (llama_weights.cc).
struct LayerWeights {
  std::vector<float> attn_norm;  // [n_embd]                        blk.N.attn_norm
  WeightMatrix wq;               // [n_head * head_dim, n_embd]     blk.N.attn_q
  WeightMatrix wk;               // [n_head_kv * head_dim, n_embd]  blk.N.attn_k
  WeightMatrix wv;               // [n_head_kv * head_dim, n_embd]  blk.N.attn_v
  WeightMatrix wo;               // [n_embd, n_head * head_dim]     blk.N.attn_output
  // Architecture extras (common/model/architecture.h); empty when unused.
  std::vector<float> bq;        // [n_head * head_dim]             blk.N.attn_q.bias: qwen2
  std::vector<float> bk;        // [n_head_kv * head_dim]          blk.N.attn_k.bias
  std::vector<float> bv;        // [n_head_kv * head_dim]          blk.N.attn_v.bias
  std::vector<float> q_norm;    // [head_dim] (every head)         blk.N.attn_q_norm: qwen3
  std::vector<float> k_norm;    // [head_dim] (every head)         blk.N.attn_k_norm
  std::vector<float> ffn_norm;  // [n_embd]                        blk.N.ffn_norm
  WeightMatrix ffn_gate;        // [n_ff, n_embd]                  blk.N.ffn_gate
  WeightMatrix ffn_up;          // [n_ff, n_embd]                  blk.N.ffn_up
  WeightMatrix ffn_down;        // [n_embd, n_ff]                  blk.N.ffn_down
};

struct StageWeights {
  WeightMatrix token_embd;           // [n_vocab, n_embd]: a row per token; first stage only
  std::vector<LayerWeights> layers;  // layers[i] is model layer first + i
  // [n_rot / 2] RoPE frequency divisors (Llama 3.1's rope_freqs.weight, one
  // tensor for every layer); empty: all 1.
  std::vector<float> rope_freqs;
  std::vector<float> output_norm;  // [n_embd]; last stage only
  WeightMatrix output;             // [n_vocab, n_embd] (token_embd if tied); last stage only

  // Interleaved copies of the matrices whose type has a faster 8-row layout
  // (matmul.h Interleave); the mapped originals are evicted.
  std::vector<std::unique_ptr<uint8_t[]>> interleaved_storage;

  // Binds the tensors of layers [first, last) and asks the kernel to page
  // them in; with `interleave`, copies the matrices that have an interleaved
  // layout into it. Errors name the missing or mis-shaped tensor, or an
  // unsupported tensor type.
  static absl::StatusOr<StageWeights> Load(const GgufFile& file, const ModelConfig& config,
                                           int first, int last, bool interleave = true);
  // Bytes of weights this stage reads.
  int64_t bytes() const;

 private:
  // Interleaves *m when its type has a layout; `evict`: drop the mapped
  // original's pages (nothing else reads them).
  void InterleaveMatrix(const GgufFile& file, WeightMatrix* m, bool evict);
};

}  // namespace shardlm

#endif  // SHARDLM_WORKER_LLAMA_WEIGHTS_H_
