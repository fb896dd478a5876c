// Element-wise and row-wise operations of the Llama block, each computed the
// way llama.cpp's CPU backend computes it, rounding for rounding (sums of
// squares and softmax denominators in double as ggml's ggml_float, its
// vectorized exp; see common/kernels/tensor_format.h ForwardKernels), so our logits
// equal its logits.
#ifndef SHARDLM_WORKER_OPS_H_
#define SHARDLM_WORKER_OPS_H_

#include <cstdint>

namespace shardlm {

// out = x / sqrt(mean(x^2) + eps) * weight, over n elements.
void RmsNorm(const float* x, const float* weight, int n, float eps, float* out);

// Largest rope.dimension_count supported (ModelConfig rejects larger ones).
inline constexpr int kMaxRopeDims = 512;

// Rotary position embedding, llama "NORM" mode: within each head of
// `head_dim` values, rotate adjacent pairs (2i, 2i+1) for 2i < n_rot by the
// angle pos * base^(-2i / n_rot); values past n_rot are left alone.
void Rope(float* x, int n_heads, int head_dim, int n_rot, int pos, float freq_base);

// gate[i] = silu(gate[i]) * up[i], silu(x) = x / (1 + e^-x) (ggml's exp),
// over one row of n values (ggml's exp differs in the last n % 16).
void SwiGlu(float* gate, const float* up, int n);

// In place: x = softmax(x) over n values (ggml_vec_soft_max_f32, then the
// scale by 1 / sum).
void Softmax(float* x, int n);

// y += x over n values.
void AddInPlace(float* y, const float* x, int n);

}  // namespace shardlm

#endif  // SHARDLM_WORKER_OPS_H_
