#include "worker/rope.h"

#include <cmath>
#include <cstdint>

namespace shardlm {

void RopeAngles(const RopeParams& p, int pos, float* cache) {
  const float theta_scale = std::pow(p.freq_base, -2.0f / static_cast<float>(p.n_rot));
  const bool has_factors = !p.freq_factors.empty();
  float theta = static_cast<float>(pos);
  for (int i = 0; i < p.n_rot / 2; ++i) {
    // ggml's rope_yarn with ext_factor 0 and mscale 1: theta_extrap = theta / ff,
    // angle = freq_scale * theta_extrap (exact when both are 1).
    const float extrap = has_factors ? theta / p.freq_factors[i] : theta;
    const float angle = p.freq_scale * extrap;
    cache[2 * i] = std::cos(angle);
    cache[2 * i + 1] = std::sin(angle);
    theta *= theta_scale;
  }
}

void RopeRotate(RopeType type, int n_rot, const float* cache, float* x, int n_heads, int head_dim) {
  // NORM pairs (2i, 2i + 1), NEOX pairs (i, i + n_rot / 2); pair i turns by a_i.
  const int stride = type == RopeType::kNeox ? 1 : 2;
  const int offset = type == RopeType::kNeox ? n_rot / 2 : 1;
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<int64_t>(h) * head_dim;
    for (int i = 0; i < n_rot / 2; ++i) {
      const float c = cache[2 * i], s = cache[2 * i + 1];
      float* a = v + i * stride;
      float* b = a + offset;
      const float x0 = *a, x1 = *b;
      // ggml's rotate_pairs, as GCC contracts it: x0 c - x1 s and
      // x0 s + x1 c with the first product fused.
      *a = std::fma(x0, c, -(x1 * s));
      *b = std::fma(x0, s, x1 * c);
    }
  }
}

void Rope(const RopeParams& p, int pos, float* x, int n_heads, int head_dim) {
  float cache[kMaxRopeDims];  // ModelConfig guarantees n_rot <= kMaxRopeDims
  RopeAngles(p, pos, cache);
  RopeRotate(p.type, p.n_rot, cache, x, n_heads, head_dim);
}

}  // namespace shardlm
