#include "worker/attention.h"

#include <cmath>

#include "common/tensor_format.h"
#include "worker/ops.h"

namespace shardlm {
namespace {

// Rounds n floats through f16 (in place).
void RoundToF16(float* x, int n, std::vector<uint16_t>* tmp) {
  const TensorFormat& f16 = Format(GgmlType::kF16);
  tmp->resize(n);
  f16.quantize(x, tmp->data(), n);
  f16.dequantize(tmp->data(), x, n);
}

}  // namespace

void AttendHead(const float* q, const void* keys, const void* values, KvType kv_type, int n_pos,
                const AttentionShape& s, int h, float* out, std::vector<float>* scratch) {
  const int hd = s.head_dim;
  const int kvh = h / (s.n_head / s.n_head_kv);
  const int64_t row = static_cast<int64_t>(s.n_head_kv) * hd;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  // scratch layout: [n_pos scores][hd query][hd key/value row]
  scratch->resize(n_pos + 2 * hd);
  float* scores = scratch->data();
  float* qh = scores + n_pos;
  float* tmp = qh + hd;
  for (int i = 0; i < hd; ++i) qh[i] = q[h * hd + i];
  thread_local std::vector<uint16_t> f16_tmp;
  if (kv_type == KvType::kF16) RoundToF16(qh, hd, &f16_tmp);

  const TensorFormat& f16 = Format(GgmlType::kF16);
  for (int j = 0; j < n_pos; ++j) {
    const float* k;
    if (kv_type == KvType::kF32) {
      k = static_cast<const float*>(keys) + j * row + kvh * hd;
    } else {
      f16.dequantize(static_cast<const uint16_t*>(keys) + j * row + kvh * hd, tmp, hd);
      k = tmp;
    }
    float dot = 0.0f;
    for (int i = 0; i < hd; ++i) dot += qh[i] * k[i];
    scores[j] = dot * scale;
  }
  Softmax(scores, n_pos);
  if (kv_type == KvType::kF16) RoundToF16(scores, n_pos, &f16_tmp);

  float* o = out + h * hd;
  for (int i = 0; i < hd; ++i) o[i] = 0.0f;
  for (int j = 0; j < n_pos; ++j) {
    const float* v;
    if (kv_type == KvType::kF32) {
      v = static_cast<const float*>(values) + j * row + kvh * hd;
    } else {
      f16.dequantize(static_cast<const uint16_t*>(values) + j * row + kvh * hd, tmp, hd);
      v = tmp;
    }
    const float p = scores[j];
    for (int i = 0; i < hd; ++i) o[i] += p * v[i];
  }
}

void StoreKv(const float* k, const float* v, int n, KvType kv_type, void* k_dst, void* v_dst) {
  if (kv_type == KvType::kF32) {
    std::copy(k, k + n, static_cast<float*>(k_dst));
    std::copy(v, v + n, static_cast<float*>(v_dst));
  } else {
    const TensorFormat& f16 = Format(GgmlType::kF16);
    f16.quantize(k, k_dst, n);
    f16.quantize(v, v_dst, n);
  }
}

}  // namespace shardlm
