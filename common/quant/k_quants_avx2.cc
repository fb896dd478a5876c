// AVX2 vec_dot of the K-quants against q8_K, and the q8_K quantizer.
// Compiled with -mavx2 -mfma -mf16c; called only when the CPU has them.
//
// Same algebra as the reference (common/quant/k_quants.cc): per super-block
//     d d_a sum_j s_j (u . q)_j  -  dmin d_a sum_j m_j bsum_j
// with unsigned levels u, sixteen sub-block scales s_j (one per 16 elements)
// and mins m_j (for q3_K/q6_K: m_j = offset * s_j, dmin = d). Each type only
// supplies Levels<h>() (four registers of 32 levels: elements 128h..128h+127
// in order), Scales() (16 int8) and, for the min types, Mins() (16 int16);
// the dot loop is written once:
//   maddubs(u, q)   -> 16 int16 pair sums, lanes 0-7 from sub-block 2c and
//                      lanes 8-15 from sub-block 2c + 1 (u <= 63, |q| <= 127:
//                      no saturation),
//   madd(., s)      -> 8 int32, each pair times its sub-block scale,
// summed over the 8 chunks in int32, converted once per super-block.
#include <cstdint>
#include <cstring>

#include "common/quant/blocks.h"
#include "common/quant/kernels.h"
#include "common/quant/simd_avx2.h"

namespace shardlm::quant::avx2 {
namespace {

inline __m256i Load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// The bits `kMask << kShift` of every byte, moved down to bit kTo: one shift
// of the 16-bit lanes and one AND (the shift drags bits across neighbouring
// bytes; the mask removes them).
template <int kShift, int kMask, int kTo = 0>
inline __m256i Field(__m256i v) {
  const __m256i mask = _mm256_set1_epi8(static_cast<char>(kMask << kTo));
  if constexpr (kShift == kTo) return _mm256_and_si256(v, mask);
  if constexpr (kShift > kTo) return _mm256_and_si256(_mm256_srli_epi16(v, kShift - kTo), mask);
  return _mm256_and_si256(_mm256_slli_epi16(v, kTo - kShift), mask);
}

// Each type: Levels<kH>(block, u) fills u[0..3] with the levels of elements
// 128 kH .. 128 kH + 127 (four chunks of 32, in order), Scales() gives the 16
// sub-block scales as int8, Mins() (min types) the 16 mins as int16.

// 12 bytes (8 + 4, never reading past the field) as the low three uint32
// lanes of a vector.
inline __m128i Load12(const uint8_t* p) {
  uint32_t w2;
  std::memcpy(&w2, p + 8, sizeof(w2));
  return _mm_insert_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)),
                          static_cast<int>(w2), 2);
}

struct Q2K {
  using Block = BlockQ2_K;
  static constexpr int kOffsetShift = -1;  // has mins
  template <int kH>
  static void Levels(const Block& b, __m256i* u) {
    const __m256i q = Load256(b.qs + 32 * kH);
    u[0] = Field<0, 3>(q);
    u[1] = Field<2, 3>(q);
    u[2] = Field<4, 3>(q);
    u[3] = Field<6, 3>(q);
  }
  static __m128i Scales(const Block& b) {
    return _mm_and_si128(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales)),
                         _mm_set1_epi8(0xF));
  }
  static __m256i Mins(const Block& b) {
    const __m128i m = _mm_and_si128(
        _mm_srli_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales)), 4),
        _mm_set1_epi8(0xF));
    return _mm256_cvtepu8_epi16(m);
  }
  static float Dmin(const Block& b) { return F16(b.dmin); }
};

struct Q3K {
  using Block = BlockQ3_K;
  static constexpr int kOffsetShift = 2;  // offset 4
  // Bit 2 of element 128h + 32k + l is bit 4h + k of hmask[l].
  template <int kH>
  static void Levels(const Block& b, __m256i* u) {
    const __m256i q = Load256(b.qs + 32 * kH);
    const __m256i hm = Load256(b.hmask);
    u[0] = _mm256_or_si256(Field<0, 3>(q), Field<4 * kH + 0, 1, 2>(hm));
    u[1] = _mm256_or_si256(Field<2, 3>(q), Field<4 * kH + 1, 1, 2>(hm));
    u[2] = _mm256_or_si256(Field<4, 3>(q), Field<4 * kH + 2, 1, 2>(hm));
    u[3] = _mm256_or_si256(Field<6, 3>(q), Field<4 * kH + 3, 1, 2>(hm));
  }
  // The UnpackScalesQ3K layout four scales per uint32 lane w0 w1 w2:
  //   lane 0: w0 & 0x0F.. | ((w2 >> 0) & 3..) << 4     (scales 0-3)
  //   lane 1: w1 & 0x0F.. | ((w2 >> 2) & 3..) << 4     (scales 4-7)
  //   lane 2: (w0 >> 4) & 0x0F.. | ((w2 >> 4) & 3..) << 4
  //   lane 3: (w1 >> 4) & 0x0F.. | ((w2 >> 6) & 3..) << 4
  // then minus 32.
  static __m128i Scales(const Block& b) {
    const __m128i v = Load12(b.scales);
    const __m128i low = _mm_and_si128(
        _mm_srlv_epi32(_mm_shuffle_epi32(v, _MM_SHUFFLE(1, 0, 1, 0)), _mm_setr_epi32(0, 0, 4, 4)),
        _mm_set1_epi8(0x0F));
    const __m128i high = _mm_and_si128(
        _mm_srlv_epi32(_mm_shuffle_epi32(v, _MM_SHUFFLE(2, 2, 2, 2)), _mm_setr_epi32(0, 2, 4, 6)),
        _mm_set1_epi8(0x03));
    return _mm_sub_epi8(_mm_or_si128(low, _mm_slli_epi32(high, 4)), _mm_set1_epi8(32));
  }
};

// q4_K / q5_K: 32-element sub-blocks, so every 6-bit scale and min serves two
// 16-element sub-blocks. Returns bytes 0-7 scales, 8-15 mins (the
// UnpackScaleMinK4 layout), from the uint32 words w0 w1 w2 of the 12 bytes:
//   scales 0-3 = w0 & 0x3F..         scales 4-7 = (w2 & 0x0F..) | ((w0 >> 6) & 3..) << 4
//   mins 0-3   = w1 & 0x3F..         mins 4-7   = ((w2 >> 4) & 0x0F..) | ((w1 >> 6) & 3..) << 4
// ((w >> 6) & 3) << 4 per byte is (w >> 2) & 0x30.
inline __m128i ScalesAndMinsK4(const uint8_t* scales) {
  const __m128i v = Load12(scales);
  const __m128i low = _mm_and_si128(
      _mm_srlv_epi32(_mm_shuffle_epi32(v, _MM_SHUFFLE(2, 1, 2, 0)), _mm_setr_epi32(0, 0, 0, 4)),
      _mm_setr_epi32(0x3F3F3F3F, 0x0F0F0F0F, 0x3F3F3F3F, 0x0F0F0F0F));
  const __m128i high =
      _mm_and_si128(_mm_srli_epi32(_mm_shuffle_epi32(v, _MM_SHUFFLE(1, 1, 0, 0)), 2),
                    _mm_setr_epi32(0, 0x30303030, 0, 0x30303030));
  return _mm_or_si128(low, high);
}

template <class B, bool kFifthBit>
struct Q45K {
  using Block = B;
  static constexpr int kOffsetShift = -1;
  template <int kH>
  static void Levels(const Block& b, __m256i* u) {
    const __m256i q0 = Load256(b.qs + 64 * kH), q1 = Load256(b.qs + 64 * kH + 32);
    u[0] = Field<0, 0xF>(q0);
    u[1] = Field<4, 0xF>(q0);
    u[2] = Field<0, 0xF>(q1);
    u[3] = Field<4, 0xF>(q1);
    if constexpr (kFifthBit) {  // bit c of qh[l] is bit 4 of element 32c + l
      const __m256i hb = Load256(b.qh);
      u[0] = _mm256_or_si256(u[0], Field<4 * kH + 0, 1, 4>(hb));
      u[1] = _mm256_or_si256(u[1], Field<4 * kH + 1, 1, 4>(hb));
      u[2] = _mm256_or_si256(u[2], Field<4 * kH + 2, 1, 4>(hb));
      u[3] = _mm256_or_si256(u[3], Field<4 * kH + 3, 1, 4>(hb));
    }
  }
  static __m128i Scales(const Block& b) {
    const __m128i sm = ScalesAndMinsK4(b.scales);
    return _mm_unpacklo_epi8(sm, sm);
  }
  static __m256i Mins(const Block& b) {
    const __m128i sm = ScalesAndMinsK4(b.scales);
    return _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(sm, sm));
  }
  static float Dmin(const Block& b) { return F16(b.dmin); }
};
using Q4K = Q45K<BlockQ4_K, false>;
using Q5K = Q45K<BlockQ5_K, true>;

struct Q6K {
  using Block = BlockQ6_K;
  static constexpr int kOffsetShift = 5;  // offset 32
  template <int kH>
  static void Levels(const Block& b, __m256i* u) {
    const __m256i l0 = Load256(b.ql + 64 * kH), l1 = Load256(b.ql + 64 * kH + 32);
    const __m256i hh = Load256(b.qh + 32 * kH);
    u[0] = _mm256_or_si256(Field<0, 0xF>(l0), Field<0, 3, 4>(hh));
    u[1] = _mm256_or_si256(Field<0, 0xF>(l1), Field<2, 3, 4>(hh));
    u[2] = _mm256_or_si256(Field<4, 0xF>(l0), Field<4, 3, 4>(hh));
    u[3] = _mm256_or_si256(Field<4, 0xF>(l1), Field<6, 3, 4>(hh));
  }
  static __m128i Scales(const Block& b) {
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.scales));
  }
};

// Shuffle picking int16 word 2k in the low lane and word 2k + 1 in the high
// lane, each repeated 8 times: the scales of the two sub-blocks of a chunk.
inline __m256i ScalePairShuffle(int k) {
  const int8_t lo = static_cast<int8_t>(4 * k), hi = static_cast<int8_t>(4 * k + 2);
  const __m128i l = _mm_set1_epi16(static_cast<int16_t>(lo | ((lo + 1) << 8)));
  const __m128i h = _mm_set1_epi16(static_cast<int16_t>(hi | ((hi + 1) << 8)));
  return _mm256_set_m128i(h, l);
}

// One half (128 elements, sub-blocks 8 kH .. 8 kH + 7) of a super-block:
// `s` holds those eight int16 scales in both 128-bit lanes.
template <class T, int kH>
inline __m256i Half(const typename T::Block& b, const BlockQ8_K& y, __m256i s,
                    const __m256i* shuffle) {
  __m256i u[4];
  T::template Levels<kH>(b, u);
  __m256i sum = _mm256_setzero_si256();
  for (int c = 0; c < 4; ++c) {
    const __m256i p = _mm256_maddubs_epi16(u[c], Load256(y.qs + 128 * kH + 32 * c));
    sum = _mm256_add_epi32(sum, _mm256_madd_epi16(p, _mm256_shuffle_epi8(s, shuffle[c])));
  }
  return sum;
}

template <class T>
float VecDot(int64_t n, const void* w, const void* a) {
  const auto* wb = static_cast<const typename T::Block*>(w);
  const auto* ab = static_cast<const BlockQ8_K*>(a);
  const __m256i shuffle[4] = {ScalePairShuffle(0), ScalePairShuffle(1), ScalePairShuffle(2),
                              ScalePairShuffle(3)};
  __m256 acc = _mm256_setzero_ps();
  __m256 acc_min = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const auto& b = wb[i];
    const BlockQ8_K& y = ab[i];
    const __m256i s16 = _mm256_cvtepi8_epi16(T::Scales(b));
    // sum over the 8 chunks of madd(maddubs(u, q), scales of the chunk)
    __m256i isum = _mm256_add_epi32(Half<T, 0>(b, y, _mm256_permute4x64_epi64(s16, 0x44), shuffle),
                                    Half<T, 1>(b, y, _mm256_permute4x64_epi64(s16, 0xEE), shuffle));
    const __m256i bsums = Load256(y.bsums);
    if constexpr (T::kOffsetShift >= 0) {
      // sum_j s_j (u - off) . q = sum_j s_j u . q - off sum_j s_j bsum_j, exact in int32.
      isum =
          _mm256_sub_epi32(isum, _mm256_madd_epi16(bsums, _mm256_slli_epi16(s16, T::kOffsetShift)));
      acc = _mm256_fmadd_ps(_mm256_set1_ps(F16(b.d) * y.d), _mm256_cvtepi32_ps(isum), acc);
    } else {
      acc = _mm256_fmadd_ps(_mm256_set1_ps(F16(b.d) * y.d), _mm256_cvtepi32_ps(isum), acc);
      const __m256i msum = _mm256_madd_epi16(bsums, T::Mins(b));
      acc_min =
          _mm256_fmadd_ps(_mm256_set1_ps(T::Dmin(b) * y.d), _mm256_cvtepi32_ps(msum), acc_min);
    }
  }
  return HorizontalSum(_mm256_sub_ps(acc, acc_min));
}

// Sums of 16 consecutive int32 values of q[2g], q[2g + 1] for g = 0..3 (64
// elements) -> 4 int32: hadd pairs up lanes within 128-bit halves; the last
// add folds the halves.
inline __m128i Sums16(const __m256i* q) {
  const __m256i a = _mm256_add_epi32(q[0], q[1]), b = _mm256_add_epi32(q[2], q[3]);
  const __m256i c = _mm256_add_epi32(q[4], q[5]), d = _mm256_add_epi32(q[6], q[7]);
  const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
  return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

}  // namespace

float VecDotQ2_K(int64_t n, const void* w, const void* a) { return VecDot<Q2K>(n, w, a); }
float VecDotQ3_K(int64_t n, const void* w, const void* a) { return VecDot<Q3K>(n, w, a); }
float VecDotQ4_K(int64_t n, const void* w, const void* a) { return VecDot<Q4K>(n, w, a); }
float VecDotQ5_K(int64_t n, const void* w, const void* a) { return VecDot<Q5K>(n, w, a); }
float VecDotQ6_K(int64_t n, const void* w, const void* a) { return VecDot<Q6K>(n, w, a); }

// Bit-exact with ref::QuantizeQ8_K. max is the signed value of largest
// magnitude, the first one on ties (found by scanning for |x| == amax);
// cvtps_epi32 rounds to nearest even like ggml's nearest_int.
void QuantizeQ8_K(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_K*>(dst);
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    __m256 amax8 = _mm256_setzero_ps();
    for (int k = 0; k < 32; ++k) amax8 = _mm256_max_ps(amax8, Abs(_mm256_loadu_ps(x + 8 * k)));
    const float amax = HorizontalMax(amax8);
    if (amax == 0) {
      std::memset(&y[i], 0, sizeof(y[i]));
      continue;
    }
    float max = amax;
    const __m256 target = _mm256_set1_ps(amax);
    for (int k = 0; k < 32; ++k) {
      const int mask =
          _mm256_movemask_ps(_mm256_cmp_ps(Abs(_mm256_loadu_ps(x + 8 * k)), target, _CMP_EQ_OQ));
      if (mask != 0) {
        max = x[8 * k + __builtin_ctz(mask)];
        break;
      }
    }
    const float iscale = -127.f / max;
    const __m256 vscale = _mm256_set1_ps(iscale);
    const __m256i limit = _mm256_set1_epi32(127);
    for (int g = 0; g < 4; ++g) {  // 64 elements: 8 vectors of 8
      __m256i q[8];
      for (int k = 0; k < 8; ++k) {
        const __m256 v = _mm256_mul_ps(vscale, _mm256_loadu_ps(x + 64 * g + 8 * k));
        q[k] = _mm256_min_epi32(_mm256_cvtps_epi32(v), limit);
      }
      const __m256i idx = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
      for (int h = 0; h < 2; ++h) {
        const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(q[4 * h], q[4 * h + 1]),
                                             _mm256_packs_epi32(q[4 * h + 2], q[4 * h + 3]));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[i].qs + 64 * g + 32 * h),
                            _mm256_permutevar8x32_epi32(p, idx));
      }
      _mm_storel_epi64(reinterpret_cast<__m128i*>(y[i].bsums + 4 * g),
                       _mm_packs_epi32(Sums16(q), Sums16(q)));
    }
    y[i].d = 1 / iscale;
  }
}

}  // namespace shardlm::quant::avx2
