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

// In place, each of n_rows rows of n values: x = x / sqrt(mean(x^2) + eps) *
// weight. Qwen3's q/k norm: one row per head (n = head_dim), weight shared.
void RmsNormRows(float* x, const float* weight, int n_rows, int n, float eps);

// y[r * n + i] += bias[i] for r < n_rows (ggml_add of a broadcast bias row
// after a projection: qwen2's q/k/v biases).
void AddRowBias(float* y, const float* bias, int n_rows, int n);

// Rotary position embedding: worker/rope.h.

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
