// NEON product of 8 interleaved q4_K rows (blocks.h BlockQ4_Kx8) with 1..4
// q8_K activation rows (aarch64; built plain and with the dot product, see
// simd_neon.h).
//
// As for q4_0 (interleaved_q4_0_neon.cc): 16 bytes hold 4 elements of 4
// rows per nibble half, the activation's 4 bytes are broadcast, and Dot4
// keeps each row in its own lane. A 32-element sub-block's sum is then
// multiplied by the row's scale in int32, and the min term is
// m_j * (sum of the sub-block's activations). Float steps as the reference
// (interleaved_q4_k.cc): per step (64 elements for llama.cpp's gemm, a
// super-block for its gemv) acc = fma(isum, d d_a, acc), acc_min likewise;
// the result acc - acc_min. Equal to the bit.
#include <arm_neon.h>

#include <cstdint>

#include "common/kernels/quant/blocks.h"
#include "common/kernels/quant/kernels_neon.h"
#include "common/kernels/quant/simd_neon.h"

namespace shardlm::quant::SHARDLM_NEON_NS {
namespace {

// 4 bytes (rows 4h..4h+3) -> 4 int32 lanes.
inline int32x4_t Widen4(const uint8_t* p) {
  uint8_t b[8] = {p[0], p[1], p[2], p[3], 0, 0, 0, 0};
  return vreinterpretq_s32_u32(vmovl_u16(vget_low_u16(vmovl_u8(vld1_u8(b)))));
}

template <int kActs, bool kGemm>
void Gemm(int64_t n, const void* w, const void* a, size_t a_stride, float* out) {
  const auto* wb = static_cast<const BlockQ4_Kx8*>(w);
  const BlockQ8_K* act[kActs];
  float32x4_t acc[kActs][2], acc_min[kActs][2];
  for (int t = 0; t < kActs; ++t) {
    act[t] = RowAt<BlockQ8_K>(a, a_stride, t);
    acc[t][0] = acc[t][1] = acc_min[t][0] = acc_min[t][1] = vdupq_n_f32(0);
  }
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const BlockQ4_Kx8& b = wb[i];
    const float16x8_t dh = vreinterpretq_f16_u16(vld1q_u16(b.d));
    const float16x8_t mh = vreinterpretq_f16_u16(vld1q_u16(b.dmin));
    const float32x4_t d[2] = {vcvt_f32_f16(vget_low_f16(dh)), vcvt_high_f32_f16(dh)};
    const float32x4_t dmin[2] = {vcvt_f32_f16(vget_low_f16(mh)), vcvt_high_f32_f16(mh)};
    for (int t = 0; t < kActs; ++t) {
      const BlockQ8_K& y = act[t][i];
      const float32x4_t scale[2] = {vmulq_n_f32(d[0], y.d), vmulq_n_f32(d[1], y.d)};
      const float32x4_t min_scale[2] = {vmulq_n_f32(dmin[0], y.d), vmulq_n_f32(dmin[1], y.d)};
      int32x4_t isum_block[2] = {vdupq_n_s32(0), vdupq_n_s32(0)};
      int32x4_t imin_block[2] = {vdupq_n_s32(0), vdupq_n_s32(0)};
      for (int g = 0; g < 4; ++g) {
        // Sub-blocks 2g (low nibbles) and 2g + 1 (high nibbles).
        int32x4_t s_lo[2] = {vdupq_n_s32(0), vdupq_n_s32(0)};
        int32x4_t s_hi[2] = {vdupq_n_s32(0), vdupq_n_s32(0)};
        for (int c = 0; c < 8; ++c) {
          const int8x16_t y_lo = Broadcast4(y.qs + 64 * g + 4 * c);
          const int8x16_t y_hi = Broadcast4(y.qs + 64 * g + 32 + 4 * c);
          for (int h = 0; h < 2; ++h) {
            int8x16_t lo, hi;
            Nibbles(b.qs + 256 * g + 32 * c + 16 * h, &lo, &hi);
            s_lo[h] = Dot4(s_lo[h], lo, y_lo);
            s_hi[h] = Dot4(s_hi[h], hi, y_hi);
          }
        }
        const int32_t b_lo = y.bsums[4 * g] + y.bsums[4 * g + 1];
        const int32_t b_hi = y.bsums[4 * g + 2] + y.bsums[4 * g + 3];
        for (int h = 0; h < 2; ++h) {
          const int32x4_t isum = vmlaq_s32(vmulq_s32(s_lo[h], Widen4(b.scales[2 * g] + 4 * h)),
                                           s_hi[h], Widen4(b.scales[2 * g + 1] + 4 * h));
          const int32x4_t imin = vmlaq_n_s32(vmulq_n_s32(Widen4(b.mins[2 * g] + 4 * h), b_lo),
                                             Widen4(b.mins[2 * g + 1] + 4 * h), b_hi);
          if constexpr (kGemm) {
            acc[t][h] = vfmaq_f32(acc[t][h], vcvtq_f32_s32(isum), scale[h]);
            acc_min[t][h] = vfmaq_f32(acc_min[t][h], vcvtq_f32_s32(imin), min_scale[h]);
          } else {
            isum_block[h] = vaddq_s32(isum_block[h], isum);
            imin_block[h] = vaddq_s32(imin_block[h], imin);
          }
        }
      }
      if constexpr (!kGemm) {
        for (int h = 0; h < 2; ++h) {
          acc[t][h] = vfmaq_f32(acc[t][h], vcvtq_f32_s32(isum_block[h]), scale[h]);
          acc_min[t][h] = vfmaq_f32(acc_min[t][h], vcvtq_f32_s32(imin_block[h]), min_scale[h]);
        }
      }
    }
  }
  for (int t = 0; t < kActs; ++t) {
    vst1q_f32(out + 8 * t, vsubq_f32(acc[t][0], acc_min[t][0]));
    vst1q_f32(out + 8 * t + 4, vsubq_f32(acc[t][1], acc_min[t][1]));
  }
}

}  // namespace

void GemmQ4_Kx8(int64_t n, const void* w, const void* a, size_t a_stride,
                const ActivationBlockTerms* /*terms*/, size_t /*terms_stride*/, int n_act,
                float* out, bool gemm) {
  WithActs(n_act, [&](auto acts) {
    if (gemm) {
      Gemm<decltype(acts)::value, true>(n, w, a, a_stride, out);
    } else {
      Gemm<decltype(acts)::value, false>(n, w, a, a_stride, out);
    }
  });
}

}  // namespace shardlm::quant::SHARDLM_NEON_NS
