// Attention of one query head, computed as llama.cpp's CPU backend computes
// it without flash attention: kq = K q (one mul_mat over the cache view),
// softmax(kq * scale) (ggml_soft_max_ext), then kqv = V^T softmax (another
// mul_mat, V stored transposed). Which kernel ggml's mul_mat takes, and so
// the summation order, depends on the cache type and on whether the batch
// holds several tokens:
//   kq,  f32 cache: ggml_vec_dot_f32 always (the permuted query is not
//        contiguous, so llamafile's sgemm declines);
//   kq,  f16 cache: query rounded to f16; sgemm (one 16-lane chain) for a
//        batch, ggml_vec_dot_f16 for one token;
//   kqv: sgemm (16 slots) for a batch, vec_dot (64 slots) for one token; with
//        an f16 cache the probabilities are rounded to f16 first.
// Positions past the sequence are masked to probability 0 in llama.cpp and
// add exact zeros, so only the first n_pos enter here.
#include "worker/attention.h"

#include <cmath>
#include <cstdint>

#include "common/kernels/tensor_format.h"
#include "worker/ops.h"

namespace shardlm {
namespace {

// Rounds n floats through f16 (in place), keeping the f16 bits in `bits`.
void RoundToF16(float* x, int n, std::vector<uint16_t>* bits) {
  const TensorFormat& f16 = Format(GgmlType::kF16);
  bits->resize(n);
  f16.quantize(x, bits->data(), n);
  f16.dequantize(bits->data(), x, n);
}

}  // namespace

void AttendHead(const float* q, const KvRows& keys, const KvRows& values, KvType kv_type, int n_pos,
                const AttentionShape& s, int h, float* out, std::vector<float>* scratch,
                bool batched) {
  const int hd = s.head_dim;
  const int kvh = h / (s.n_head / s.n_head_kv);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const bool f16 = kv_type == KvType::kF16;
  const int slots = batched ? 16 : 64;
  // scratch layout: [n_pos scores][hd query][slots * hd mixing sums]
  scratch->resize(n_pos + hd + static_cast<size_t>(slots) * hd);
  float* scores = scratch->data();
  float* qh = scores + n_pos;
  float* mix = qh + hd;
  for (int i = 0; i < hd; ++i) qh[i] = q[h * hd + i];
  thread_local std::vector<uint16_t> q16, p16;

  VecDotFn dot = Format(GgmlType::kF32).vec_dot;
  const void* qv = qh;
  size_t elem = sizeof(float);
  if (f16) {
    RoundToF16(qh, hd, &q16);
    const TensorFormat& f = Format(GgmlType::kF16);
    dot = batched && f.vec_dot_batch != nullptr ? f.vec_dot_batch : f.vec_dot;
    qv = q16.data();
    elem = sizeof(uint16_t);
  }
  const size_t head_bytes = static_cast<size_t>(kvh) * hd * elem;
  for (int j = 0; j < n_pos; ++j) scores[j] = dot(hd, keys.row(j) + head_bytes, qv) * scale;
  Softmax(scores, n_pos);
  if (f16) RoundToF16(scores, n_pos, &p16);

  const ForwardKernels& fk = Forward();
  (f16 ? fk.mix_rows_f16 : fk.mix_rows_f32)(n_pos, scores, values.rows, int64_t{kvh} * hd, hd,
                                            slots, mix, out + h * hd);
}

void StoreKv(const float* k, const float* v, int n, KvType kv_type, void* k_dst, void* v_dst) {
  if (kv_type == KvType::kF32) {
    std::copy(k, k + n, static_cast<float*>(k_dst));
    std::copy(v, v + n, static_cast<float*>(v_dst));
  } else if (kv_type == KvType::kQ8_0) {
    // llama.cpp's set_rows into a q8_0 cache uses the CPU from_float of
    // q8_0 (quantize_row_q8_0), the activation quantizer, not the _ref one.
    const TensorFormat& q8 = Format(GgmlType::kQ8_0);
    q8.quantize_activation(k, k_dst, n);
    q8.quantize_activation(v, v_dst, n);
  } else if (kv_type == KvType::kQ4_0) {
    // q4_0's CPU from_float is quantize_row_q4_0_ref, our weight quantizer.
    const TensorFormat& q4 = Format(GgmlType::kQ4_0);
    q4.quantize(k, k_dst, n);
    q4.quantize(v, v_dst, n);
  } else {
    const TensorFormat& f16 = Format(GgmlType::kF16);
    f16.quantize(k, k_dst, n);
    f16.quantize(v, v_dst, n);
  }
}

}  // namespace shardlm
