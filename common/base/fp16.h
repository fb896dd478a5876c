// IEEE half (f16) and bfloat16 conversions, scalar and portable.
//
// These are bit-exact with the hardware conversions (x86 F16C VCVTPH2PS /
// VCVTPS2PH with round-to-nearest-even) for every non-NaN input, so a scalar
// reference kernel and an F16C kernel agree to the bit. NaNs stay NaN (quiet).
// Weight rows are converted by the kernel registry's F16/BF16 rows (see
// common/kernels/tensor_format.h), which use F16C at run time where the CPU
// has it; these inline functions are for per-block scales, the reference
// kernels and the wire codec (common/rpc/tensor_codec.cc).
//
// Why not `#ifdef __F16C__` here: this header is included both by files built
// with -mf16c and by files built without it; two different definitions of one
// inline function would break the one-definition rule (the linker may keep the
// F16C copy and run it on a CPU without F16C).
#ifndef SHARDLM_COMMON_BASE_FP16_H_
#define SHARDLM_COMMON_BASE_FP16_H_

#include <bit>
#include <cstdint>

namespace shardlm {

// f16 bits -> f32. Exact: every half is representable as a float.
// half = s | e(5) | m(10): normal (1 <= e <= 30): (-1)^s 2^(e-15) (1 + m/1024);
// subnormal (e = 0): (-1)^s 2^-14 m/1024; e = 31: inf (m = 0) or NaN.
inline float Fp16ToFp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  uint32_t bits;
  if (exp == 0x1F) {  // inf / NaN (NaN made quiet, as F16C does)
    bits = sign | 0x7F800000u | (mant << 13) | (mant ? 0x00400000u : 0u);
  } else if (exp != 0) {  // normal: rebias 15 -> 127
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {  // +-0
    bits = sign;
  } else {
    // Subnormal half m * 2^-24: shift the leading 1 of m up to bit 10 (the
    // implicit bit) and lower the exponent once per shift.
    const int shift = std::countl_zero(mant) - 21;  // mant < 2^10: clz >= 22
    mant = (mant << shift) & 0x3FFu;
    bits = sign | (static_cast<uint32_t>(113 - shift) << 23) | (mant << 13);
  }
  return std::bit_cast<float>(bits);
}

// f32 -> f16 bits, round to nearest, ties to even; overflow -> inf.
inline uint16_t Fp32ToFp16(float f) {
  const uint32_t x = std::bit_cast<uint32_t>(f);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  const uint32_t ax = x & 0x7FFFFFFFu;
  if (ax >= 0x7F800000u) {  // inf or NaN (quiet, top payload bits kept)
    return sign | (ax > 0x7F800000u ? 0x7E00u | ((ax >> 13) & 0x3FFu) : 0x7C00u);
  }
  if (ax >= 0x477FF000u) return sign | 0x7C00u;  // >= 65520 rounds to inf
  if (ax < 0x38800000u) {                        // below 2^-14: subnormal half
    if (ax < 0x33000000u) return sign;           // below 2^-25: rounds to 0
    // value = m * 2^(e-150) with the implicit bit in m; in units of the
    // smallest subnormal 2^-24 that is m >> (126 - e), rounded to even.
    const uint32_t e = ax >> 23;
    const uint32_t m = (ax & 0x7FFFFFu) | 0x800000u;
    const uint32_t shift = 126 - e;  // 14..24
    uint32_t r = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1u))) ++r;
    return sign | static_cast<uint16_t>(r);  // r = 0x400 is the smallest normal
  }
  // Normal: rebias the exponent (subtract 112 << 23), drop 13 mantissa bits
  // rounding to even; a carry into the exponent is the correct result.
  uint32_t r = (ax - 0x38000000u) >> 13;
  const uint32_t rem = ax & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (r & 1u))) ++r;
  return sign | static_cast<uint16_t>(r);
}

// bf16 is the top half of an f32.
inline float Bf16ToFp32(uint16_t h) { return std::bit_cast<float>(static_cast<uint32_t>(h) << 16); }

// f32 -> bf16 as ggml does it: round to nearest even by adding 0x7FFF plus
// the lowest kept bit, then truncating; NaN is forced quiet (bit 6 of bf16).
inline uint16_t Fp32ToBf16(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return static_cast<uint16_t>((u >> 16) | 64u);
  return static_cast<uint16_t>((u + (0x7FFFu + ((u >> 16) & 1u))) >> 16);
}

}  // namespace shardlm

#endif  // SHARDLM_COMMON_BASE_FP16_H_
