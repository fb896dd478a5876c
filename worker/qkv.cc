#include "worker/qkv.h"

#include "worker/ops.h"
#include "worker/rope.h"

namespace shardlm {

void PrepareQkv(const ModelConfig& c, const LayerWeights& w, std::span<const float> rope_freqs,
                std::span<const int32_t> positions, float* q, float* k, float* v) {
  const int n = static_cast<int>(positions.size());
  const int n_q = c.n_embd_q(), n_kv = c.n_embd_kv();
  if (!w.bq.empty()) AddRowBias(q, w.bq.data(), n, n_q);
  if (!w.bk.empty()) AddRowBias(k, w.bk.data(), n, n_kv);
  if (!w.bv.empty()) AddRowBias(v, w.bv.data(), n, n_kv);
  // Every head of every token is one row of head_dim values.
  if (!w.q_norm.empty()) RmsNormRows(q, w.q_norm.data(), n * c.n_head, c.head_dim, c.rms_eps);
  if (!w.k_norm.empty()) RmsNormRows(k, w.k_norm.data(), n * c.n_head_kv, c.head_dim, c.rms_eps);
  const RopeParams rope = RopeParams::FromConfig(c, rope_freqs);
  float cache[kMaxRopeDims];
  for (int t = 0; t < n; ++t) {
    // One set of angles per position, for q and for k (ggml computes the same
    // cache in each rope op).
    RopeAngles(rope, positions[t], cache);
    RopeRotate(rope.type, rope.n_rot, cache, q + static_cast<int64_t>(t) * n_q, c.n_head,
               c.head_dim);
    RopeRotate(rope.type, rope.n_rot, cache, k + static_cast<int64_t>(t) * n_kv, c.n_head_kv,
               c.head_dim);
  }
}

}  // namespace shardlm
