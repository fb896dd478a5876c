// NEON kernels of the legacy 32-element block types and the q8_0 / q8_1
// quantizers (aarch64; built twice, plain and with the dot product: see
// simd_neon.h).
//
// A block of any weight type becomes 32 signed int8 levels in two registers
// (elements 0..15 and 16..31, a per-type Levels()); Dot4 (sdot, or widening
// multiplies) leaves in int32 lane k the exact sum of elements 4k..4k+3 —
// the very lanes of llama.cpp's AVX2 kernels — and one FMA per block adds
// (d_w d_a) * lane to 8 float lanes, reduced by hsum_float_8 at the end. So
// the results equal the reference kernels (legacy.cc) to the bit.
#include <arm_neon.h>

#include <cmath>
#include <cstdint>
#include <type_traits>

#include "common/kernels/quant/blocks.h"
#include "common/kernels/quant/kernels_neon.h"
#include "common/kernels/quant/simd_neon.h"

namespace shardlm::quant::SHARDLM_NEON_NS {
namespace {

// Levels(b, lo, hi): the block's signed levels q (x = d q + m), elements
// 0..15 in lo and 16..31 in hi.
struct Q4_0 {
  using Block = BlockQ4_0;
  static constexpr bool kHasMin = false;
  static void Levels(const Block& b, int8x16_t* lo, int8x16_t* hi) {
    Nibbles(b.qs, lo, hi);
    *lo = vsubq_s8(*lo, vdupq_n_s8(8));
    *hi = vsubq_s8(*hi, vdupq_n_s8(8));
  }
};

struct Q4_1 {
  using Block = BlockQ4_1;
  static constexpr bool kHasMin = true;
  static void Levels(const Block& b, int8x16_t* lo, int8x16_t* hi) { Nibbles(b.qs, lo, hi); }
};

// Bit 4 of element j is bit j of qh.
template <class Block>
void FiveBitLevels(const Block& b, int8x16_t* lo, int8x16_t* hi) {
  Nibbles(b.qs, lo, hi);
  *lo = vorrq_s8(*lo, HighBit16(b.qh));
  *hi = vorrq_s8(*hi, HighBit16(b.qh + 2));
}

struct Q5_0 {
  using Block = BlockQ5_0;
  static constexpr bool kHasMin = false;
  static void Levels(const Block& b, int8x16_t* lo, int8x16_t* hi) {
    FiveBitLevels(b, lo, hi);
    *lo = vsubq_s8(*lo, vdupq_n_s8(16));
    *hi = vsubq_s8(*hi, vdupq_n_s8(16));
  }
};

struct Q5_1 {
  using Block = BlockQ5_1;
  static constexpr bool kHasMin = true;
  static void Levels(const Block& b, int8x16_t* lo, int8x16_t* hi) { FiveBitLevels(b, lo, hi); }
};

struct Q8_0 {
  using Block = BlockQ8_0;
  static constexpr bool kHasMin = false;
  static void Levels(const Block& b, int8x16_t* lo, int8x16_t* hi) {
    *lo = vld1q_s8(b.qs);
    *hi = vld1q_s8(b.qs + 16);
  }
};

template <class T>
using ActOf = std::conditional_t<T::kHasMin, BlockQ8_1, BlockQ8_0>;

// The 8 float lanes of one output, as two registers.
struct Lanes8 {
  float32x4_t lo = vdupq_n_f32(0), hi = vdupq_n_f32(0);
  // lanes += d * (integer lanes of levels . activation block)
  void Add(int8x16_t q_lo, int8x16_t q_hi, const int8_t* a, float d) {
    const int32x4_t zero = vdupq_n_s32(0);
    lo = vfmaq_n_f32(lo, vcvtq_f32_s32(Dot4(zero, q_lo, vld1q_s8(a))), d);
    hi = vfmaq_n_f32(hi, vcvtq_f32_s32(Dot4(zero, q_hi, vld1q_s8(a + 16))), d);
  }
  float Sum() const { return HsumLanes8(lo, hi); }
};

template <class T>
float VecDot(int64_t n, const void* w, const void* a) {
  const auto* wb = static_cast<const typename T::Block*>(w);
  const auto* ab = static_cast<const ActOf<T>*>(a);
  Lanes8 acc;
  float summs = 0;  // m_w * s_a, types with a min: their own FMA chain
  for (int64_t ib = 0; ib < n / kQK; ++ib) {
    int8x16_t lo, hi;
    T::Levels(wb[ib], &lo, &hi);
    acc.Add(lo, hi, ab[ib].qs, F16(wb[ib].d) * F16(ab[ib].d));
    if constexpr (T::kHasMin) summs = std::fma(F16(wb[ib].m), F16(ab[ib].s), summs);
  }
  if constexpr (T::kHasMin) return acc.Sum() + summs;
  return acc.Sum();
}

// VecDot for kTileRows rows x kActs activation rows, each weight block
// unpacked once per tile; every output keeps VecDot's own chain, so it
// equals VecDot to the bit.
template <class T, int kActs>
void VecDotTile(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
                float* out) {
  using Act = ActOf<T>;
  constexpr int kRows = kTileRows;
  const typename T::Block* rows[kRows];
  for (int r = 0; r < kRows; ++r) rows[r] = RowAt<typename T::Block>(w, row_bytes, r);
  const Act* act[kActs];
  for (int t = 0; t < kActs; ++t) act[t] = RowAt<Act>(a, a_stride, t);
  Lanes8 acc[kActs][kRows];
  float summs[kActs][kRows] = {};
  for (int64_t ib = 0; ib < n / kQK; ++ib) {
    int8x16_t lo[kRows], hi[kRows];
    float dw[kRows];
    for (int r = 0; r < kRows; ++r) {
      T::Levels(rows[r][ib], &lo[r], &hi[r]);
      dw[r] = F16(rows[r][ib].d);
    }
    for (int t = 0; t < kActs; ++t) {
      const float da = F16(act[t][ib].d);
      for (int r = 0; r < kRows; ++r) {
        acc[t][r].Add(lo[r], hi[r], act[t][ib].qs, dw[r] * da);
        if constexpr (T::kHasMin) {
          summs[t][r] = std::fma(F16(rows[r][ib].m), F16(act[t][ib].s), summs[t][r]);
        }
      }
    }
  }
  for (int t = 0; t < kActs; ++t) {
    for (int r = 0; r < kRows; ++r) {
      out[kRows * t + r] = acc[t][r].Sum();
      if constexpr (T::kHasMin) out[kRows * t + r] += summs[t][r];
    }
  }
}

template <class T>
void VecDotTileActs(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
                    int n_act, float* out) {
  WithActs(n_act, [&](auto acts) {
    VecDotTile<T, decltype(acts)::value>(n, w, row_bytes, a, a_stride, out);
  });
}

// Eight q4_0 rows as llama.cpp's repacked kernel sums them (legacy.cc
// VecDotX8): per row an exact integer block sum, then one FMA chain over the
// blocks, acc_r = fma(isum_r, d_r d_a, acc_r); rows 0..3 and 4..7 share one
// FMA each.
template <int kActs>
void X8Q4_0(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
            float* out) {
  const BlockQ8_0* act[kActs];
  for (int t = 0; t < kActs; ++t) act[t] = RowAt<BlockQ8_0>(a, a_stride, t);
  const BlockQ4_0* rows[8];
  for (int r = 0; r < 8; ++r) rows[r] = RowAt<BlockQ4_0>(w, row_bytes, r);
  float32x4_t acc[kActs][2];
  for (auto& v : acc) v[0] = v[1] = vdupq_n_f32(0);
  for (int64_t ib = 0; ib < n / kQK; ++ib) {
    int8x16_t lo[8], hi[8];
    uint16_t d_bits[8];
    for (int r = 0; r < 8; ++r) {
      Q4_0::Levels(rows[r][ib], &lo[r], &hi[r]);
      d_bits[r] = rows[r][ib].d;
    }
    const float16x8_t dh = vreinterpretq_f16_u16(vld1q_u16(d_bits));
    const float32x4_t dw[2] = {vcvt_f32_f16(vget_low_f16(dh)), vcvt_high_f32_f16(dh)};
    for (int t = 0; t < kActs; ++t) {
      const int8x16_t y_lo = vld1q_s8(act[t][ib].qs), y_hi = vld1q_s8(act[t][ib].qs + 16);
      int32_t isum[8];
      for (int r = 0; r < 8; ++r) {
        isum[r] = vaddvq_s32(Dot4(Dot4(vdupq_n_s32(0), lo[r], y_lo), hi[r], y_hi));
      }
      const float da = F16(act[t][ib].d);
      for (int h = 0; h < 2; ++h) {
        const float32x4_t scale = vmulq_n_f32(dw[h], da);
        acc[t][h] = vfmaq_f32(acc[t][h], vcvtq_f32_s32(vld1q_s32(isum + 4 * h)), scale);
      }
    }
  }
  for (int t = 0; t < kActs; ++t) {
    vst1q_f32(out + 8 * t, acc[t][0]);
    vst1q_f32(out + 8 * t + 4, acc[t][1]);
  }
}

// x = d * q for the types without a min: int8 -> int32 -> float, times d
// (the reference's single rounding).
template <class T>
void Dequantize(const void* src, float* dst, int64_t n) {
  static_assert(!T::kHasMin);
  const auto* blocks = static_cast<const typename T::Block*>(src);
  for (int64_t ib = 0; ib < n / kQK; ++ib, dst += kQK) {
    int8x16_t q[2];
    T::Levels(blocks[ib], &q[0], &q[1]);
    const float d = F16(blocks[ib].d);
    for (int h = 0; h < 2; ++h) {
      const int16x8_t w[2] = {vmovl_s8(vget_low_s8(q[h])), vmovl_high_s8(q[h])};
      for (int k = 0; k < 2; ++k) {
        float* o = dst + 16 * h + 8 * k;
        vst1q_f32(o, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(w[k]))), d));
        vst1q_f32(o + 4, vmulq_n_f32(vcvtq_f32_s32(vmovl_high_s16(w[k])), d));
      }
    }
  }
}

// Bit-exact with the reference q8_0 / q8_1 quantizers, both kinds:
// weights: id = 1 / d, q = roundf(x id) (fcvtas: ties away from zero);
// activations: id = 127 / amax, q = round-to-even(x id) (fcvtns).
// d = f16(amax / 127), s = f16(d * sum q).
template <class Block, bool kActivation>
void QuantizeQ8(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<Block*>(dst);
  for (int64_t ib = 0; ib < n / kQK; ++ib, x += kQK) {
    float32x4_t v[8];
    float32x4_t amax4 = vdupq_n_f32(0);
    for (int k = 0; k < 8; ++k) {
      v[k] = vld1q_f32(x + 4 * k);
      amax4 = vmaxq_f32(amax4, vabsq_f32(v[k]));
    }
    const float amax = vmaxvq_f32(amax4);
    const float d = amax / 127.f;
    const float inv = kActivation ? (amax != 0 ? 127.f / amax : 0.0f) : (d != 0 ? 1.0f / d : 0.0f);
    y[ib].d = ToF16(d);
    int32x4_t q[8];
    int32x4_t sum = vdupq_n_s32(0);
    for (int k = 0; k < 8; ++k) {
      const float32x4_t scaled = vmulq_n_f32(v[k], inv);
      q[k] = kActivation ? vcvtnq_s32_f32(scaled) : vcvtaq_s32_f32(scaled);
      sum = vaddq_s32(sum, q[k]);
    }
    for (int k = 0; k < 4; ++k) {
      const int16x8_t q16 = vcombine_s16(vmovn_s32(q[2 * k]), vmovn_s32(q[2 * k + 1]));
      vst1_s8(y[ib].qs + 8 * k, vmovn_s16(q16));
    }
    if constexpr (std::is_same_v<Block, BlockQ8_1>) {
      y[ib].s = ToF16(d * static_cast<float>(vaddvq_s32(sum)));
    }
  }
}

}  // namespace

float VecDotQ4_0(int64_t n, const void* w, const void* a) { return VecDot<Q4_0>(n, w, a); }
float VecDotQ4_1(int64_t n, const void* w, const void* a) { return VecDot<Q4_1>(n, w, a); }
float VecDotQ5_0(int64_t n, const void* w, const void* a) { return VecDot<Q5_0>(n, w, a); }
float VecDotQ5_1(int64_t n, const void* w, const void* a) { return VecDot<Q5_1>(n, w, a); }
float VecDotQ8_0(int64_t n, const void* w, const void* a) { return VecDot<Q8_0>(n, w, a); }
#define SHARDLM_TILE(Name)                                                         \
  void VecDotTile##Name(int64_t n, const void* w, size_t row_bytes, const void* a, \
                        size_t a_stride, int n_act, float* out) {                  \
    VecDotTileActs<Name>(n, w, row_bytes, a, a_stride, n_act, out);                \
  }
SHARDLM_TILE(Q4_0)
SHARDLM_TILE(Q4_1)
SHARDLM_TILE(Q5_0)
SHARDLM_TILE(Q5_1)
SHARDLM_TILE(Q8_0)
#undef SHARDLM_TILE
void VecDotX8Q4_0(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
                  int n_act, float* out, bool /*gemm*/) {
  WithActs(n_act,
           [&](auto acts) { X8Q4_0<decltype(acts)::value>(n, w, row_bytes, a, a_stride, out); });
}
void DequantizeQ4_0(const void* src, float* dst, int64_t n) { Dequantize<Q4_0>(src, dst, n); }
void DequantizeQ8_0(const void* src, float* dst, int64_t n) { Dequantize<Q8_0>(src, dst, n); }
void QuantizeQ8_0(const float* src, void* dst, int64_t n) {
  QuantizeQ8<BlockQ8_0, false>(src, dst, n);
}
void QuantizeQ8_1(const float* src, void* dst, int64_t n) {
  QuantizeQ8<BlockQ8_1, false>(src, dst, n);
}
void QuantizeActivationQ8_0(const float* src, void* dst, int64_t n) {
  QuantizeQ8<BlockQ8_0, true>(src, dst, n);
}
void QuantizeActivationQ8_1(const float* src, void* dst, int64_t n) {
  QuantizeQ8<BlockQ8_1, true>(src, dst, n);
}

}  // namespace shardlm::quant::SHARDLM_NEON_NS
