// What happens to a layer's q, k and v between their projections and
// attention, per architecture, in llama.cpp's order (its graphs in
// llama-model.cpp):
//   q += bq, k += bk, v += bv               biases (qwen2; llama when present)
//   q_h = rms(q_h) * q_norm, k_h likewise   per head of head_dim (qwen3)
//   q, k = RoPE(q, pos), RoPE(k, pos)       NORM or NEOX, freq factors (rope.h)
#ifndef SHARDLM_WORKER_QKV_H_
#define SHARDLM_WORKER_QKV_H_

#include <cstdint>
#include <span>

#include "common/model/model_config.h"
#include "worker/llama_weights.h"

namespace shardlm {

// For the n = positions.size() tokens of a batch, in place:
//   q  // [n, n_head * head_dim]
//   k  // [n, n_head_kv * head_dim]
//   v  // [n, n_head_kv * head_dim]
// `rope_freqs`: StageWeights::rope_freqs ([n_rot / 2] or empty).
void PrepareQkv(const ModelConfig& c, const LayerWeights& w, std::span<const float> rope_freqs,
                std::span<const int32_t> positions, float* q, float* k, float* v);

}  // namespace shardlm

#endif  // SHARDLM_WORKER_QKV_H_
