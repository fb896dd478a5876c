// AVX2 kernels of the legacy 32-element block types and the q8_0 / q8_1
// activation quantizers. Compiled with -mavx2 -mfma -mf16c; called only when
// the CPU has them (tensor_format.cc).
//
// One block of any weight type becomes 32 int8 levels in a register (a
// per-type Levels()); the dot product is written once: maddubs forms
// u8 x s8 pair sums, madd widens them to 8 int32, and one FMA per block adds
// (d_w d_a) * sum to the float lanes. The float steps are llama.cpp's (one
// 8-lane accumulator, blocks in order, hsum_float_8; see legacy.cc), so the
// results equal the reference kernels and llama.cpp to the bit.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "common/kernels/quant/blocks.h"
#include "common/kernels/quant/kernels.h"
#include "common/kernels/quant/simd_avx2.h"

namespace shardlm::quant::SHARDLM_SIMD_NS {
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

// The dot product of a block's levels with an activation block, in two
// parts: ActTerm (once per activation block, shared by the rows of a tile)
// and BlockDot (per weight row), giving 8 int32 partial sums of
// sum_j (level_j - offset) a_j; the rows' levels pass through DotLevels.
//   AVX2: offset levels: maddubs(u, a) - maddubs(o, a) on int16 pairs (the
//   term is maddubs(o, a)); signed levels (q8_0): the sign trick.
//   VNNI: the term is -sum(o a) in int32 lanes, the start value of one
//   vpdpbusd; q8_0's signed levels become unsigned + 128 (xor 0x80), so they
//   take the same path with o = 128. Exact in int32 either way: equal lanes.
template <class T>
constexpr int DotOffset() {
  return SHARDLM_SIMD_VNNI && T::kSigned ? 128 : T::kOffset;
}

template <class T>
inline __m256i DotLevels(__m256i q) {
  if constexpr (SHARDLM_SIMD_VNNI && T::kSigned) return _mm256_xor_si256(q, _mm256_set1_epi8(-128));
  return q;
}

template <class T>
inline __m256i ActTerm(__m256i a) {
  if constexpr (DotOffset<T>() == 0 || (!SHARDLM_SIMD_VNNI && T::kSigned)) {
    return _mm256_setzero_si256();  // unused
  } else {
#if SHARDLM_SIMD_VNNI
    const __m256i o = _mm256_set1_epi8(static_cast<char>(DotOffset<T>()));
    return _mm256_sub_epi32(_mm256_setzero_si256(), DotU8I8(o, a));
#else
    return _mm256_maddubs_epi16(_mm256_set1_epi8(T::kOffset), a);
#endif
  }
}

template <class T>
inline __m256i BlockDot(__m256i q, __m256i a, __m256i term) {
#if SHARDLM_SIMD_VNNI
  return _mm256_dpbusd_epi32(term, q, a);
#else
  if constexpr (T::kSigned) return DotI8I8(q, a);
  if constexpr (T::kOffset == 0) return DotU8I8(q, a);
  return PairSums(_mm256_sub_epi16(_mm256_maddubs_epi16(q, a), term));
#endif
}

template <class T>
float VecDot(int64_t n, const void* w, const void* a) {
  using Act = std::conditional_t<T::kHasMin, BlockQ8_1, BlockQ8_0>;
  const auto* wb = static_cast<const typename T::Block*>(w);
  const auto* ab = static_cast<const Act*>(a);
  const int64_t nb = n / kQK;
  __m256 acc = _mm256_setzero_ps();
  float summs = 0;  // m_w * s_a, types with a min
  for (int64_t ib = 0; ib < nb; ++ib) {
    const __m256i q = DotLevels<T>(T::Levels(wb[ib]));
    const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ab[ib].qs));
    const __m256 d = _mm256_set1_ps(F16(wb[ib].d) * F16(ab[ib].d));
    acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(BlockDot<T>(q, y, ActTerm<T>(y))), acc);
    if constexpr (T::kHasMin) summs = std::fma(F16(wb[ib].m), F16(ab[ib].s), summs);
  }
  if constexpr (T::kHasMin) return HorizontalSum(acc) + summs;
  return HorizontalSum(acc);
}

// VecDot for kTileRows rows x kActs activation rows: each weight block is
// unpacked once per tile and each activation block loaded once; every
// output keeps VecDot's own 8-lane FMA chain and final sum, so it equals
// VecDot to the bit.
template <class T, int kActs>
void VecDotTile(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
                float* out) {
  using Act = std::conditional_t<T::kHasMin, BlockQ8_1, BlockQ8_0>;
  constexpr int kRows = kTileRows;
  const typename T::Block* rows[kRows];
  for (int r = 0; r < kRows; ++r) rows[r] = RowAt<typename T::Block>(w, row_bytes, r);
  const Act* act[kActs];
  for (int t = 0; t < kActs; ++t) act[t] = RowAt<Act>(a, a_stride, t);
  __m256 acc[kActs][kRows];
  float summs[kActs][kRows] = {};
  for (auto& row : acc)
    for (__m256& v : row) v = _mm256_setzero_ps();
  for (int64_t ib = 0; ib < n / kQK; ++ib) {
    __m256i q[kRows];
    float dw[kRows];
    for (int r = 0; r < kRows; ++r) {
      // Short interleaved streams defeat the hardware prefetcher: fetch the
      // same block of the next tile's rows (MatMul's next call) meanwhile.
      _mm_prefetch(reinterpret_cast<const char*>(rows[r] + ib) + kRows * row_bytes, _MM_HINT_T0);
      q[r] = DotLevels<T>(T::Levels(rows[r][ib]));
      dw[r] = F16(rows[r][ib].d);
    }
    for (int t = 0; t < kActs; ++t) {
      const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(act[t][ib].qs));
      const float da = F16(act[t][ib].d);
      const __m256i term = ActTerm<T>(y);
      for (int r = 0; r < kRows; ++r) {
        acc[t][r] = _mm256_fmadd_ps(_mm256_set1_ps(dw[r] * da),
                                    _mm256_cvtepi32_ps(BlockDot<T>(q[r], y, term)), acc[t][r]);
        if constexpr (T::kHasMin) {
          summs[t][r] = std::fma(F16(rows[r][ib].m), F16(act[t][ib].s), summs[t][r]);
        }
      }
    }
  }
  for (int t = 0; t < kActs; ++t) {
    for (int r = 0; r < kRows; ++r) {
      out[kRows * t + r] = HorizontalSum(acc[t][r]);
      if constexpr (T::kHasMin) out[kRows * t + r] += summs[t][r];
    }
  }
}

#if SHARDLM_SIMD_VNNI
// The avx512 set's tile: the same products in the same float order as
// VecDotTile, with fewer instructions per block (the compute-bound prompt
// shape, and less work between the loads of memory-bound decode):
// - two blocks' integer sums in one zmm vpdpbusd (lanes 0-7 block ib,
//   8-15 block ib + 1), converted at once; the two FMAs stay in block order
//   on the 8-lane accumulator (the low half, then the extracted high half);
// - the scales d_w d_a of 8 blocks at a time as vectors (one vcvtph2ps per
//   row and activation, one vmulps per output) instead of a scalar convert,
//   multiply and broadcast per block and output; the FMAs broadcast them
//   from memory. Each product is the same single float rounding.
inline __m512i PairOf(__m256i lo, __m256i hi) {
  return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

template <class T>
inline __m512i PairDotLevels(const typename T::Block* b) {
  const __m512i q = PairOf(T::Levels(b[0]), T::Levels(b[1]));
  if constexpr (T::kSigned) return _mm512_xor_si512(q, _mm512_set1_epi8(-128));
  return q;
}

template <class T>
inline __m512i PairActTerm(__m512i a) {
  if constexpr (DotOffset<T>() == 0) {
    return _mm512_setzero_si512();
  } else {
    const __m512i o = _mm512_set1_epi8(static_cast<char>(DotOffset<T>()));
    return _mm512_sub_epi32(_mm512_setzero_si512(),
                            _mm512_dpbusd_epi32(_mm512_setzero_si512(), o, a));
  }
}

// The f16 scales of 8 consecutive blocks (`stride` bytes apart) as floats,
// gathered in a register (2-byte stores and a 16-byte reload would stall
// store forwarding). The lane of _mm_insert_epi16 must be a constant, so the
// inserts are spelled out (a generic lambda here was not inlined: 7% of a
// q8_0 prompt's time in calls).
__attribute__((always_inline)) inline __m256 Scales8(const uint16_t* d, size_t stride) {
  const auto* p = reinterpret_cast<const uint8_t*>(d);
  const auto at = [p, stride](int j) {
    uint16_t v;
    std::memcpy(&v, p + j * stride, sizeof(v));
    return v;
  };
  __m128i h = _mm_cvtsi32_si128(at(0));
  h = _mm_insert_epi16(h, at(1), 1);
  h = _mm_insert_epi16(h, at(2), 2);
  h = _mm_insert_epi16(h, at(3), 3);
  h = _mm_insert_epi16(h, at(4), 4);
  h = _mm_insert_epi16(h, at(5), 5);
  h = _mm_insert_epi16(h, at(6), 6);
  h = _mm_insert_epi16(h, at(7), 7);
  return _mm256_cvtph_ps(h);
}

template <int J>
inline __m256 Lane(__m256 v) {
  return _mm256_permutexvar_ps(_mm256_set1_epi32(J), v);
}

template <class T, int kActs>
void VecDotTileZmm(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
                   float* out) {
  using Act = std::conditional_t<T::kHasMin, BlockQ8_1, BlockQ8_0>;
  using WB = typename T::Block;
  constexpr int kRows = kTileRows;
  const WB* rows[kRows];
  for (int r = 0; r < kRows; ++r) rows[r] = RowAt<WB>(w, row_bytes, r);
  const Act* act[kActs];
  for (int t = 0; t < kActs; ++t) act[t] = RowAt<Act>(a, a_stride, t);
  __m256 acc[kActs][kRows];
  float summs[kActs][kRows] = {};
  for (auto& row : acc)
    for (__m256& v : row) v = _mm256_setzero_ps();
  // kHasMin: m_w s_a, one scalar FMA chain per output in block order.
  const auto add_min = [&](int64_t ib) {
    if constexpr (T::kHasMin) {
      for (int t = 0; t < kActs; ++t)
        for (int r = 0; r < kRows; ++r)
          summs[t][r] = std::fma(F16(rows[r][ib].m), F16(act[t][ib].s), summs[t][r]);
    }
  };
  const int64_t nb = n / kQK;
  int64_t i0 = 0;
  for (; i0 + 8 <= nb; i0 += 8) {
    // [t][r][j]: d_w d_a of block i0 + j; the FMAs broadcast from memory
    // (a vpermps per FMA measured slower).
    alignas(32) float scale[kActs][kRows][8];
    {
      __m256 dw[kRows];
      for (int r = 0; r < kRows; ++r) dw[r] = Scales8(&rows[r][i0].d, sizeof(WB));
      for (int t = 0; t < kActs; ++t) {
        const __m256 da = Scales8(&act[t][i0].d, sizeof(Act));
        for (int r = 0; r < kRows; ++r) _mm256_store_ps(scale[t][r], _mm256_mul_ps(dw[r], da));
      }
      // Else GCC forwards the stored vectors through two shuffles per
      // broadcast; a load with broadcast costs no ALU slot.
      asm volatile("" ::: "memory");
    }
    [&]<int... P>(std::integer_sequence<int, P...>) {
      (
          [&] {
            constexpr int j = 2 * P;
            const int64_t ib = i0 + j;
            __m512i q[kRows];
            for (int r = 0; r < kRows; ++r) {
              // The same blocks of the next tile's rows (MatMul's next call):
              // short interleaved streams defeat the hardware prefetcher.
              const char* next = reinterpret_cast<const char*>(rows[r] + ib) + kRows * row_bytes;
              _mm_prefetch(next, _MM_HINT_T0);
              _mm_prefetch(next + sizeof(WB), _MM_HINT_T0);
              q[r] = PairDotLevels<T>(rows[r] + ib);
            }
            for (int t = 0; t < kActs; ++t) {
              const __m512i y = PairOf(
                  _mm256_loadu_si256(reinterpret_cast<const __m256i*>(act[t][ib].qs)),
                  _mm256_loadu_si256(reinterpret_cast<const __m256i*>(act[t][ib + 1].qs)));
              const __m512i term = PairActTerm<T>(y);
              for (int r = 0; r < kRows; ++r) {
                const __m512 sums = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(term, q[r], y));
                acc[t][r] = _mm256_fmadd_ps(_mm256_set1_ps(scale[t][r][j]), _mm512_castps512_ps256(sums),
                                            acc[t][r]);
                acc[t][r] = _mm256_fmadd_ps(_mm256_set1_ps(scale[t][r][j + 1]),
                                            _mm512_extractf32x8_ps(sums, 1), acc[t][r]);
              }
            }
            add_min(ib);
            add_min(ib + 1);
          }(),
          ...);
    }(std::make_integer_sequence<int, 4>{});
  }
  for (int64_t ib = i0; ib < nb; ++ib) {  // the last blocks one by one, as VecDotTile
    __m256i q[kRows];
    float dw[kRows];
    for (int r = 0; r < kRows; ++r) {
      q[r] = DotLevels<T>(T::Levels(rows[r][ib]));
      dw[r] = F16(rows[r][ib].d);
    }
    for (int t = 0; t < kActs; ++t) {
      const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(act[t][ib].qs));
      const float da = F16(act[t][ib].d);
      const __m256i term = ActTerm<T>(y);
      for (int r = 0; r < kRows; ++r) {
        acc[t][r] = _mm256_fmadd_ps(_mm256_set1_ps(dw[r] * da),
                                    _mm256_cvtepi32_ps(BlockDot<T>(q[r], y, term)), acc[t][r]);
      }
    }
    add_min(ib);
  }
  for (int t = 0; t < kActs; ++t) {
    for (int r = 0; r < kRows; ++r) {
      out[kRows * t + r] = HorizontalSum(acc[t][r]);
      if constexpr (T::kHasMin) out[kRows * t + r] += summs[t][r];
    }
  }
}

// The avx512 set's q8_0 tile with both rows in one zmm: lanes 0-7 hold row
// 0's 8-lane accumulator (VecDot's), lanes 8-15 row 1's, so one vpdpbusd,
// one convert and one FMA serve two outputs per block and token. The
// activation block is a 256-bit broadcast load; w a = |w| (a with w's sign)
// (|a| <= 127; no vpsignb in AVX-512: a masked subtraction from zero), the
// same int32 lanes as VecDot's. The scale d_w d_a of each lane is the same
// single float product; the FMAs run in block order: equal to the bit.
inline __m512i RowPair(const BlockQ8_0& b0, const BlockQ8_0& b1) {
  return PairOf(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b0.qs)),
                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b1.qs)));
}

template <int kActs>
void VecDotTileQ8_0Pair(int64_t n, const void* w, size_t row_bytes, const void* a,
                        size_t a_stride, float* out) {
  static_assert(kTileRows == 2);
  const BlockQ8_0* rows[2] = {RowAt<BlockQ8_0>(w, row_bytes, 0),
                              RowAt<BlockQ8_0>(w, row_bytes, 1)};
  const BlockQ8_0* act[kActs];
  __m512 acc[kActs];
  for (int t = 0; t < kActs; ++t) {
    act[t] = RowAt<BlockQ8_0>(a, a_stride, t);
    acc[t] = _mm512_setzero_ps();
  }
  // One block: weights' signs and magnitudes shared by the tokens; dw: the
  // pair's scales [d_w0 x8 | d_w1 x8]; da(t): token t's scale.
  const auto block = [&](int64_t ib, __m512 dw, auto da) {
    const char* next = reinterpret_cast<const char*>(rows[0] + ib) + 2 * row_bytes;
    _mm_prefetch(next, _MM_HINT_T0);  // the next tile's rows (MatMul's next call)
    _mm_prefetch(next + row_bytes, _MM_HINT_T0);
    const __m512i q = RowPair(rows[0][ib], rows[1][ib]);
    const __mmask64 negative = _mm512_movepi8_mask(q);
    const __m512i magnitude = _mm512_abs_epi8(q);
    for (int t = 0; t < kActs; ++t) {
      const __m512i y = _mm512_broadcast_i64x4(
          _mm256_loadu_si256(reinterpret_cast<const __m256i*>(act[t][ib].qs)));
      const __m512i signed_y = _mm512_mask_sub_epi8(y, negative, _mm512_setzero_si512(), y);
      const __m512i dots = _mm512_dpbusd_epi32(_mm512_setzero_si512(), magnitude, signed_y);
      acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(dw, _mm512_set1_ps(da(t))), _mm512_cvtepi32_ps(dots),
                               acc[t]);
    }
  };
  const int64_t nb = n / kQK;
  int64_t i0 = 0;
  for (; i0 + 8 <= nb; i0 += 8) {
    // The scales of 8 blocks as vectors (as VecDotTileZmm): row 0's in the
    // low half, row 1's in the high half; lane j of each to its half by vpermps.
    const __m512 dw8 =
        _mm512_insertf32x8(_mm512_castps256_ps512(Scales8(&rows[0][i0].d, sizeof(BlockQ8_0))),
                           Scales8(&rows[1][i0].d, sizeof(BlockQ8_0)), 1);
    alignas(32) float da[kActs][8];
    for (int t = 0; t < kActs; ++t) {
      _mm256_store_ps(da[t], Scales8(&act[t][i0].d, sizeof(BlockQ8_0)));
    }
    asm volatile("" ::: "memory");  // broadcast the da from memory (VecDotTileZmm)
    const __m512i halves = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 8, 8, 8, 8, 8, 8, 8, 8);
    for (int j = 0; j < 8; ++j) {
      const __m512 dw = _mm512_permutexvar_ps(_mm512_add_epi32(halves, _mm512_set1_epi32(j)), dw8);
      block(i0 + j, dw, [&](int t) { return da[t][j]; });
    }
  }
  for (int64_t ib = i0; ib < nb; ++ib) {  // the last blocks one by one
    const __m512 dw = _mm512_insertf32x8(_mm512_set1_ps(F16(rows[0][ib].d)),
                                         _mm256_set1_ps(F16(rows[1][ib].d)), 1);
    block(ib, dw, [&](int t) { return F16(act[t][ib].d); });
  }
  for (int t = 0; t < kActs; ++t) {
    out[2 * t] = HorizontalSum(_mm512_castps512_ps256(acc[t]));
    out[2 * t + 1] = HorizontalSum(_mm512_extractf32x8_ps(acc[t], 1));
  }
}
#endif  // SHARDLM_SIMD_VNNI

template <class T>
void VecDotTileActs(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
                    int n_act, float* out) {
  static_assert(kTileActs == 4);
  WithActs(n_act, [&](auto acts) {
    constexpr int kActs = decltype(acts)::value;
#if SHARDLM_SIMD_VNNI
    // Measured (shardlm_kernels_bench): the zmm tile is faster for q8_0 and
    // for every type with several tokens; for one token of the unsigned
    // types (whose level unpacking dominates) the ymm tile is.
    // q8_0 with several tokens (prompts): both rows in one zmm measured
    // faster still; one token (decode) is the same speed either way.
    if constexpr (std::is_same_v<T, Q8_0> && kActs > 1) {
      return VecDotTileQ8_0Pair<kActs>(n, w, row_bytes, a, a_stride, out);
    }
    if constexpr (T::kSigned || kActs > 1) {
      return VecDotTileZmm<T, kActs>(n, w, row_bytes, a, a_stride, out);
    }
#endif
    VecDotTile<T, kActs>(n, w, row_bytes, a, a_stride, out);
  });
}

// Eight rows, each an FMA chain over its blocks (legacy.cc VecDotX8): the
// rows' integer block sums fill the 8 lanes, so one FMA serves all 8. For
// q4_0, the one type llama.cpp repacks (offset levels, |level - 8| <= 8).
// kActs activation rows share each block's unpacked levels and scales.
template <class T, int kActs>
void VecDotX8(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
              float* out) {
  static_assert(!T::kHasMin && !T::kSigned && T::kOffset == 8);
  using WB = typename T::Block;
  const BlockQ8_0* act[kActs];
  for (int t = 0; t < kActs; ++t) act[t] = RowAt<BlockQ8_0>(a, a_stride, t);
  const WB* rows[8];
  for (int r = 0; r < 8; ++r) rows[r] = RowAt<WB>(w, row_bytes, r);
  __m256 acc[kActs];
  for (__m256& v : acc) v = _mm256_setzero_ps();
  for (int64_t ib = 0; ib < n / kQK; ++ib) {
    __m256i levels[8];
    for (int r = 0; r < 8; ++r) {
      // Eight short streams defeat the hardware prefetcher: fetch the same
      // block of the next 8-row group (MatMul's next call) meanwhile.
      _mm_prefetch(reinterpret_cast<const char*>(rows[r] + ib) + 8 * row_bytes, _MM_HINT_T0);
      levels[r] = T::Levels(rows[r][ib]);
    }
    // The lane of _mm_insert_epi16 must be a constant even when the compiler
    // does not unroll (sanitizer builds): expand the 8 inserts by template.
    __m128i dw = _mm_setzero_si128();
    [&]<int... R>(std::integer_sequence<int, R...>) {
      ((dw = _mm_insert_epi16(dw, rows[R][ib].d, R)), ...);
    }
    (std::make_integer_sequence<int, 8>{});
    const __m256 dwf = _mm256_cvtph_ps(dw);
    for (int t = 0; t < kActs; ++t) {
      const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(act[t][ib].qs));
      const __m256i offset_dot = _mm256_maddubs_epi16(_mm256_set1_epi8(T::kOffset), y);
      __m256i dots[8];  // 16 int16 pair sums of (level - offset) a per row
      for (int r = 0; r < 8; ++r)
        dots[r] = _mm256_sub_epi16(_mm256_maddubs_epi16(levels[r], y), offset_dot);
      // A block's whole sum fits int16 (32 * 8 * 127 < 2^15): reduce the 8
      // rows with int16 adds, then the two 128-bit halves.
      __m256i h[4];
      for (int k = 0; k < 4; ++k) h[k] = _mm256_hadd_epi16(dots[2 * k], dots[2 * k + 1]);
      const __m256i h8 =
          _mm256_hadd_epi16(_mm256_hadd_epi16(h[0], h[1]), _mm256_hadd_epi16(h[2], h[3]));
      const __m128i isum =
          _mm_add_epi16(_mm256_castsi256_si128(h8), _mm256_extracti128_si256(h8, 1));
      const __m256 scale = _mm256_mul_ps(dwf, _mm256_set1_ps(F16(act[t][ib].d)));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi16_epi32(isum)), scale, acc[t]);
    }
  }
  for (int t = 0; t < kActs; ++t) _mm256_storeu_ps(out + 8 * t, acc[t]);
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

// 4 x 8 int32 (elements 0..31 in order) -> 32 int8. packs interleaves the
// 128-bit lanes; the final permute restores element order.
inline __m256i PackInt32ToInt8(__m256i i0, __m256i i1, __m256i i2, __m256i i3) {
  const __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
  return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
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

// Bit-exact with the reference q8_0 / q8_1 quantizers, both kinds:
// weights (quantize_row_q8_*_ref): id = 1 / d, q = roundf(x * id);
// activations (llama.cpp's x86 quantize_row_q8_*): id = 127 / amax,
// q = round-to-even(x * id). Both: d = f16(amax / 127), s = f16(d * sum q).
template <class Block, bool kActivation>
void QuantizeQ8(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<Block*>(dst);
  for (int64_t ib = 0; ib < n / kQK; ++ib, x += kQK) {
    __m256 v[4];
    for (int k = 0; k < 4; ++k) v[k] = _mm256_loadu_ps(x + 8 * k);
    const __m256 amax4 =
        _mm256_max_ps(_mm256_max_ps(Abs(v[0]), Abs(v[1])), _mm256_max_ps(Abs(v[2]), Abs(v[3])));
    const float amax = HorizontalMax(amax4);
    const float d = amax / 127.f;
    const float inv = kActivation ? (amax != 0 ? 127.f / amax : 0.0f) : (d != 0 ? 1.0f / d : 0.0f);
    const __m256 id = _mm256_set1_ps(inv);
    y[ib].d = ToF16(d);
    __m256i q[4];
    for (int k = 0; k < 4; ++k) {
      const __m256 scaled = _mm256_mul_ps(v[k], id);
      q[k] = kActivation ? _mm256_cvtps_epi32(_mm256_round_ps(
                               scaled, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC))
                         : _mm256_cvttps_epi32(RoundHalfAway(scaled));
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[ib].qs),
                        PackInt32ToInt8(q[0], q[1], q[2], q[3]));
    if constexpr (std::is_same_v<Block, BlockQ8_1>) {
      const __m256i s =
          _mm256_add_epi32(_mm256_add_epi32(q[0], q[1]), _mm256_add_epi32(q[2], q[3]));
      __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
      s4 = _mm_add_epi32(s4, _mm_unpackhi_epi64(s4, s4));
      s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 1));
      y[ib].s = ToF16(d * static_cast<float>(_mm_cvtsi128_si32(s4)));
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
void VecDotX8Q4_0(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
                  int n_act, float* out, bool /*gemm*/) {
  WithActs(n_act, [&](auto acts) {
    VecDotX8<Q4_0, decltype(acts)::value>(n, w, row_bytes, a, a_stride, out);
  });
}

}  // namespace shardlm::quant::SHARDLM_SIMD_NS
