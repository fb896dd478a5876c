// AVX2 vec_dot of the K-quants against q8_K, and the q8_K quantizer.
// Compiled with -mavx2 -mfma -mf16c; called only when the CPU has them.
//
// Same algebra as the reference (common/kernels/quant/k_quants.cc): per super-block
//     d d_a sum_j s_j (u . q)_j  -  dmin d_a sum_j m_j bsum_j
// with unsigned levels u, sixteen sub-block scales s_j (one per 16 elements)
// and mins m_j. Each type only supplies Levels<h>() (four registers of 32
// levels: elements 128h..128h+127 in order), Scales() (16 int8) and, for the
// min types, Mins() (16 int16); the dot loop is written once:
//   maddubs(u, q)   -> 16 int16 pair sums, lanes 0-7 from sub-block 2c and
//                      lanes 8-15 from sub-block 2c + 1 (u <= 63, |q| <= 127:
//                      no saturation),
//   madd(., s)      -> 8 int32, each pair times its sub-block scale,
// summed over the 8 chunks in int32, converted once per super-block. The
// float steps, and where the min / offset term enters (MinMode), are
// llama.cpp's, so results equal the reference and llama.cpp to the bit.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/kernels/quant/blocks.h"
#include "common/kernels/quant/ggml_order.h"
#include "common/kernels/quant/kernels.h"
#include "common/kernels/quant/simd_avx2.h"

namespace shardlm::quant::SHARDLM_SIMD_NS {
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
  static constexpr MinMode kMinMode = MinMode::kLanesFirst;
  static constexpr int kGemmSteps = 2;  // ggml_gemm_q2_K_8x8: 128 elements
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
  static constexpr MinMode kMinMode = MinMode::kSigned;
  static constexpr int kOffset = 4;
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
  static constexpr MinMode kMinMode = kFifthBit ? MinMode::kScalar : MinMode::kLanes4;
  static constexpr int kGemmSteps = 4;  // ggml_gemm_q4_K_8x8: 64 elements
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
  // The 8 mins (one per 32 elements) as int16.
  static __m128i Mins8(const Block& b) {
    return _mm_cvtepu8_epi16(_mm_srli_si128(ScalesAndMinsK4(b.scales), 8));
  }
  static float Dmin(const Block& b) { return F16(b.dmin); }
};
using Q4K = Q45K<BlockQ4_K, false>;
using Q5K = Q45K<BlockQ5_K, true>;

struct Q6K {
  using Block = BlockQ6_K;
  static constexpr MinMode kMinMode = MinMode::kIntLanes;
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
// `s` holds those eight int16 scales in both 128-bit lanes. Calls
// sink(c, lanes) with the 8 int32 lanes of elements 128 kH + 32 c .. + 31,
// each times its scale.
template <class T, int kH, class Sink>
inline void HalfChunks(const typename T::Block& b, const BlockQ8_K& y, __m256i s,
                       const __m256i* shuffle, Sink&& sink) {
  __m256i u[4];
  T::template Levels<kH>(b, u);
  for (int c = 0; c < 4; ++c) {
    const __m256i q = Load256(y.qs + 128 * kH + 32 * c);
    __m256i p = _mm256_maddubs_epi16(u[c], q);
    if constexpr (T::kMinMode == MinMode::kSigned) {  // (u - offset) q, per element
      p = _mm256_sub_epi16(p, _mm256_maddubs_epi16(_mm256_set1_epi8(T::kOffset), q));
    }
    sink(4 * kH + c, _mm256_madd_epi16(p, _mm256_shuffle_epi8(s, shuffle[c])));
  }
}

// The 8 chunks (32 elements each) of one super-block, to `sink`.
template <class T, class Sink>
inline void ScaledChunks(const typename T::Block& b, const BlockQ8_K& y, const __m256i* shuffle,
                         Sink&& sink) {
  const __m256i s16 = _mm256_cvtepi8_epi16(T::Scales(b));
  HalfChunks<T, 0>(b, y, _mm256_permute4x64_epi64(s16, 0x44), shuffle, sink);
  HalfChunks<T, 1>(b, y, _mm256_permute4x64_epi64(s16, 0xEE), shuffle, sink);
}

inline void ScaleShuffles(__m256i* shuffle) {
  for (int k = 0; k < 4; ++k) shuffle[k] = ScalePairShuffle(k);
}

// One output's float steps over its super-blocks (the min / offset term
// where MinMode puts it, then d d_a times the scale sum), as VecDot and the
// tile take them, so both give the same bits.
template <class T>
struct DotChain {
  __m256 acc = _mm256_setzero_ps();
  __m128 acc_min = _mm_setzero_ps();  // kLanes4
  float summs = 0;                    // kScalar

  void Add(const typename T::Block& b, const BlockQ8_K& y, __m256i isum) {
    const __m256i bsums = Load256(y.bsums);
    const float d = y.d * F16(b.d);
    if constexpr (T::kMinMode == MinMode::kIntLanes) {
      // sum_j s_j (u - off) . q = sum_j s_j u . q - off sum_j s_j bsum_j, exact in int32.
      const __m256i s16 = _mm256_cvtepi8_epi16(T::Scales(b));
      isum =
          _mm256_sub_epi32(isum, _mm256_madd_epi16(bsums, _mm256_slli_epi16(s16, T::kOffsetShift)));
    } else if constexpr (T::kMinMode == MinMode::kLanesFirst) {
      acc = _mm256_fmadd_ps(_mm256_set1_ps(-y.d * T::Dmin(b)),
                            _mm256_cvtepi32_ps(_mm256_madd_epi16(bsums, T::Mins(b))), acc);
    } else if constexpr (T::kMinMode == MinMode::kLanes4 || T::kMinMode == MinMode::kScalar) {
      // mins (one per 32) times the 32-element sums of q: 4 int32 lanes
      const __m128i sums32 =
          _mm_hadd_epi16(_mm256_castsi256_si128(bsums), _mm256_extracti128_si256(bsums, 1));
      const __m128i prod = _mm_madd_epi16(T::Mins8(b), sums32);
      const float neg_dmin = -y.d * T::Dmin(b);
      if constexpr (T::kMinMode == MinMode::kLanes4) {
        acc_min = _mm_fmadd_ps(_mm_set1_ps(neg_dmin), _mm_cvtepi32_ps(prod), acc_min);
      } else {
        __m128i h = _mm_add_epi32(prod, _mm_unpackhi_epi64(prod, prod));
        h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 1));
        summs = std::fma(neg_dmin, static_cast<float>(_mm_cvtsi128_si32(h)), summs);
      }
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(isum), acc);
  }

  float Result() const {
    if constexpr (T::kMinMode == MinMode::kLanes4) {
      __m128 m = _mm_add_ps(acc_min, _mm_movehl_ps(acc_min, acc_min));
      m = _mm_add_ss(m, _mm_movehdup_ps(m));
      return HorizontalSum(acc) + _mm_cvtss_f32(m);
    }
    if constexpr (T::kMinMode == MinMode::kScalar) return HorizontalSum(acc) + summs;
    return HorizontalSum(acc);
  }
};

template <class T>
float VecDot(int64_t n, const void* w, const void* a) {
  const auto* wb = static_cast<const typename T::Block*>(w);
  const auto* ab = static_cast<const BlockQ8_K*>(a);
  __m256i shuffle[4];
  ScaleShuffles(shuffle);
  DotChain<T> chain;
  for (int64_t i = 0; i < n / kQKK; ++i) {
    __m256i isum = _mm256_setzero_si256();
    ScaledChunks<T>(wb[i], ab[i], shuffle,
                    [&](int, __m256i v) { isum = _mm256_add_epi32(isum, v); });
    chain.Add(wb[i], ab[i], isum);
  }
  return chain.Result();
}

// Half a super-block of one row against kActs activation rows: the levels
// and each chunk's scale pairs unpacked once; isum[t] += that half's scaled
// chunk sums for activation t (integer adds: any order gives the same sum).
template <class T, int kH, int kActs>
inline void TileHalf(const typename T::Block& b, const BlockQ8_K* const* act, int64_t i, __m256i s,
                     const __m256i* shuffle, __m256i* isum) {
  __m256i u[4];
  T::template Levels<kH>(b, u);
  for (int c = 0; c < 4; ++c) {
    const __m256i scales = _mm256_shuffle_epi8(s, shuffle[c]);
    for (int t = 0; t < kActs; ++t) {
      const __m256i q = Load256(act[t][i].qs + 128 * kH + 32 * c);
      __m256i p = _mm256_maddubs_epi16(u[c], q);
      if constexpr (T::kMinMode == MinMode::kSigned) {
        p = _mm256_sub_epi16(p, _mm256_maddubs_epi16(_mm256_set1_epi8(T::kOffset), q));
      }
      isum[t] = AddPairProducts(isum[t], p, scales);
    }
  }
}

// vec_dot over a tile (tensor_format.h VecDotTileFn): one row at a time
// against all kActs activation rows, each output its own DotChain, so it
// equals VecDot to the bit; the unpacking is shared by the tokens.
template <class T, int kActs>
void VecDotTile(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
                float* out) {
  const BlockQ8_K* act[kActs];
  for (int t = 0; t < kActs; ++t) act[t] = RowAt<BlockQ8_K>(a, a_stride, t);
  __m256i shuffle[4];
  ScaleShuffles(shuffle);
  for (int r = 0; r < kTileRows; ++r) {
    const auto* wb = RowAt<typename T::Block>(w, row_bytes, r);
    DotChain<T> chain[kActs];
    for (int64_t i = 0; i < n / kQKK; ++i) {
      __m256i isum[kActs];
      for (__m256i& v : isum) v = _mm256_setzero_si256();
      const __m256i s16 = _mm256_cvtepi8_epi16(T::Scales(wb[i]));
      TileHalf<T, 0, kActs>(wb[i], act, i, _mm256_permute4x64_epi64(s16, 0x44), shuffle, isum);
      TileHalf<T, 1, kActs>(wb[i], act, i, _mm256_permute4x64_epi64(s16, 0xEE), shuffle, isum);
      for (int t = 0; t < kActs; ++t) chain[t].Add(wb[i], act[t][i], isum[t]);
    }
    for (int t = 0; t < kActs; ++t) out[kTileRows * t + r] = chain[t].Result();
  }
}

template <class T>
void VecDotTileActs(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
                    int n_act, float* out) {
  static_assert(kTileActs == 4);
  WithActs(n_act, [&](auto acts) {
    VecDotTile<T, decltype(acts)::value>(n, w, row_bytes, a, a_stride, out);
  });
}

// Sums of the 8 int32 lanes of each of v[0..7] -> one vector, v[r]'s in lane r.
inline __m256i SumLanesOf8(const __m256i* v) {
  const __m256i h0 =
      _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
  const __m256i h1 =
      _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
  return _mm256_add_epi32(_mm256_permute2x128_si256(h0, h1, 0x20),
                          _mm256_permute2x128_si256(h0, h1, 0x31));
}

// Eight rows as llama.cpp's repacked kernels compute them (k_quants.cc
// VecDotX8): the rows' integer scale sums and min sums fill 8 lanes each, and
// two FMA chains (scale, min) run over the steps for all rows at once. A step
// is a super-block (gemv), or 256 / kGemmSteps elements (gemm).
// Lanes of a (low half) and b (high half) per 128-bit lane, as _mm256_shuffle_ps
// picks them; the selector is a template argument because the intrinsic
// needs a constant even where the compiler does not unroll.
template <int kImm>
inline __m256i PickLanes(__m256i a, __m256i b) {
  return _mm256_castps_si256(
      _mm256_shuffle_ps(_mm256_castsi256_ps(a), _mm256_castsi256_ps(b), kImm));
}

// Per-step min sums of 8 rows: mins[r] lane k holds row r's min term of
// elements 32k .. 32k + 31; out[st] lane r gets row r's sum over step st.
template <int kSteps>
inline void StepMins(const __m256i* mins, __m256i* out) {
  if constexpr (kSteps == 1) {
    out[0] = SumLanesOf8(mins);
  } else {
    // Pairs of lanes first: h[i] = [r s0, r s1, r' s0, r' s1 | r s2, r s3, r' s2, r' s3]
    // for rows r = 2i, r' = 2i + 1 (steps of 64 elements).
    __m256i h[4];
    for (int i = 0; i < 4; ++i) h[i] = _mm256_hadd_epi32(mins[2 * i], mins[2 * i + 1]);
    if constexpr (kSteps == 2) {  // steps of 128: add the pairs of pairs
      for (int i = 0; i < 4; ++i) h[i] = _mm256_add_epi32(h[i], _mm256_shuffle_epi32(h[i], 0xB1));
    }
    constexpr int kHalf = kSteps == 4 ? 2 : 1;
    // Lanes 0, 2 (even) of each source; with 4 steps also lanes 1, 3 (odd).
    const __m256i lo = PickLanes<0x88>(h[0], h[1]),
                  hi = PickLanes<0x88>(h[2], h[3]);  // rows 0-3, 4-7
    out[0] = _mm256_permute2x128_si256(lo, hi, 0x20);
    out[kHalf] = _mm256_permute2x128_si256(lo, hi, 0x31);
    if constexpr (kSteps == 4) {
      const __m256i lo1 = PickLanes<0xDD>(h[0], h[1]), hi1 = PickLanes<0xDD>(h[2], h[3]);
      out[1] = _mm256_permute2x128_si256(lo1, hi1, 0x20);
      out[3] = _mm256_permute2x128_si256(lo1, hi1, 0x31);
    }
  }
}

template <class T, int kSteps, int kActs>
void VecDotX8Steps(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
                   float* out) {
  using WB = typename T::Block;
  constexpr int kChunks = 8 / kSteps;  // 32-element chunks per step
  const BlockQ8_K* act[kActs];
  for (int t = 0; t < kActs; ++t) act[t] = RowAt<BlockQ8_K>(a, a_stride, t);
  const WB* rows[8];
  for (int r = 0; r < 8; ++r) rows[r] = RowAt<WB>(w, row_bytes, r);
  __m256i shuffle[4];
  ScaleShuffles(shuffle);
  __m256 acc[kActs], acc_min[kActs];
  for (int t = 0; t < kActs; ++t) acc[t] = acc_min[t] = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / kQKK; ++i) {
    alignas(16) uint16_t d[8], dmin[8];
    __m256i isum[kActs][kSteps][8], mins[kActs][8];
    for (int r = 0; r < 8; ++r) {
      const WB& b = rows[r][i];
      // Eight short streams defeat the hardware prefetcher: fetch the same
      // block of the next 8-row group (MatMul's next call) meanwhile.
      const char* ahead = reinterpret_cast<const char*>(&b) + 8 * row_bytes;
      for (size_t off = 0; off < sizeof(WB); off += 64) _mm_prefetch(ahead + off, _MM_HINT_T0);
      d[r] = b.d;
      dmin[r] = b.dmin;
      const __m256i row_mins = T::Mins(b);
      for (int t = 0; t < kActs; ++t) {
        ScaledChunks<T>(b, act[t][i], shuffle, [&](int c, __m256i v) {
          __m256i& s = isum[t][c / kChunks][r];
          s = c % kChunks ? _mm256_add_epi32(s, v) : v;
        });
        // lane k: the mins of elements 32k .. 32k + 31 times their sums of q
        mins[t][r] = _mm256_madd_epi16(Load256(act[t][i].bsums), row_mins);
      }
    }
    const __m256 dw = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(d)));
    const __m256 dm = _mm256_cvtph_ps(_mm_load_si128(reinterpret_cast<const __m128i*>(dmin)));
    for (int t = 0; t < kActs; ++t) {
      __m256i imin[kSteps];
      StepMins<kSteps>(mins[t], imin);
      const __m256 da = _mm256_set1_ps(act[t][i].d);
      const __m256 scale = _mm256_mul_ps(dw, da), scale_min = _mm256_mul_ps(dm, da);
      for (int st = 0; st < kSteps; ++st) {
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(SumLanesOf8(isum[t][st])), scale, acc[t]);
        acc_min[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(imin[st]), scale_min, acc_min[t]);
      }
    }
  }
  for (int t = 0; t < kActs; ++t) _mm256_storeu_ps(out + 8 * t, _mm256_sub_ps(acc[t], acc_min[t]));
}

template <class T, int kSteps>
void VecDotX8Acts(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
                  int n_act, float* out) {
  WithActs(n_act, [&](auto acts) {
    VecDotX8Steps<T, kSteps, decltype(acts)::value>(n, w, row_bytes, a, a_stride, out);
  });
}

template <class T>
void VecDotX8(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride, int n_act,
              float* out, bool gemm) {
  if (gemm) {
    VecDotX8Acts<T, T::kGemmSteps>(n, w, row_bytes, a, a_stride, n_act, out);
  } else {
    VecDotX8Acts<T, 1>(n, w, row_bytes, a, a_stride, n_act, out);
  }
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
void VecDotTileQ3_K(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
                    int n_act, float* out) {
  VecDotTileActs<Q3K>(n, w, row_bytes, a, a_stride, n_act, out);
}
void VecDotTileQ5_K(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
                    int n_act, float* out) {
  VecDotTileActs<Q5K>(n, w, row_bytes, a, a_stride, n_act, out);
}
void VecDotTileQ6_K(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
                    int n_act, float* out) {
  VecDotTileActs<Q6K>(n, w, row_bytes, a, a_stride, n_act, out);
}
void VecDotX8Q2_K(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
                  int n_act, float* out, bool gemm) {
  VecDotX8<Q2K>(n, w, row_bytes, a, a_stride, n_act, out, gemm);
}
void VecDotX8Q4_K(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
                  int n_act, float* out, bool gemm) {
  VecDotX8<Q4K>(n, w, row_bytes, a, a_stride, n_act, out, gemm);
}

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

}  // namespace shardlm::quant::SHARDLM_SIMD_NS
