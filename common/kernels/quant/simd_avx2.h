// Small AVX2 helpers shared by the *_avx2.cc kernels. Include ONLY from files
// compiled with -mavx2 -mfma -mf16c (every includer then sees the same
// definitions, so the inline functions are ODR-safe).
//
// The same kernels are compiled a second time for the avx512 set (the
// *_avx512.cc files define SHARDLM_SIMD_AVX512 and include the *_avx2.cc
// file): everything then lands in namespace quant::avx512 (SHARDLM_SIMD_NS,
// so no inline function exists in two builds under one name), and the
// integer dot-product helpers below use AVX-512 VNNI (vpdpbusd, vpdpwssd on
// 256-bit registers). Those give the same int32 lanes as maddubs + madd
// whenever maddubs does not saturate, which the callers already guarantee
// (|a| <= 127, levels small), so both builds equal the reference to the bit.
#ifndef SHARDLM_COMMON_KERNELS_QUANT_SIMD_AVX2_H_
#define SHARDLM_COMMON_KERNELS_QUANT_SIMD_AVX2_H_

#if !defined(__AVX2__) || !defined(__FMA__) || !defined(__F16C__)
#error "simd_avx2.h needs -mavx2 -mfma -mf16c"
#endif

#if defined(SHARDLM_SIMD_AVX512)
#if !defined(__AVX512F__) || !defined(__AVX512BW__) || !defined(__AVX512VL__) || \
    !defined(__AVX512VNNI__)
#error "SHARDLM_SIMD_AVX512 needs -mavx512f -mavx512bw -mavx512vl -mavx512vnni"
#endif
#define SHARDLM_SIMD_NS avx512
#define SHARDLM_SIMD_VNNI 1
#else
#define SHARDLM_SIMD_NS avx2
#define SHARDLM_SIMD_VNNI 0
#endif

#include <immintrin.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

namespace shardlm::quant::SHARDLM_SIMD_NS {

// Scalar f16 <-> f32 with the F16C instructions (bit-exact with
// Fp16ToFp32 / Fp32ToFp16; the AVX2 files use these rather than the inline
// functions of common/base/fp16.h so that no AVX2-compiled copy of those exists).
inline float F16(uint16_t h) { return _cvtsh_ss(h); }
inline uint16_t ToF16(float f) { return _cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT); }

inline float HorizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float HorizontalMax(__m256 v) {
  __m128 m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  m = _mm_max_ss(m, _mm_movehdup_ps(m));
  return _mm_cvtss_f32(m);
}

inline __m256 Abs(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

// 16 packed bytes -> 32 bytes: the low nibbles of bytes 0..15 in bytes 0..15
// and their high nibbles in bytes 16..31 (the legacy q4 element order). The
// 16 bytes are loaded into both 128-bit lanes (a broadcast load, no shuffle
// uop) and only the upper lane is shifted right by 4.
inline __m256i NibblesToBytes(const uint8_t* p) {
  const __m256i both =
      _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  const __m256i shifted = _mm256_srlv_epi32(both, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
  return _mm256_and_si256(shifted, _mm256_set1_epi8(0x0F));
}

// 32 bits (little-endian uint32 at p) -> 32 bytes, 0xFF where bit j is set.
// Byte j gets a copy of source byte j / 8 and keeps only bit j % 8.
inline __m256i BitsToBytes(const uint8_t* p) {
  int32_t bits;
  __builtin_memcpy(&bits, p, sizeof(bits));
  const __m256i spread = _mm256_shuffle_epi8(
      _mm256_set1_epi32(bits), _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                                 0x0101010101010101, 0x0000000000000000));
  const __m256i select = _mm256_set1_epi64x(static_cast<int64_t>(0x8040201008040201ULL));
  return _mm256_cmpeq_epi8(_mm256_and_si256(spread, select), select);
}

// Sum of 16 int16 pairs -> 8 int32.
inline __m256i PairSums(__m256i v) { return _mm256_madd_epi16(v, _mm256_set1_epi16(1)); }

// 8 int32 dot-partials of unsigned u (<= 127) times signed a (|a| <= 127):
// maddubs multiplies u8 x s8 and adds neighbours into int16 without
// saturation (2 * 127 * 127 < 2^15). VNNI sums the 4 products of each dword
// straight into int32: the same lanes.
inline __m256i DotU8I8(__m256i u, __m256i a) {
#if SHARDLM_SIMD_VNNI
  return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, a);
#else
  return PairSums(_mm256_maddubs_epi16(u, a));
#endif
}

// Same for signed w: |w| * (a with w's sign), since w * a = |w| * sign(w) a.
// Needs a != -128 (a's sign flip would overflow); w may be -128 (|w| = 128
// read as unsigned).
inline __m256i DotI8I8(__m256i w, __m256i a) {
  return DotU8I8(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w));
}

// A running sum of u8 x s8 products over several loads (a block's worth):
// AVX2 adds maddubs' int16 pair sums (the caller bounds the total below
// 2^15) and widens once at the end; VNNI adds 4-product int32 sums. After
// WidenDots / WidenDotsScaled both hold the same int32 lanes.
inline __m256i AddDots(__m256i acc, __m256i u, __m256i a) {
#if SHARDLM_SIMD_VNNI
  return _mm256_dpbusd_epi32(acc, u, a);
#else
  return _mm256_add_epi16(acc, _mm256_maddubs_epi16(u, a));
#endif
}

inline __m256i WidenDots(__m256i acc) {
#if SHARDLM_SIMD_VNNI
  return acc;
#else
  return PairSums(acc);
#endif
}

// WidenDots times a per-dword scale: `scale` holds the same int16 in both
// halves of each dword (madd's operand).
inline __m256i WidenDotsScaled(__m256i acc, __m256i scale) {
#if SHARDLM_SIMD_VNNI
  return _mm256_mullo_epi32(acc, _mm256_and_si256(scale, _mm256_set1_epi32(0xFFFF)));
#else
  return _mm256_madd_epi16(acc, scale);
#endif
}

// acc + madd(p, s): int16 pairs times int16 weights summed into int32 lanes
// (VNNI: vpdpwssd, without saturation, so the same sum).
inline __m256i AddPairProducts(__m256i acc, __m256i p, __m256i s) {
#if SHARDLM_SIMD_VNNI
  return _mm256_dpwssd_epi32(acc, p, s);
#else
  return _mm256_add_epi32(acc, _mm256_madd_epi16(p, s));
#endif
}

// 4 int8 at p (one 32-bit word) repeated in all 8 dword lanes: an
// activation's 4 bytes against the same 4 elements of 8 interleaved rows.
inline __m256i Broadcast4(const int8_t* p) {
  int32_t v;
  std::memcpy(&v, p, sizeof(v));
  return _mm256_set1_epi32(v);
}

// Calls f(std::integral_constant<int, k>{}) for k = n_act (1..4, more
// counts as 4): the kernels are templates on their number of activation
// rows, so each count gets its own fully unrolled loop.
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

}  // namespace shardlm::quant::SHARDLM_SIMD_NS

#endif  // SHARDLM_COMMON_KERNELS_QUANT_SIMD_AVX2_H_
