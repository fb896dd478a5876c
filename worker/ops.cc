#include "worker/ops.h"

#include <cmath>

#include "common/kernels/tensor_format.h"

namespace shardlm {

void RmsNorm(const float* x, const float* weight, int n, float eps, float* out) {
  double sum = 0.0;
  for (int i = 0; i < n; ++i) sum += static_cast<double>(x[i] * x[i]);
  const float mean = static_cast<float>(sum / n);
  const float scale = 1.0f / std::sqrt(mean + eps);
  for (int i = 0; i < n; ++i) out[i] = x[i] * scale * weight[i];
}

void Rope(float* x, int n_heads, int head_dim, int n_rot, int pos, float freq_base) {
  // theta_i = pos * base^(-2i/n_rot), built by repeated multiplication as
  // ggml's rope cache does, so the angles round the same way.
  const float theta_scale = std::pow(freq_base, -2.0f / static_cast<float>(n_rot));
  // ModelConfig guarantees n_rot <= kMaxRopeDims.
  float cache[kMaxRopeDims];
  float theta = static_cast<float>(pos);
  const int pairs = n_rot / 2;
  for (int i = 0; i < pairs; ++i) {
    cache[2 * i] = std::cos(theta);
    cache[2 * i + 1] = std::sin(theta);
    theta *= theta_scale;
  }
  for (int h = 0; h < n_heads; ++h) {
    float* v = x + static_cast<int64_t>(h) * head_dim;
    for (int i = 0; i < pairs; ++i) {
      const float c = cache[2 * i], s = cache[2 * i + 1];
      const float x0 = v[2 * i], x1 = v[2 * i + 1];
      // ggml's rotate_pairs, as GCC contracts it: x0 c - x1 s and
      // x0 s + x1 c with the first product fused.
      v[2 * i] = std::fma(x0, c, -(x1 * s));
      v[2 * i + 1] = std::fma(x0, s, x1 * c);
    }
  }
}

void SwiGlu(float* gate, const float* up, int n) { Forward().swiglu(n, gate, up, gate); }

void Softmax(float* x, int n) {
  float max = x[0];
  for (int i = 1; i < n; ++i) max = x[i] > max ? x[i] : max;
  const double sum = Forward().softmax_exp(n, x, max, x);
  const float inv = static_cast<float>(1.0 / sum);
  for (int i = 0; i < n; ++i) x[i] *= inv;
}

void AddInPlace(float* y, const float* x, int n) {
  for (int i = 0; i < n; ++i) y[i] += x[i];
}

}  // namespace shardlm
