// Rotary position embedding as ggml's CPU rope_f32 (ggml_rope_ext) computes
// it, for both pairings llama.cpp uses and with per-pair frequency factors.
//
// Pair i of a head (0 <= i < n_rot / 2) turns by the angle
//   a_i(pos) = freq_scale * (pos * base^(-2i / n_rot) / ff_i)
// where ff_i = freq_factors[i] (Llama 3.1's rope_freqs.weight) or 1, and
//   NORM: (x[2i], x[2i+1])          <- (x0 cos a - x1 sin a, x0 sin a + x1 cos a)
//   NEOX: (x[i], x[i + n_rot / 2])  <- the same with those two values.
// Values past n_rot are left alone.
#ifndef SHARDLM_WORKER_ROPE_H_
#define SHARDLM_WORKER_ROPE_H_

#include <span>

#include "common/model/architecture.h"
#include "common/model/model_config.h"

namespace shardlm {

struct RopeParams {
  RopeType type = RopeType::kNorm;
  int n_rot = 0;  // even, <= head_dim, <= kMaxRopeDims
  float freq_base = 10000.0f;
  float freq_scale = 1.0f;              // linear scaling: 1 / factor
  std::span<const float> freq_factors;  // [n_rot / 2], or empty: every factor 1

  static RopeParams FromConfig(const ModelConfig& c, std::span<const float> freq_factors) {
    return {c.rope_type(), c.n_rot, c.rope_freq_base, c.rope_freq_scale, freq_factors};
  }
};

// cache[2i] = cos a_i(pos), cache[2i + 1] = sin a_i(pos) for i < n_rot / 2,
// rounded as ggml_rope_cache_init rounds them: base^(-2i / n_rot) by repeated
// multiplication with powf(base, -2 / n_rot), starting from (float)pos.
void RopeAngles(const RopeParams& p, int pos, float* cache);

// Rotates the first n_rot values of each of `n_heads` heads of `head_dim`
// values in x by the angles of `cache` (RopeAngles), paired as `type` says.
void RopeRotate(RopeType type, int n_rot, const float* cache, float* x, int n_heads, int head_dim);

// RopeAngles + RopeRotate for one position.
void Rope(const RopeParams& p, int pos, float* x, int n_heads, int head_dim);

}  // namespace shardlm

#endif  // SHARDLM_WORKER_ROPE_H_
