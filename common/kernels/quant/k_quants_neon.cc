// NEON vec_dot of the K-quants q4_K and q6_K against q8_K activations
// (aarch64; built plain and with the dot product, see simd_neon.h).
//
// The integer lanes are those of llama.cpp's AVX2 kernels (k_quants.cc
// VecDot): lane k collects s_j * level * q over elements 4k..4k+3 of every
// 32-element chunk — Dot4 yields exactly these 4-element sums, times the
// chunk's sub-block scale — then one FMA per super-block and lane, and each
// type's own min / offset term (ggml_order.h MinMode). Equal to the
// reference to the bit.
#include <arm_neon.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/kernels/quant/blocks.h"
#include "common/kernels/quant/kernels_neon.h"
#include "common/kernels/quant/simd_neon.h"

namespace shardlm::quant::SHARDLM_NEON_NS {
namespace {

// Integer lanes 0..3 (elements 0..15 of each chunk) and 4..7 (16..31).
struct IntLanes8 {
  int32x4_t lo = vdupq_n_s32(0), hi = vdupq_n_s32(0);
  // += scale_lo * (u . q over elements 0..15) and scale_hi * (16..31)
  void Add(int8x16_t u_lo, int8x16_t u_hi, const int8_t* q, int scale_lo, int scale_hi) {
    const int32x4_t zero = vdupq_n_s32(0);
    lo = vmlaq_n_s32(lo, Dot4(zero, u_lo, vld1q_s8(q)), scale_lo);
    hi = vmlaq_n_s32(hi, Dot4(zero, u_hi, vld1q_s8(q + 16)), scale_hi);
  }
};

// q4_K: chunk 2g = low nibbles of qs[32g..32g+31], chunk 2g+1 their high
// nibbles; one 6-bit scale per chunk. The mins enter as kLanes4: 4 float
// lanes of (-dmin d_a) (m_2k b_2k + m_2k+1 b_2k+1) over 32-element sums b,
// added after the main lanes are reduced.
float DotQ4K(int64_t n, const void* w, const void* a) {
  const auto* wb = static_cast<const BlockQ4_K*>(w);
  const auto* ab = static_cast<const BlockQ8_K*>(a);
  float32x4_t acc_lo = vdupq_n_f32(0), acc_hi = vdupq_n_f32(0), acc_min = vdupq_n_f32(0);
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const BlockQ4_K& b = wb[i];
    const BlockQ8_K& y = ab[i];
    uint8_t sc[8], m[8];
    UnpackScaleMinK4(b.scales, sc, m);
    IntLanes8 lanes;
    for (int g = 0; g < 4; ++g) {
      int8x16_t lo[2], hi[2];  // [first / second 16 bytes]
      Nibbles(b.qs + 32 * g, &lo[0], &hi[0]);
      Nibbles(b.qs + 32 * g + 16, &lo[1], &hi[1]);
      lanes.Add(lo[0], lo[1], y.qs + 64 * g, sc[2 * g], sc[2 * g]);
      lanes.Add(hi[0], hi[1], y.qs + 64 * g + 32, sc[2 * g + 1], sc[2 * g + 1]);
    }
    int32_t bsum32[8];
    for (int j = 0; j < 8; ++j) bsum32[j] = y.bsums[2 * j] + y.bsums[2 * j + 1];
    int32_t mins[4];
    for (int k = 0; k < 4; ++k) mins[k] = m[2 * k] * bsum32[2 * k] + m[2 * k + 1] * bsum32[2 * k + 1];
    const float d = y.d * F16(b.d);
    const float neg_dmin = -y.d * F16(b.dmin);
    acc_min = vfmaq_n_f32(acc_min, vcvtq_f32_s32(vld1q_s32(mins)), neg_dmin);
    acc_lo = vfmaq_n_f32(acc_lo, vcvtq_f32_s32(lanes.lo), d);
    acc_hi = vfmaq_n_f32(acc_hi, vcvtq_f32_s32(lanes.hi), d);
  }
  // HsumLanes4: (0+2) + (1+3)
  const float32x2_t m2 = vadd_f32(vget_low_f32(acc_min), vget_high_f32(acc_min));
  return HsumLanes8(acc_lo, acc_hi) + (vget_lane_f32(m2, 0) + vget_lane_f32(m2, 1));
}

// q6_K: in half h, chunk k's 6-bit levels are a nibble of ql (low nibbles of
// ql[64h..+31] for k = 0, of ql[64h+32..+63] for k = 1, high nibbles for
// k = 2, 3) with bits 2k..2k+1 of qh[32h..+31] on top; scales per 16. The
// offset 32 enters the integer lanes as kIntLanes: lane k -=
// 32 (s_2k b_2k + s_2k+1 b_2k+1) over the 16-element sums b.
float DotQ6K(int64_t n, const void* w, const void* a) {
  const auto* wb = static_cast<const BlockQ6_K*>(w);
  const auto* ab = static_cast<const BlockQ8_K*>(a);
  float32x4_t acc_lo = vdupq_n_f32(0), acc_hi = vdupq_n_f32(0);
  const uint8x16_t low4 = vdupq_n_u8(0x0F), low2 = vdupq_n_u8(0x03);
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const BlockQ6_K& b = wb[i];
    const BlockQ8_K& y = ab[i];
    IntLanes8 lanes;
    for (int h = 0; h < 2; ++h) {
      for (int half = 0; half < 2; ++half) {  // bytes 0..15 / 16..31 of each source
        const int o = 16 * half;
        const uint8x16_t ql0 = vld1q_u8(b.ql + 64 * h + o), ql1 = vld1q_u8(b.ql + 64 * h + 32 + o);
        const uint8x16_t qh = vld1q_u8(b.qh + 32 * h + o);
        const uint8x16_t lows[4] = {vandq_u8(ql0, low4), vandq_u8(ql1, low4), vshrq_n_u8(ql0, 4),
                                    vshrq_n_u8(ql1, 4)};
        for (int k = 0; k < 4; ++k) {
          const uint8x16_t high = vandq_u8(vshlq_u8(qh, vdupq_n_s8(static_cast<int8_t>(-2 * k))), low2);
          const int8x16_t u = vreinterpretq_s8_u8(vorrq_u8(lows[k], vshlq_n_u8(high, 4)));
          const int c = 4 * h + k;  // the chunk: elements 32c..32c+31
          const int32x4_t dot = Dot4(vdupq_n_s32(0), u, vld1q_s8(y.qs + 32 * c + o));
          if (half == 0) {
            lanes.lo = vmlaq_n_s32(lanes.lo, dot, b.scales[2 * c]);
          } else {
            lanes.hi = vmlaq_n_s32(lanes.hi, dot, b.scales[2 * c + 1]);
          }
        }
      }
    }
    int32_t offset[8];
    for (int k = 0; k < 8; ++k) {
      offset[k] = 32 * (b.scales[2 * k] * y.bsums[2 * k] + b.scales[2 * k + 1] * y.bsums[2 * k + 1]);
    }
    lanes.lo = vsubq_s32(lanes.lo, vld1q_s32(offset));
    lanes.hi = vsubq_s32(lanes.hi, vld1q_s32(offset + 4));
    const float d = y.d * F16(b.d);
    acc_lo = vfmaq_n_f32(acc_lo, vcvtq_f32_s32(lanes.lo), d);
    acc_hi = vfmaq_n_f32(acc_hi, vcvtq_f32_s32(lanes.hi), d);
  }
  return HsumLanes8(acc_lo, acc_hi);
}

}  // namespace

// quantize_row_q8_K_ref (k_quants.cc QuantizeQ8_K): iscale = -127 / max with
// max the signed value of largest magnitude (the first one on ties), q =
// min(127, round-to-even(iscale x)) (fcvtns, as NearestInt), d = 1 / iscale,
// bsums = sums of 16; an all-zero block is all zeros.
void QuantizeQ8_K(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_K*>(dst);
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    float32x4_t amax4 = vdupq_n_f32(0);
    for (int j = 0; j < kQKK; j += 4) amax4 = vmaxq_f32(amax4, vabsq_f32(vld1q_f32(x + j)));
    const float amax = vmaxvq_f32(amax4);
    if (amax == 0) {
      std::memset(&y[i], 0, sizeof(y[i]));
      continue;
    }
    int first = 0;
    while (std::fabs(x[first]) != amax) ++first;
    const float iscale = -127.f / x[first];
    for (int j = 0; j < kQKK; j += 16) {
      int32x4_t q[4];
      for (int k = 0; k < 4; ++k) {
        q[k] = vminq_s32(vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + j + 4 * k), iscale)),
                         vdupq_n_s32(127));
      }
      const int16x8_t q16[2] = {vcombine_s16(vmovn_s32(q[0]), vmovn_s32(q[1])),
                                vcombine_s16(vmovn_s32(q[2]), vmovn_s32(q[3]))};
      vst1q_s8(y[i].qs + j, vcombine_s8(vmovn_s16(q16[0]), vmovn_s16(q16[1])));
      y[i].bsums[j / 16] = static_cast<int16_t>(vaddvq_s16(vaddq_s16(q16[0], q16[1])));
    }
    y[i].d = 1 / iscale;
  }
}

float VecDotQ4_K(int64_t n, const void* w, const void* a) { return DotQ4K(n, w, a); }
float VecDotQ6_K(int64_t n, const void* w, const void* a) { return DotQ6K(n, w, a); }

// vec_dot per output (tile_reference.h's definition, with this vec_dot).
void VecDotTileQ6_K(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
                    int n_act, float* out) {
  for (int t = 0; t < n_act; ++t) {
    for (int r = 0; r < kTileRows; ++r) {
      out[kTileRows * t + r] = DotQ6K(n, static_cast<const uint8_t*>(w) + r * row_bytes,
                                      static_cast<const uint8_t*>(a) + t * a_stride);
    }
  }
}

}  // namespace shardlm::quant::SHARDLM_NEON_NS
