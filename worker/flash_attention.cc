// llama.cpp's CPU flash attention for one query row and head
// (ggml_compute_forward_flash_attn_ext_f16_one_chunk; with a quantized K
// and V neither its tiled batch path nor its split-KV decode path applies,
// those are f16/f32 only, so a prompt batch and a single token are attended
// the same way):
//   Q_q = quantize_row_q8_0(q)                   (K's vec_dot type: q8_0 for q8_0 and q4_0)
//   M = -inf, S = 0, VKQ = 0
//   for each cached position j (masked ones are skipped, not added):
//     s = vec_dot(k_j, Q_q) * scale              (+ the mask's 0)
//     if s > M: ms = expf(M_old - s), M = s, VKQ *= ms, vs = 1
//     else:     ms = 1, vs = expf(s - M)
//     VKQ += vs * dequantize(v_j)                (exact; then ggml_vec_mad_f32: FMAs)
//     S = S * ms + vs                            (two roundings, no FMA)
//   out = VKQ * (1 / S)
// The order of the sums differs from the non-flash path (attention.cc:
// softmax over all scores first, then a mul_mat), so results differ from an
// f16 cache's by more than the q8_0 rounding alone.
#include "worker/flash_attention.h"

#include <cmath>
#include <cstring>
#include <vector>

namespace shardlm {

void FlashAttendHead(const float* q, const KvRows& keys, const KvRows& values, KvType kv_type,
                     int n_pos, const AttentionShape& s, int h, float* out,
                     std::vector<float>* scratch, KernelSet set) {
  const int hd = s.head_dim;
  const int kvh = h / (s.n_head / s.n_head_kv);
  const size_t head_offset = static_cast<size_t>(kvh) * KvRowBytes(kv_type, hd);
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const TensorFormat& kv = Format(KvGgmlType(kv_type), set);
  const TensorFormat& qf = Format(kv.vec_dot_type, set);
  const ForwardKernels& fk = Forward(set);

  // scratch layout: [hd accumulator][hd dequantized V row][the quantized query]
  const size_t q_bytes = static_cast<size_t>(hd / qf.info.block_size) * qf.info.block_bytes;
  scratch->resize(2 * hd + (q_bytes + sizeof(float) - 1) / sizeof(float));
  float* vkq = scratch->data();
  float* v32 = vkq + hd;
  void* q_q = v32 + hd;
  std::memset(vkq, 0, sizeof(float) * hd);
  qf.quantize_activation(q + static_cast<size_t>(h) * hd, q_q, hd);

  float sum = 0.0f;
  float max = -INFINITY;
  for (int j = 0; j < n_pos; ++j) {
    const float score = kv.vec_dot(hd, keys.row(j) + head_offset, q_q) * scale;
    float ms = 1.0f;  // rescales the sums when the maximum grows
    float vs = 1.0f;  // expf(score - max)
    if (score > max) {
      ms = std::exp(max - score);
      max = score;
      for (int i = 0; i < hd; ++i) vkq[i] *= ms;
    } else {
      vs = std::exp(score - max);
    }
    kv.dequantize(values.row(j) + head_offset, v32, hd);  // d * q: exact in float
    fk.mad_f32(hd, v32, vs, vkq);
    sum = sum * ms + vs;  // two roundings (llama.cpp's: not contracted; this build neither)
  }
  const float inv = sum == 0.0f ? 0.0f : 1.0f / sum;
  float* o = out + static_cast<size_t>(h) * hd;
  for (int i = 0; i < hd; ++i) o[i] = vkq[i] * inv;
}

}  // namespace shardlm
