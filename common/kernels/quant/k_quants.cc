// Scalar reference dequantize / vec_dot of the K-quants (q2_K..q6_K) and the
// q8_K activation format (its quantizer included: it runs every matmul).
//
// Every K-quant super-block of 256 is reduced by a per-type Unpack to one
// form: unsigned levels u_i, sixteen integer sub-block scales s_j and mins m_j
// (one per 16 elements; the 32-element sub-blocks of q4_K/q5_K repeat theirs),
// and two float scales, with
//     x_i = d * s_j * u_i - dmin * m_j        (q2_K, q4_K, q5_K)
//     x_i = d * s_j * (u_i - kOffset)         (q3_K: 4, q6_K: 32)
// The offset types are the second form with dmin = d and m_j = kOffset * s_j.
// Against q8_K activations a_i = d_a * q_i with bsum_j = sum of q over
// sub-block j, one super-block contributes
//     d d_a sum_j s_j (u . q)_j - dmin d_a sum_j m_j bsum_j.
// The integer sums are exact; the float steps follow llama.cpp's x86 kernels
// (ggml_vec_dot_*_q8_K for AVX2) so results match it bit for bit: 8 float
// lanes, lane k collecting the integers of elements 4k..4k+3 of each 32-chunk
// with one FMA per super-block, and each type's own handling of the min term
// (see MinMode). Weights llama.cpp repacks (q4_K, and q2_K on AVX-512 CPUs)
// follow its 8-row gemv instead (VecDotX8).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/base/fp16.h"
#include "common/kernels/quant/blocks.h"
#include "common/kernels/quant/ggml_order.h"
#include "common/kernels/quant/kernels.h"
#include "common/kernels/quant/tile_reference.h"

namespace shardlm::quant::ref {
namespace {

struct KValues {
  uint8_t u[kQKK];
  int s[16];
  int m[16];
  float d;
  float dmin;
};

struct Q2K {
  using Block = BlockQ2_K;
  static constexpr int kOffset = 0;
  static constexpr MinMode kMinMode = MinMode::kLanesFirst;
  static constexpr int kGemmSteps = 2;  // ggml_gemm_q2_K_8x8: 128 elements
  static void Unpack(const Block& b, KValues* v) {
    for (int h = 0; h < 2; ++h)
      for (int k = 0; k < 4; ++k)
        for (int l = 0; l < 32; ++l) v->u[128 * h + 32 * k + l] = (b.qs[32 * h + l] >> (2 * k)) & 3;
    for (int j = 0; j < 16; ++j) {
      v->s[j] = b.scales[j] & 0xF;
      v->m[j] = b.scales[j] >> 4;
    }
    v->d = Fp16ToFp32(b.d);
    v->dmin = Fp16ToFp32(b.dmin);
  }
};

struct Q3K {
  using Block = BlockQ3_K;
  static constexpr int kOffset = 4;
  static constexpr MinMode kMinMode = MinMode::kSigned;
  static void Unpack(const Block& b, KValues* v) {
    for (int h = 0; h < 2; ++h)
      for (int k = 0; k < 4; ++k)
        for (int l = 0; l < 32; ++l) {
          const int lo = (b.qs[32 * h + l] >> (2 * k)) & 3;
          const int hi = (b.hmask[l] >> (4 * h + k)) & 1;
          v->u[128 * h + 32 * k + l] = static_cast<uint8_t>(lo | (hi << 2));
        }
    int8_t sc[16];
    UnpackScalesQ3K(b.scales, sc);
    for (int j = 0; j < 16; ++j) {
      v->s[j] = sc[j];
      v->m[j] = kOffset * sc[j];
    }
    v->d = v->dmin = Fp16ToFp32(b.d);
  }
};

// q4_K and q5_K: nibbles of qs, plus bit c of qh[l] as bit 4 of element
// 32c + l for q5_K.
template <class B, bool kFifthBit>
struct Q45K {
  using Block = B;
  static constexpr int kOffset = 0;
  static constexpr MinMode kMinMode = kFifthBit ? MinMode::kScalar : MinMode::kLanes4;
  static constexpr int kGemmSteps = 4;  // ggml_gemm_q4_K_8x8: 64 elements
  static void Unpack(const Block& b, KValues* v) {
    for (int g = 0; g < 4; ++g)
      for (int l = 0; l < 32; ++l) {
        v->u[64 * g + l] = b.qs[32 * g + l] & 0xF;
        v->u[64 * g + 32 + l] = b.qs[32 * g + l] >> 4;
      }
    if constexpr (kFifthBit) {
      for (int c = 0; c < 8; ++c)
        for (int l = 0; l < 32; ++l) v->u[32 * c + l] |= ((b.qh[l] >> c) & 1) << 4;
    }
    uint8_t sc[8], m[8];
    UnpackScaleMinK4(b.scales, sc, m);
    for (int j = 0; j < 16; ++j) {
      v->s[j] = sc[j / 2];
      v->m[j] = m[j / 2];
    }
    v->d = Fp16ToFp32(b.d);
    v->dmin = Fp16ToFp32(b.dmin);
  }
};
using Q4K = Q45K<BlockQ4_K, false>;
using Q5K = Q45K<BlockQ5_K, true>;

struct Q6K {
  using Block = BlockQ6_K;
  static constexpr int kOffset = 32;
  static constexpr MinMode kMinMode = MinMode::kIntLanes;
  static void Unpack(const Block& b, KValues* v) {
    for (int h = 0; h < 2; ++h)
      for (int k = 0; k < 4; ++k)
        for (int l = 0; l < 32; ++l) {
          const int lo = (b.ql[64 * h + l + 32 * (k & 1)] >> (4 * (k >> 1))) & 0xF;
          const int hi = (b.qh[32 * h + l] >> (2 * k)) & 3;
          v->u[128 * h + 32 * k + l] = static_cast<uint8_t>(lo | (hi << 4));
        }
    for (int j = 0; j < 16; ++j) {
      v->s[j] = b.scales[j];
      v->m[j] = kOffset * b.scales[j];
    }
    v->d = v->dmin = Fp16ToFp32(b.d);
  }
};

// Evaluated as ggml does: dl = d * s_j first, then dl * level (- dmin * m_j).
template <class T>
void Dequantize(const void* src, float* dst, int64_t n) {
  const auto* blocks = static_cast<const typename T::Block*>(src);
  KValues v;
  for (int64_t i = 0; i < n / kQKK; ++i, dst += kQKK) {
    T::Unpack(blocks[i], &v);
    for (int j = 0; j < 16; ++j) {
      const float dl = v.d * static_cast<float>(v.s[j]);
      const float ml = v.dmin * static_cast<float>(v.m[j]);
      for (int l = 16 * j; l < 16 * j + 16; ++l) {
        dst[l] = T::kOffset != 0 ? dl * static_cast<float>(v.u[l] - T::kOffset)
                                 : dl * static_cast<float>(v.u[l]) - ml;
      }
    }
  }
}

template <class T>
float VecDot(int64_t n, const void* w, const void* a) {
  const auto* wb = static_cast<const typename T::Block*>(w);
  const auto* ab = static_cast<const BlockQ8_K*>(a);
  KValues v;
  float acc[8] = {}, acc_min[4] = {}, summs = 0;
  for (int64_t i = 0; i < n / kQKK; ++i) {
    T::Unpack(wb[i], &v);
    const BlockQ8_K& y = ab[i];
    int32_t lane[8] = {};
    for (int e = 0; e < kQKK; ++e) {
      const int level = T::kMinMode == MinMode::kSigned ? v.u[e] - T::kOffset : v.u[e];
      lane[(e % 32) / 4] += v.s[e / 16] * level * y.qs[e];
    }
    const float d = y.d * v.d;
    const float neg_dmin = -y.d * v.dmin;
    // sums of q over the 32-element sub-blocks, and the mins per 32
    int32_t bsum32[8], min32[8];
    for (int j = 0; j < 8; ++j) {
      bsum32[j] = y.bsums[2 * j] + y.bsums[2 * j + 1];
      min32[j] = v.m[2 * j];
    }
    if constexpr (T::kMinMode == MinMode::kLanesFirst) {
      for (int k = 0; k < 8; ++k) {
        const int32_t m = v.m[2 * k] * y.bsums[2 * k] + v.m[2 * k + 1] * y.bsums[2 * k + 1];
        acc[k] = std::fma(neg_dmin, static_cast<float>(m), acc[k]);
      }
    } else if constexpr (T::kMinMode == MinMode::kIntLanes) {
      for (int k = 0; k < 8; ++k) {
        lane[k] -= T::kOffset * (v.s[2 * k] * y.bsums[2 * k] + v.s[2 * k + 1] * y.bsums[2 * k + 1]);
      }
    } else if constexpr (T::kMinMode == MinMode::kLanes4) {
      for (int k = 0; k < 4; ++k) {
        const int32_t m = min32[2 * k] * bsum32[2 * k] + min32[2 * k + 1] * bsum32[2 * k + 1];
        acc_min[k] = std::fma(neg_dmin, static_cast<float>(m), acc_min[k]);
      }
    } else if constexpr (T::kMinMode == MinMode::kScalar) {
      int32_t m = 0;
      for (int j = 0; j < 8; ++j) m += min32[j] * bsum32[j];
      summs = std::fma(neg_dmin, static_cast<float>(m), summs);
    }
    for (int k = 0; k < 8; ++k) acc[k] = std::fma(d, static_cast<float>(lane[k]), acc[k]);
  }
  if constexpr (T::kMinMode == MinMode::kLanes4) return HsumLanes8(acc) + HsumLanes4(acc_min);
  if constexpr (T::kMinMode == MinMode::kScalar) return HsumLanes8(acc) + summs;
  return HsumLanes8(acc);
}

// Eight rows as llama.cpp's repacked 8-row kernels compute them
// (ggml_gemv_q4_K_8x8_q8_K, q2_K_8x8): per step one exact integer scale sum
// and one min sum, each feeding its own sequential FMA chain; the result is
// their difference. A step is a super-block in the gemv kernels; the gemm
// kernels (groups of 4 activation rows) take 4 steps of 64 (q4_K) or 2 of
// 128 (q2_K) elements.
template <class T>
void VecDotX8(int64_t n, const void* w, size_t row_bytes, const void* a, float* out, bool gemm) {
  static_assert(T::kOffset == 0);
  const int steps = gemm ? T::kGemmSteps : 1, step = kQKK / steps;
  const auto* ab = static_cast<const BlockQ8_K*>(a);
  KValues v;
  for (int r = 0; r < 8; ++r) {
    const auto* wb = RowAt<typename T::Block>(w, row_bytes, r);
    float acc = 0, acc_min = 0;
    for (int64_t i = 0; i < n / kQKK; ++i) {
      T::Unpack(wb[i], &v);
      for (int e0 = 0; e0 < kQKK; e0 += step) {
        int32_t isum = 0, imin = 0;
        for (int e = e0; e < e0 + step; ++e) isum += v.s[e / 16] * v.u[e] * ab[i].qs[e];
        for (int j = e0 / 16; j < (e0 + step) / 16; ++j) imin += v.m[j] * ab[i].bsums[j];
        acc = std::fma(static_cast<float>(isum), v.d * ab[i].d, acc);
        acc_min = std::fma(static_cast<float>(imin), v.dmin * ab[i].d, acc_min);
      }
    }
    out[r] = acc - acc_min;
  }
}

}  // namespace

void DequantizeQ2_K(const void* src, float* dst, int64_t n) { Dequantize<Q2K>(src, dst, n); }
void DequantizeQ3_K(const void* src, float* dst, int64_t n) { Dequantize<Q3K>(src, dst, n); }
void DequantizeQ4_K(const void* src, float* dst, int64_t n) { Dequantize<Q4K>(src, dst, n); }
void DequantizeQ5_K(const void* src, float* dst, int64_t n) { Dequantize<Q5K>(src, dst, n); }
void DequantizeQ6_K(const void* src, float* dst, int64_t n) { Dequantize<Q6K>(src, dst, n); }

float VecDotQ2_K(int64_t n, const void* w, const void* a) { return VecDot<Q2K>(n, w, a); }
float VecDotQ3_K(int64_t n, const void* w, const void* a) { return VecDot<Q3K>(n, w, a); }
float VecDotQ4_K(int64_t n, const void* w, const void* a) { return VecDot<Q4K>(n, w, a); }
float VecDotQ5_K(int64_t n, const void* w, const void* a) { return VecDot<Q5K>(n, w, a); }
float VecDotQ6_K(int64_t n, const void* w, const void* a) { return VecDot<Q6K>(n, w, a); }
SHARDLM_REFERENCE_TILE(Q3_K)
SHARDLM_REFERENCE_TILE(Q5_K)
SHARDLM_REFERENCE_TILE(Q6_K)
void VecDotX8Q2_K(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
                  int n_act, float* out, bool gemm) {
  for (int t = 0; t < n_act; ++t) {
    VecDotX8<Q2K>(n, w, row_bytes, static_cast<const uint8_t*>(a) + t * a_stride, out + 8 * t,
                  gemm);
  }
}
void VecDotX8Q4_K(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
                  int n_act, float* out, bool gemm) {
  for (int t = 0; t < n_act; ++t) {
    VecDotX8<Q4K>(n, w, row_bytes, static_cast<const uint8_t*>(a) + t * a_stride, out + 8 * t,
                  gemm);
  }
}

void DequantizeQ8_K(const void* src, float* dst, int64_t n) {
  const auto* blocks = static_cast<const BlockQ8_K*>(src);
  for (int64_t i = 0; i < n / kQKK; ++i)
    for (int j = 0; j < kQKK; ++j) dst[i * kQKK + j] = blocks[i].d * blocks[i].qs[j];
}

// quantize_row_q8_K_ref: iscale = -127 / max with max the signed value of
// largest magnitude (the first one on ties), q = min(127, nearest(iscale x)),
// d = 1 / iscale, bsums = sums of 16. An all-zero block gets d = 0 and zero
// sums (ggml leaves its bsums unset there).
void QuantizeQ8_K(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_K*>(dst);
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    float amax;
    const float max = SignedAbsMax(x, kQKK, &amax);
    if (amax == 0) {
      std::memset(&y[i], 0, sizeof(y[i]));
      continue;
    }
    const float iscale = -127.f / max;
    for (int j = 0; j < kQKK; ++j)
      y[i].qs[j] = static_cast<int8_t>(std::min(127, NearestInt(iscale * x[j])));
    for (int j = 0; j < kQKK / 16; ++j) {
      int sum = 0;
      for (int l = 0; l < 16; ++l) sum += y[i].qs[16 * j + l];
      y[i].bsums[j] = static_cast<int16_t>(sum);
    }
    y[i].d = 1 / iscale;
  }
}

}  // namespace shardlm::quant::ref
