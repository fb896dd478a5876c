// Small NEON helpers shared by the *_neon.cc kernels (aarch64 only).
//
// Every *_neon.cc file is compiled twice (common/kernels/CMakeLists.txt):
// for plain ARMv8.0 Advanced SIMD into namespace quant::neon_base, and with
// -march=armv8.2-a+dotprod into quant::neon_dotprod, where Dot4 below is one
// `sdot` instruction. Everything here lives in that per-build namespace, so
// the two builds' inline copies never meet at link time (one-definition
// rule with different target flags); neon_dispatch.cc picks one build at run
// time from HWCAP_ASIMDDP.
#ifndef SHARDLM_COMMON_KERNELS_QUANT_SIMD_NEON_H_
#define SHARDLM_COMMON_KERNELS_QUANT_SIMD_NEON_H_

#if !defined(__aarch64__)
#error "simd_neon.h is for aarch64 builds"
#endif

#include <arm_neon.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__ARM_FEATURE_DOTPROD)
#define SHARDLM_NEON_NS neon_dotprod
#else
#define SHARDLM_NEON_NS neon_base
#endif

namespace shardlm::quant::SHARDLM_NEON_NS {

// Scalar f16 <-> f32 with the FP unit's own conversions (fcvt: exact
// widening; narrowing rounds to nearest even, as Fp32ToFp16 does).
inline float F16(uint16_t h) {
  __fp16 f;
  std::memcpy(&f, &h, sizeof(f));
  return f;
}
inline uint16_t ToF16(float x) {
  const __fp16 f = x;
  uint16_t h;
  std::memcpy(&h, &f, sizeof(h));
  return h;
}

// 4 int32 lanes: lane i += a[4i] b[4i] + ... + a[4i+3] b[4i+3], exact. With
// the dot product extension that is `sdot`; without it, widening multiplies
// (|a b| <= 128 * 128 fits int16, a pair of them too) and two pairwise adds.
inline int32x4_t Dot4(int32x4_t acc, int8x16_t a, int8x16_t b) {
#if defined(__ARM_FEATURE_DOTPROD)
  return vdotq_s32(acc, a, b);
#else
  const int16x8_t lo = vmull_s8(vget_low_s8(a), vget_low_s8(b));
  const int16x8_t hi = vmull_high_s8(a, b);
  return vaddq_s32(acc, vpaddq_s32(vpaddlq_s16(lo), vpaddlq_s16(hi)));
#endif
}

// ggml's hsum_float_8 (ggml_order.h HsumLanes8) over lanes 0..3 in `lo` and
// 4..7 in `hi`: (0+4), (1+5), ... first, then (t0+t2) + (t1+t3).
inline float HsumLanes8(float32x4_t lo, float32x4_t hi) {
  const float32x4_t t = vaddq_f32(lo, hi);
  const float32x2_t u = vadd_f32(vget_low_f32(t), vget_high_f32(t));
  return vget_lane_f32(u, 0) + vget_lane_f32(u, 1);
}

// 16 packed bytes -> their low nibbles (elements 0..15 of a legacy q4
// block) and high nibbles (elements 16..31), unsigned.
inline void Nibbles(const uint8_t* p, int8x16_t* lo, int8x16_t* hi) {
  const uint8x16_t raw = vld1q_u8(p);
  *lo = vreinterpretq_s8_u8(vandq_u8(raw, vdupq_n_u8(0x0F)));
  *hi = vreinterpretq_s8_u8(vshrq_n_u8(raw, 4));
}

// 0x10 in byte j where bit j of the 16 bits at p (little-endian) is set.
inline int8x16_t HighBit16(const uint8_t* p) {
  const uint8x16_t bytes = vcombine_u8(vdup_n_u8(p[0]), vdup_n_u8(p[1]));
  const uint8x16_t select = {1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128};
  return vreinterpretq_s8_u8(vandq_u8(vtstq_u8(bytes, select), vdupq_n_u8(0x10)));
}

// 4 int8 at p repeated in all 4 lanes: one activation's 4 bytes against the
// same 4 elements of 4 interleaved rows.
inline int8x16_t Broadcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof(v));
  return vreinterpretq_s8_s32(vdupq_n_s32(v));
}

// Calls f(std::integral_constant<int, k>{}) for k = n_act (1..4, more
// counts as 4): kernels templated on their number of activation rows.
template <class F>
inline void WithActs(int n_act, F&& f) {
  switch (n_act) {
    case 1:
      return f(std::integral_constant<int, 1>{});
    case 2:
      return f(std::integral_constant<int, 2>{});
    case 3:
      return f(std::integral_constant<int, 3>{});
    default:
      return f(std::integral_constant<int, 4>{});
  }
}

}  // namespace shardlm::quant::SHARDLM_NEON_NS

#endif  // SHARDLM_COMMON_KERNELS_QUANT_SIMD_NEON_H_
