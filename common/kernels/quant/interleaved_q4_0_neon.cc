// NEON product of 8 interleaved q4_0 rows (blocks.h BlockQ4_0x8) with 1..4
// q8_0 activation rows (aarch64; built plain and with the dot product, see
// simd_neon.h).
//
// 16 bytes of the interleaved block hold 4 elements of 4 rows per nibble
// half (byte 32k + 4r + e); the matching 4 activation bytes broadcast to
// every lane, Dot4 leaves row r's partial sum in lane r: no horizontal adds.
// Levels are stored unsigned (q = u - 8): sum (u - 8) a = sum u a - 8 sum a,
// with 8 sum a precomputed per block (ActivationBlockTerms). The float steps
// are the reference's (interleaved_q4_0.cc): equal to the bit.
#include <arm_neon.h>

#include <cstdint>

#include "common/kernels/quant/blocks.h"
#include "common/kernels/quant/kernels_neon.h"
#include "common/kernels/quant/simd_neon.h"

namespace shardlm::quant::SHARDLM_NEON_NS {
namespace {

template <int kActs>
void Gemm(int64_t n, const void* w, const void* a, size_t a_stride,
          const ActivationBlockTerms* terms, size_t terms_stride, float* out) {
  const auto* wb = static_cast<const BlockQ4_0x8*>(w);
  const BlockQ8_0* act[kActs];
  const ActivationBlockTerms* act_terms[kActs];
  float32x4_t acc[kActs][2];
  for (int t = 0; t < kActs; ++t) {
    act[t] = RowAt<BlockQ8_0>(a, a_stride, t);
    act_terms[t] = terms + t * terms_stride;
    acc[t][0] = acc[t][1] = vdupq_n_f32(0);
  }
  for (int64_t ib = 0; ib < n / kQK; ++ib) {
    // The block's levels, unpacked once for all tokens: [k][rows 0-3 / 4-7].
    int8x16_t lo[4][2], hi[4][2];
    for (int k = 0; k < 4; ++k) {
      for (int h = 0; h < 2; ++h) Nibbles(wb[ib].qs + 32 * k + 16 * h, &lo[k][h], &hi[k][h]);
    }
    const float16x8_t dh = vreinterpretq_f16_u16(vld1q_u16(wb[ib].d));
    const float32x4_t dw[2] = {vcvt_f32_f16(vget_low_f16(dh)), vcvt_high_f32_f16(dh)};
    for (int t = 0; t < kActs; ++t) {
      const int8_t* q = act[t][ib].qs;
      const ActivationBlockTerms& at = act_terms[t][ib];
      for (int h = 0; h < 2; ++h) {
        int32x4_t isum = vdupq_n_s32(-at.offset);
        for (int k = 0; k < 4; ++k) {
          isum = Dot4(isum, lo[k][h], Broadcast4(q + 4 * k));
          isum = Dot4(isum, hi[k][h], Broadcast4(q + 16 + 4 * k));
        }
        const float32x4_t scale = vmulq_n_f32(dw[h], at.d);
        acc[t][h] = vfmaq_f32(acc[t][h], vcvtq_f32_s32(isum), scale);
      }
    }
  }
  for (int t = 0; t < kActs; ++t) {
    vst1q_f32(out + 8 * t, acc[t][0]);
    vst1q_f32(out + 8 * t + 4, acc[t][1]);
  }
}

}  // namespace

void GemmQ4_0x8(int64_t n, const void* w, const void* a, size_t a_stride,
                const ActivationBlockTerms* terms, size_t terms_stride, int n_act, float* out,
                bool /*gemm*/) {
  WithActs(n_act, [&](auto acts) {
    Gemm<decltype(acts)::value>(n, w, a, a_stride, terms, terms_stride, out);
  });
}

}  // namespace shardlm::quant::SHARDLM_NEON_NS
