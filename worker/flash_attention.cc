// llama.cpp's CPU flash attention for one query row and head
// (ggml_compute_forward_flash_attn_ext_f16_one_chunk; with a q8_0 K and V
// neither its tiled batch path nor its split-KV decode path applies, those
// are f16/f32 only, so a prompt batch and a single token are attended the
// same way):
//   Q_q = quantize_row_q8_0(q)                   (K's vec_dot type)
//   M = -inf, S = 0, VKQ = 0
//   for each cached position j (masked ones are skipped, not added):
//     s = vec_dot_q8_0_q8_0(k_j, Q_q) * scale   (+ the mask's 0)
//     if s > M: ms = expf(M_old - s), M = s, VKQ *= ms, vs = 1
//     else:     ms = 1, vs = expf(s - M)
//     VKQ += vs * dequantize(v_j)                (ggml_vec_mad_f32: FMAs)
//     S = S * ms + vs                            (two roundings, no FMA)
//   out = VKQ * (1 / S)
// The order of the sums differs from the non-flash path (attention.cc:
// softmax over all scores first, then a mul_mat), so results differ from an
// f16 cache's by more than the q8_0 rounding alone.
#include "worker/flash_attention.h"

#include <cmath>
#include <cstring>

#include "common/kernels/quant/blocks.h"
#include "worker/kv_cache.h"

namespace shardlm {

void FlashAttendHeadQ8_0(const float* q, const KvRows& keys, const KvRows& values, int n_pos,
                         const AttentionShape& s, int h, float* out, std::vector<float>* scratch,
                         KernelSet set) {
  const int hd = s.head_dim;
  const int kvh = h / (s.n_head / s.n_head_kv);
  const size_t head_bytes = KvRowBytes(KvType::kQ8_0, hd);
  const size_t head_offset = static_cast<size_t>(kvh) * head_bytes;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  const TensorFormat& q8 = Format(GgmlType::kQ8_0, set);
  const ForwardKernels& fk = Forward(set);

  // scratch layout: [hd accumulator][the query as q8_0 blocks]
  scratch->resize(hd + (head_bytes + sizeof(float) - 1) / sizeof(float));
  float* vkq = scratch->data();
  void* q_q8 = vkq + hd;
  std::memset(vkq, 0, sizeof(float) * hd);
  q8.quantize_activation(q + static_cast<size_t>(h) * hd, q_q8, hd);

  float sum = 0.0f;
  float max = -INFINITY;
  for (int j = 0; j < n_pos; ++j) {
    const float score = q8.vec_dot(hd, keys.row(j) + head_offset, q_q8) * scale;
    float ms = 1.0f;  // rescales the sums when the maximum grows
    float vs = 1.0f;  // expf(score - max)
    if (score > max) {
      ms = std::exp(max - score);
      max = score;
      for (int i = 0; i < hd; ++i) vkq[i] *= ms;
    } else {
      vs = std::exp(score - max);
    }
    fk.mad_q8_0(hd, values.row(j) + head_offset, vs, vkq);
    sum = sum * ms + vs;  // two roundings (llama.cpp's: not contracted; this build neither)
  }
  const float inv = sum == 0.0f ? 0.0f : 1.0f / sum;
  float* o = out + static_cast<size_t>(h) * hd;
  for (int i = 0; i < hd; ++i) o[i] = vkq[i] * inv;
}

}  // namespace shardlm
