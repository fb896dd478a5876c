// AVX2 product of 8 interleaved q4_0 rows (blocks.h BlockQ4_0x8) with 1..4
// q8_0 activation rows. Compiled with -mavx2 -mfma -mf16c.
//
// Each 32-byte load holds 4 elements of all 8 rows per nibble half; the
// matching 4 activation bytes are broadcast to every lane, so maddubs +
// madd leave row r's block sum in lane r — no horizontal adds, and the
// unpacked levels serve all activation rows. Levels are stored unsigned
// (q = u - 8): sum (u - 8) a = sum u a - 8 sum a, with sum a per block
// precomputed once per matmul (BlockSumsQ8_0). The float steps are the
// reference's (interleaved_q4_0.cc), so results are equal to the bit.
#include <immintrin.h>

#include <cstdint>

#include "common/quant/blocks.h"
#include "common/quant/kernels.h"
#include "common/quant/simd_avx2.h"

namespace shardlm::quant::avx2 {
namespace {

constexpr int kPrefetchBytes = 1024;

template <int kActs>
void Gemm(int64_t n, const void* w, const void* a, size_t a_stride, const int16_t* sums,
          size_t sums_stride, float* out) {
  const auto* wb = static_cast<const BlockQ4_0x8*>(w);
  const BlockQ8_0* act[kActs];
  const int16_t* act_sums[kActs];
  __m256 acc[kActs];
  for (int t = 0; t < kActs; ++t) {
    act[t] = reinterpret_cast<const BlockQ8_0*>(static_cast<const uint8_t*>(a) + t * a_stride);
    act_sums[t] = sums + t * sums_stride;
    acc[t] = _mm256_setzero_ps();
  }
  const __m256i low_nibbles = _mm256_set1_epi8(0x0F);
  const __m256i ones = _mm256_set1_epi16(1);
  for (int64_t ib = 0; ib < n / kQK; ++ib) {
    // One stream, but a short one per call: fetch a few blocks ahead (past
    // the row's end this reads the next group, MatMul's next call).
    _mm_prefetch(reinterpret_cast<const char*>(wb + ib) + kPrefetchBytes, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(wb + ib) + kPrefetchBytes + 64, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(wb + ib) + kPrefetchBytes + 128, _MM_HINT_T0);
    // int16 lanes: 8 maddubs of u <= 15 by |a| <= 127 add up to at most
    // 8 * 2 * 15 * 127 = 30480, inside int16.
    __m256i pair_sums[kActs];
    for (__m256i& v : pair_sums) v = _mm256_setzero_si256();
    for (int k = 0; k < 4; ++k) {
      const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb[ib].qs + 32 * k));
      const __m256i lo = _mm256_and_si256(raw, low_nibbles);
      const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low_nibbles);
      for (int t = 0; t < kActs; ++t) {
        const int8_t* q = act[t][ib].qs;
        const __m256i p = _mm256_add_epi16(_mm256_maddubs_epi16(lo, Broadcast4(q + 4 * k)),
                                           _mm256_maddubs_epi16(hi, Broadcast4(q + 16 + 4 * k)));
        pair_sums[t] = _mm256_add_epi16(pair_sums[t], p);
      }
    }
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb[ib].d)));
    for (int t = 0; t < kActs; ++t) {
      const __m256i isum = _mm256_sub_epi32(_mm256_madd_epi16(pair_sums[t], ones),
                                            _mm256_set1_epi32(8 * act_sums[t][ib]));
      const __m256 scale = _mm256_mul_ps(dw, _mm256_set1_ps(F16(act[t][ib].d)));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, acc[t]);
    }
  }
  for (int t = 0; t < kActs; ++t) _mm256_storeu_ps(out + 8 * t, acc[t]);
}

}  // namespace

void GemmQ4_0x8(int64_t n, const void* w, const void* a, size_t a_stride, const int16_t* sums,
                size_t sums_stride, int n_act, float* out, bool /*gemm*/) {
  switch (n_act) {
    case 1:
      return Gemm<1>(n, w, a, a_stride, sums, sums_stride, out);
    case 2:
      return Gemm<2>(n, w, a, a_stride, sums, sums_stride, out);
    case 3:
      return Gemm<3>(n, w, a, a_stride, sums, sums_stride, out);
    default:
      return Gemm<4>(n, w, a, a_stride, sums, sums_stride, out);
  }
}

}  // namespace shardlm::quant::avx2
