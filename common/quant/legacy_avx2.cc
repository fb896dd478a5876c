// AVX2 kernels of the legacy 32-element block types and the q8_0 / q8_1
// activation quantizers. Compiled with -mavx2 -mfma -mf16c; called only when
// the CPU has them (tensor_format.cc).
//
// One block of any weight type becomes 32 int8 levels in a register (a
// per-type Levels()); the dot product is written once: maddubs forms
// u8 x s8 pair sums, madd widens them to 8 int32, and one FMA per block adds
// (d_w d_a) * sum to a float accumulator. Four blocks per iteration share one
// f16 -> f32 conversion of their scales and alternate between two FMA
// chains, so the loop is bound by the integer multiply units, not latency.
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "common/quant/blocks.h"
#include "common/quant/kernels.h"
#include "common/quant/simd_avx2.h"

namespace shardlm::quant::avx2 {
namespace {

// Levels() gives the 32 levels of a block in element order. The q4_0/q5_0
// levels are stored unsigned with an offset (x = d (u - kOffset)), and
// sum (u - o) a = sum u a - o sum a is computed as maddubs(u, a) -
// maddubs(o, a) on int16 pairs: one more multiply but three fewer ALU ops
// than making u - o signed for the sign trick (measured ~7% faster).
// kSigned: levels are int8 (q8_0, sign trick); otherwise unsigned, and
// kHasMin types add m (x = d u + m).
struct Q4_0 {
  using Block = BlockQ4_0;
  static constexpr bool kSigned = false, kHasMin = false;
  static constexpr int kOffset = 8;
  static __m256i Levels(const Block& b) { return NibblesToBytes(b.qs); }
};

struct Q4_1 {
  using Block = BlockQ4_1;
  static constexpr bool kSigned = false, kHasMin = true;
  static constexpr int kOffset = 0;
  static __m256i Levels(const Block& b) { return NibblesToBytes(b.qs); }
};

// Bit 4 of each level from qh: 0x10 in the bytes whose bit is set.
template <class Block>
inline __m256i FiveBitLevels(const Block& b) {
  return _mm256_or_si256(NibblesToBytes(b.qs),
                         _mm256_and_si256(BitsToBytes(b.qh), _mm256_set1_epi8(0x10)));
}

struct Q5_0 {
  using Block = BlockQ5_0;
  static constexpr bool kSigned = false, kHasMin = false;
  static constexpr int kOffset = 16;
  static __m256i Levels(const Block& b) { return FiveBitLevels(b); }
};

struct Q5_1 {
  using Block = BlockQ5_1;
  static constexpr bool kSigned = false, kHasMin = true;
  static constexpr int kOffset = 0;
  static __m256i Levels(const Block& b) { return FiveBitLevels(b); }
};

struct Q8_0 {
  using Block = BlockQ8_0;
  static constexpr bool kSigned = true, kHasMin = false;
  static constexpr int kOffset = 0;
  static __m256i Levels(const Block& b) {
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs));
  }
};

// 8 int32 partial sums of sum_j (level_j - offset) a_j.
template <class T>
inline __m256i BlockDot(__m256i q, __m256i a) {
  if constexpr (T::kSigned) return DotI8I8(q, a);
  if constexpr (T::kOffset == 0) return DotU8I8(q, a);
  const __m256i offset_dot = _mm256_maddubs_epi16(_mm256_set1_epi8(T::kOffset), a);
  return PairSums(_mm256_sub_epi16(_mm256_maddubs_epi16(q, a), offset_dot));
}

// Four f16 fields (one per block, `stride` bytes apart) -> 4 floats with one
// VCVTPH2PS instead of four scalar conversions.
template <class B>
inline __m128 FourHalves(const B* blocks, uint16_t B::*field) {
  return _mm_cvtph_ps(_mm_setr_epi16(
      static_cast<int16_t>(blocks[0].*field), static_cast<int16_t>(blocks[1].*field),
      static_cast<int16_t>(blocks[2].*field), static_cast<int16_t>(blocks[3].*field), 0, 0, 0, 0));
}

template <class T>
float VecDot(int64_t n, const void* w, const void* a) {
  using Act = std::conditional_t<T::kHasMin, BlockQ8_1, BlockQ8_0>;
  const auto* wb = static_cast<const typename T::Block*>(w);
  const auto* ab = static_cast<const Act*>(a);
  const int64_t nb = n / kQK;
  __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
  auto block = [&](int64_t ib, __m256 scale, __m256& sum) {
    const __m256i q = T::Levels(wb[ib]);
    const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab[ib].qs));
    const __m256i dot = BlockDot<T>(q, y);
    sum = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(dot), sum);
  };
  // Four blocks per iteration: their d_w * d_a (and m_w * s_a) come from one
  // conversion and one multiply; each block's product is then broadcast from
  // memory (a plain load on current x86 cores).
  __m128 min_acc = _mm_setzero_ps();  // m_w * s_a, types with a min
  int64_t ib = 0;
  for (; ib + 4 <= nb; ib += 4) {
    using WB = typename T::Block;
    alignas(16) float scale[4];
    _mm_store_ps(scale,
                 _mm_mul_ps(FourHalves<WB>(wb + ib, &WB::d), FourHalves<Act>(ab + ib, &Act::d)));
    if constexpr (T::kHasMin) {
      min_acc =
          _mm_fmadd_ps(FourHalves<WB>(wb + ib, &WB::m), FourHalves<Act>(ab + ib, &Act::s), min_acc);
    }
    block(ib, _mm256_broadcast_ss(&scale[0]), acc[0]);
    block(ib + 1, _mm256_broadcast_ss(&scale[1]), acc[1]);
    block(ib + 2, _mm256_broadcast_ss(&scale[2]), acc[0]);
    block(ib + 3, _mm256_broadcast_ss(&scale[3]), acc[1]);
  }
  float min_sum = 0;
  for (; ib < nb; ++ib) {
    block(ib, _mm256_set1_ps(F16(wb[ib].d) * F16(ab[ib].d)), acc[0]);
    if constexpr (T::kHasMin) min_sum += F16(wb[ib].m) * F16(ab[ib].s);
  }
  __m128 m = _mm_add_ps(min_acc, _mm_movehl_ps(min_acc, min_acc));
  m = _mm_add_ss(m, _mm_movehdup_ps(m));
  return HorizontalSum(_mm256_add_ps(acc[0], acc[1])) + (_mm_cvtss_f32(m) + min_sum);
}

// x = d * (level - offset) for the types without a min: int8 -> int32 ->
// float, times d (the same single rounding as the reference).
template <class T>
void Dequantize(const void* src, float* dst, int64_t n) {
  static_assert(!T::kHasMin);
  const auto* blocks = static_cast<const typename T::Block*>(src);
  for (int64_t ib = 0; ib < n / kQK; ++ib, dst += kQK) {
    const __m256i q = _mm256_sub_epi8(T::Levels(blocks[ib]), _mm256_set1_epi8(T::kOffset));
    const __m256 d = _mm256_set1_ps(F16(blocks[ib].d));
    const __m128i lo = _mm256_castsi256_si128(q), hi = _mm256_extracti128_si256(q, 1);
    const __m128i parts[4] = {lo, _mm_srli_si128(lo, 8), hi, _mm_srli_si128(hi, 8)};
    for (int k = 0; k < 4; ++k) {
      _mm256_storeu_ps(dst + 8 * k,
                       _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(parts[k])), d));
    }
  }
}

// roundf(v): ties away from zero. trunc(v) + sign(v) where |v - trunc(v)| >=
// 0.5 (v - trunc(v) is exact).
inline __m256 RoundHalfAway(__m256 v) {
  const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
  const __m256 frac = Abs(_mm256_sub_ps(v, t));
  const __m256 one = _mm256_or_ps(_mm256_and_ps(v, _mm256_set1_ps(-0.0f)), _mm256_set1_ps(1.0f));
  const __m256 bump = _mm256_and_ps(_mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ), one);
  return _mm256_add_ps(t, bump);
}

// 4 x 8 int32 (elements 0..31 in order) -> 32 int8. packs interleaves the
// 128-bit lanes; the final permute restores element order.
inline __m256i PackInt32ToInt8(__m256i i0, __m256i i1, __m256i i2, __m256i i3) {
  const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
  return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

// Bit-exact with ref::QuantizeQ8_0 / QuantizeQ8_1: d = amax / 127,
// id = 1 / d, q = roundf(x * id), s = fp16(d * sum q).
template <class Block>
void QuantizeQ8(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<Block*>(dst);
  for (int64_t ib = 0; ib < n / kQK; ++ib, x += kQK) {
    __m256 v[4];
    for (int k = 0; k < 4; ++k) v[k] = _mm256_loadu_ps(x + 8 * k);
    const __m256 amax4 =
        _mm256_max_ps(_mm256_max_ps(Abs(v[0]), Abs(v[1])), _mm256_max_ps(Abs(v[2]), Abs(v[3])));
    const float amax = HorizontalMax(amax4);
    const float d = amax / 127;
    const __m256 id = _mm256_set1_ps(d != 0 ? 1.0f / d : 0.0f);
    y[ib].d = ToF16(d);
    __m256i q[4];
    for (int k = 0; k < 4; ++k) q[k] = _mm256_cvttps_epi32(RoundHalfAway(_mm256_mul_ps(v[k], id)));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[ib].qs),
                        PackInt32ToInt8(q[0], q[1], q[2], q[3]));
    if constexpr (std::is_same_v<Block, BlockQ8_1>) {
      const __m256i s =
          _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
      __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
      s4 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
      s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 1));
      y[ib].s = ToF16(static_cast<float>(_mm_cvtsi128_si32(s4)) * d);
    }
  }
}

}  // namespace

float VecDotQ4_0(int64_t n, const void* w, const void* a) { return VecDot<Q4_0>(n, w, a); }
float VecDotQ4_1(int64_t n, const void* w, const void* a) { return VecDot<Q4_1>(n, w, a); }
float VecDotQ5_0(int64_t n, const void* w, const void* a) { return VecDot<Q5_0>(n, w, a); }
float VecDotQ5_1(int64_t n, const void* w, const void* a) { return VecDot<Q5_1>(n, w, a); }
float VecDotQ8_0(int64_t n, const void* w, const void* a) { return VecDot<Q8_0>(n, w, a); }
void DequantizeQ4_0(const void* src, float* dst, int64_t n) { Dequantize<Q4_0>(src, dst, n); }
void DequantizeQ8_0(const void* src, float* dst, int64_t n) { Dequantize<Q8_0>(src, dst, n); }
void QuantizeQ8_0(const float* src, void* dst, int64_t n) { QuantizeQ8<BlockQ8_0>(src, dst, n); }
void QuantizeQ8_1(const float* src, void* dst, int64_t n) { QuantizeQ8<BlockQ8_1>(src, dst, n); }

}  // namespace shardlm::quant::avx2
