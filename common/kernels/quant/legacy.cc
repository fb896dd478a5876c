// Scalar reference kernels of the "legacy" 32-element block types: q4_0,
// q4_1, q5_0, q5_1, q8_0 and the activation format q8_1.
//
// Every type is reduced to one unpacked form, x_j = d * q_j + m (m = 0 for the
// symmetric types), by a small per-type Unpack; dequantize and vec_dot are
// written once over that form. The weight quantizers follow ggml's
// quantize_row_*_ref exactly, so the blocks we write are the ones llama.cpp
// writes; the activation quantizers and the dot products follow what
// llama.cpp's x86 CPU backend computes (ggml-cpu/arch/x86), rounding for
// rounding, so that logits match llama.cpp's bit for bit (ggml_order.h).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "common/base/fp16.h"
#include "common/kernels/quant/blocks.h"
#include "common/kernels/quant/ggml_order.h"
#include "common/kernels/quant/kernels.h"
#include "common/kernels/quant/tile_reference.h"

namespace shardlm::quant::ref {
namespace {

// One block with its integer levels made explicit: x_j = d * q[j] + m.
struct LegacyValues {
  int q[kQK];
  float d;
  float m;
};

// Low 4 bits of element j live in the low nibble of qs[j], those of element
// j + 16 in the high nibble.
void UnpackNibbles(const uint8_t* qs, int* q) {
  for (int j = 0; j < kQK / 2; ++j) {
    q[j] = qs[j] & 0xF;
    q[j + kQK / 2] = qs[j] >> 4;
  }
}

// Bit 4 of element j is bit j of the little-endian uint32 qh.
void AddHighBits(const uint8_t* qh_bytes, int* q) {
  uint32_t qh;
  std::memcpy(&qh, qh_bytes, sizeof(qh));
  for (int j = 0; j < kQK; ++j) q[j] |= static_cast<int>((qh >> j) & 1u) << 4;
}

// q4_0, q4_1, q5_0, q5_1: nibbles, plus a fifth bit for the q5 types. The
// _0 types centre their levels (q - 2^(bits - 1)); the _1 types add a min.
template <class B, int kBits, bool kMin>
struct Nibbles {
  using Block = B;
  static constexpr bool kHasMin = kMin;
  static void Unpack(const Block& b, LegacyValues* v) {
    UnpackNibbles(b.qs, v->q);
    if constexpr (kBits == 5) AddHighBits(b.qh, v->q);
    if constexpr (!kMin) {
      for (int& q : v->q) q -= 1 << (kBits - 1);
    }
    v->d = Fp16ToFp32(b.d);
    if constexpr (kMin) {
      v->m = Fp16ToFp32(b.m);
    } else {
      v->m = 0;
    }
  }
};
using Q4_0 = Nibbles<BlockQ4_0, 4, false>;
using Q4_1 = Nibbles<BlockQ4_1, 4, true>;
using Q5_0 = Nibbles<BlockQ5_0, 5, false>;
using Q5_1 = Nibbles<BlockQ5_1, 5, true>;

template <class B>
struct Q8 {  // q8_0 and q8_1 (whose s is only needed by the dot product)
  using Block = B;
  static constexpr bool kHasMin = false;
  static void Unpack(const Block& b, LegacyValues* v) {
    for (int j = 0; j < kQK; ++j) v->q[j] = b.qs[j];
    v->d = Fp16ToFp32(b.d);
    v->m = 0;
  }
};

// y = q * d (+ m): the int level converts to float first, as in ggml.
template <class T>
void Dequantize(const void* src, float* dst, int64_t n) {
  const auto* blocks = static_cast<const typename T::Block*>(src);
  LegacyValues v;
  for (int64_t ib = 0; ib < n / kQK; ++ib) {
    T::Unpack(blocks[ib], &v);
    for (int j = 0; j < kQK; ++j) {
      dst[ib * kQK + j] =
          T::kHasMin ? static_cast<float>(v.q[j]) * v.d + v.m : static_cast<float>(v.q[j]) * v.d;
    }
  }
}

// sum over blocks of d_w * d_a * sum_j(q_w[j] * q_a[j]), plus m_w * s_a for
// the types with a min, where s_a = d_a * sum_j q_a[j] comes stored in q8_1:
// sum_j (d_w q_w + m_w)(d_a q_a) = d_w d_a sum(q_w q_a) + m_w d_a sum(q_a).
// In ggml's order (ggml_vec_dot_*_q8_* for AVX2, and tinyBLAS_Q0_AVX, which
// computes the same): 8 float lanes, lane k += (d_w d_a) * (integer sum of
// elements 4k..4k+3) with one FMA per block, reduced by hsum_float_8; the
// min terms form their own FMA chain, added last.
template <class T>
float VecDot(int64_t n, const void* w, const void* a) {
  using Act = std::conditional_t<T::kHasMin, BlockQ8_1, BlockQ8_0>;
  const auto* wb = static_cast<const typename T::Block*>(w);
  const auto* ab = static_cast<const Act*>(a);
  LegacyValues v;
  float acc[8] = {};
  float summs = 0;
  for (int64_t ib = 0; ib < n / kQK; ++ib) {
    T::Unpack(wb[ib], &v);
    const float d = v.d * Fp16ToFp32(ab[ib].d);
    for (int k = 0; k < 8; ++k) {
      int lane = 0;
      for (int j = 4 * k; j < 4 * k + 4; ++j) lane += v.q[j] * ab[ib].qs[j];
      acc[k] = std::fma(d, static_cast<float>(lane), acc[k]);
    }
    if constexpr (T::kHasMin) summs = std::fma(v.m, Fp16ToFp32(ab[ib].s), summs);
  }
  if constexpr (T::kHasMin) return HsumLanes8(acc) + summs;
  return HsumLanes8(acc);
}

// Eight rows as llama.cpp computes weights it repacks into 8-row interleaved
// blocks (q4_0 -> q4_0_8x8 on AVX2 CPUs; ggml_gemv/gemm_q4_0_8x8_q8_0, which
// agree): one exact integer dot per block, then a sequential FMA chain over
// the blocks, acc = fma(isum, d_w d_a, acc), one chain per row.
template <class T>
void VecDotX8(int64_t n, const void* w, size_t row_bytes, const void* a, float* out) {
  static_assert(!T::kHasMin);
  const auto* ab = static_cast<const BlockQ8_0*>(a);
  LegacyValues v;
  for (int r = 0; r < 8; ++r) {
    const auto* wb = RowAt<typename T::Block>(w, row_bytes, r);
    float acc = 0;
    for (int64_t ib = 0; ib < n / kQK; ++ib) {
      T::Unpack(wb[ib], &v);
      int isum = 0;
      for (int j = 0; j < kQK; ++j) isum += v.q[j] * ab[ib].qs[j];
      acc = std::fma(static_cast<float>(isum), v.d * Fp16ToFp32(ab[ib].d), acc);
    }
    out[r] = acc;
  }
}

// Stores 32 levels (< 32) into the nibbles of qs and, for 5-bit types, bit 4
// into qh (the inverse of UnpackNibbles / AddHighBits).
void PackLevels(const uint8_t* l, uint8_t* qs, uint8_t* qh_bytes) {
  uint32_t qh = 0;
  for (int j = 0; j < kQK / 2; ++j) {
    qs[j] = static_cast<uint8_t>((l[j] & 0xF) | ((l[j + kQK / 2] & 0xF) << 4));
    qh |= static_cast<uint32_t>(l[j] >> 4) << j;
    qh |= static_cast<uint32_t>(l[j + kQK / 2] >> 4) << (j + kQK / 2);
  }
  if (qh_bytes != nullptr) std::memcpy(qh_bytes, &qh, sizeof(qh));
}

uint8_t* HighBits(BlockQ4_0&) { return nullptr; }
uint8_t* HighBits(BlockQ4_1&) { return nullptr; }
uint8_t* HighBits(BlockQ5_0& b) { return b.qh; }
uint8_t* HighBits(BlockQ5_1& b) { return b.qh; }

// quantize_row_q4_0_ref / q5_0_ref: d = max / -2^(bits-1), where max is the
// signed value of largest magnitude, so that value maps to level 0 exactly;
// level = min(2^bits - 1, trunc(x / d + 2^(bits-1) + 0.5)).
template <class Block, int kBits>
void QuantizeSymmetric(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<Block*>(dst);
  constexpr int kLevels = 1 << kBits;
  for (int64_t ib = 0; ib < n / kQK; ++ib, x += kQK) {
    float amax;
    const float max = SignedAbsMax(x, kQK, &amax);
    const float d = max / -(kLevels / 2);
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[ib].d = Fp32ToFp16(d);
    uint8_t l[kQK];
    for (int j = 0; j < kQK; ++j) {
      const int level = static_cast<int8_t>(x[j] * id + (kLevels / 2 + 0.5f));
      l[j] = static_cast<uint8_t>(std::min(kLevels - 1, level));
    }
    PackLevels(l, y[ib].qs, HighBits(y[ib]));
  }
}

// quantize_row_q4_1_ref / q5_1_ref: d = (max - min) / (2^bits - 1), m = min,
// level = trunc((x - min) / d + 0.5) (clamped; ggml omits the clamp for q5_1
// where it can only matter if rounding pushes a level past 31).
template <class Block, int kBits>
void QuantizeMinMax(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<Block*>(dst);
  constexpr int kMaxLevel = (1 << kBits) - 1;
  for (int64_t ib = 0; ib < n / kQK; ++ib, x += kQK) {
    float min = x[0], max = x[0];
    for (int j = 1; j < kQK; ++j) {
      min = std::min(min, x[j]);
      max = std::max(max, x[j]);
    }
    const float d = (max - min) / kMaxLevel;
    const float id = d != 0 ? 1.0f / d : 0.0f;
    y[ib].d = Fp32ToFp16(d);
    y[ib].m = Fp32ToFp16(min);
    uint8_t l[kQK];
    for (int j = 0; j < kQK; ++j) {
      const int level = static_cast<int8_t>((x[j] - min) * id + 0.5f);
      l[j] = static_cast<uint8_t>(std::min(kMaxLevel, level));
    }
    PackLevels(l, y[ib].qs, HighBits(y[ib]));
  }
}

// The q8 quantizers, two kinds. Weights (quantize_row_q8_0_ref / q8_1_ref):
// d = amax / 127, q = roundf(x / d) (ties away from zero). Activations
// (llama.cpp's x86 quantize_row_q8_0 / q8_1, and ggml_quantize_mat_q8_0_4x8,
// which rounds the same): the levels use id = 127 / amax instead of 1 / d and
// round to nearest even (_mm256_round_ps). Both store d as f16 and, for q8_1,
// s = f16(d * sum q) with the unrounded d.
template <class Block, bool kActivation>
void QuantizeQ8(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<Block*>(dst);
  for (int64_t ib = 0; ib < n / kQK; ++ib, x += kQK) {
    float amax = 0;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127;
    const float id = kActivation ? (amax != 0 ? 127.f / amax : 0.0f) : (d != 0 ? 1.0f / d : 0.0f);
    y[ib].d = Fp32ToFp16(d);
    int sum = 0;
    for (int j = 0; j < kQK; ++j) {
      y[ib].qs[j] = static_cast<int8_t>(kActivation ? NearestInt(x[j] * id)
                                                    : static_cast<int>(std::round(x[j] * id)));
      sum += y[ib].qs[j];
    }
    if constexpr (std::is_same_v<Block, BlockQ8_1>)
      y[ib].s = Fp32ToFp16(d * static_cast<float>(sum));
  }
}

}  // namespace

void DequantizeQ4_0(const void* src, float* dst, int64_t n) { Dequantize<Q4_0>(src, dst, n); }
void DequantizeQ4_1(const void* src, float* dst, int64_t n) { Dequantize<Q4_1>(src, dst, n); }
void DequantizeQ5_0(const void* src, float* dst, int64_t n) { Dequantize<Q5_0>(src, dst, n); }
void DequantizeQ5_1(const void* src, float* dst, int64_t n) { Dequantize<Q5_1>(src, dst, n); }
void DequantizeQ8_0(const void* src, float* dst, int64_t n) {
  Dequantize<Q8<BlockQ8_0>>(src, dst, n);
}
void DequantizeQ8_1(const void* src, float* dst, int64_t n) {
  Dequantize<Q8<BlockQ8_1>>(src, dst, n);
}

void QuantizeQ4_0(const float* src, void* dst, int64_t n) {
  QuantizeSymmetric<BlockQ4_0, 4>(src, dst, n);
}
void QuantizeQ5_0(const float* src, void* dst, int64_t n) {
  QuantizeSymmetric<BlockQ5_0, 5>(src, dst, n);
}
void QuantizeQ4_1(const float* src, void* dst, int64_t n) {
  QuantizeMinMax<BlockQ4_1, 4>(src, dst, n);
}
void QuantizeQ5_1(const float* src, void* dst, int64_t n) {
  QuantizeMinMax<BlockQ5_1, 5>(src, dst, n);
}
void QuantizeQ8_0(const float* src, void* dst, int64_t n) {
  QuantizeQ8<BlockQ8_0, false>(src, dst, n);
}
void QuantizeQ8_1(const float* src, void* dst, int64_t n) {
  QuantizeQ8<BlockQ8_1, false>(src, dst, n);
}

float VecDotQ4_0(int64_t n, const void* w, const void* a) { return VecDot<Q4_0>(n, w, a); }
float VecDotQ4_1(int64_t n, const void* w, const void* a) { return VecDot<Q4_1>(n, w, a); }
float VecDotQ5_0(int64_t n, const void* w, const void* a) { return VecDot<Q5_0>(n, w, a); }
float VecDotQ5_1(int64_t n, const void* w, const void* a) { return VecDot<Q5_1>(n, w, a); }
float VecDotQ8_0(int64_t n, const void* w, const void* a) { return VecDot<Q8<BlockQ8_0>>(n, w, a); }
SHARDLM_REFERENCE_TILE(Q4_0)
SHARDLM_REFERENCE_TILE(Q4_1)
SHARDLM_REFERENCE_TILE(Q5_0)
SHARDLM_REFERENCE_TILE(Q5_1)
SHARDLM_REFERENCE_TILE(Q8_0)
void VecDotX8Q4_0(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
                  int n_act, float* out, bool /*gemm*/) {
  for (int t = 0; t < n_act; ++t)
    VecDotX8<Q4_0>(n, w, row_bytes, static_cast<const uint8_t*>(a) + t * a_stride, out + 8 * t);
}
void QuantizeActivationQ8_0(const float* src, void* dst, int64_t n) {
  QuantizeQ8<BlockQ8_0, true>(src, dst, n);
}
void QuantizeActivationQ8_1(const float* src, void* dst, int64_t n) {
  QuantizeQ8<BlockQ8_1, true>(src, dst, n);
}

}  // namespace shardlm::quant::ref
