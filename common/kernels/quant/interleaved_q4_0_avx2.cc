// AVX2 product of 8 interleaved q4_0 rows (blocks.h BlockQ4_0x8) with 1..4
// q8_0 activation rows. Compiled with -mavx2 -mfma -mf16c.
//
// Each 32-byte load holds 4 elements of all 8 rows per nibble half; the
// matching 4 activation bytes are broadcast to every lane, so maddubs +
// madd leave row r's block sum in lane r — no horizontal adds, and the
// unpacked levels serve all activation rows. Levels are stored unsigned
// (q = u - 8): sum (u - 8) a = sum u a - 8 sum a, with 8 sum a and the
// activation scale as a float precomputed once per matmul
// (ActivationBlockTerms), so a token's per-block tail is two broadcast loads
// and five vector operations. The float steps are the reference's
// (interleaved_q4_0.cc), so results are equal to the bit.
#include <immintrin.h>

#include <cstdint>

#include "common/kernels/quant/blocks.h"
#include "common/kernels/quant/kernels.h"
#include "common/kernels/quant/simd_avx2.h"

namespace shardlm::quant::SHARDLM_SIMD_NS {
namespace {

constexpr int kPrefetchBytes = 1024;

template <int kActs>
void Gemm(int64_t n, const void* w, const void* a, size_t a_stride,
          const ActivationBlockTerms* terms, size_t terms_stride, float* out) {
  const auto* wb = static_cast<const BlockQ4_0x8*>(w);
  const BlockQ8_0* act[kActs];
  const ActivationBlockTerms* act_terms[kActs];
  __m256 acc[kActs];
  for (int t = 0; t < kActs; ++t) {
    act[t] = RowAt<BlockQ8_0>(a, a_stride, t);
    act_terms[t] = terms + t * terms_stride;
    acc[t] = _mm256_setzero_ps();
  }
  const __m256i low_nibbles = _mm256_set1_epi8(0x0F);
  for (int64_t ib = 0; ib < n / kQK; ++ib) {
    // One stream, but a short one per call: fetch a few blocks ahead (past
    // the row's end this reads the next group, MatMul's next call).
    _mm_prefetch(reinterpret_cast<const char*>(wb + ib) + kPrefetchBytes, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(wb + ib) + kPrefetchBytes + 64, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(wb + ib) + kPrefetchBytes + 128, _MM_HINT_T0);
    // The block's levels, unpacked once for all tokens; then one token at a
    // time, its sums in one register (interleaving the tokens' chains keeps
    // more values live than there are registers: spills).
    __m256i lo[4], hi[4];
    for (int k = 0; k < 4; ++k) {
      const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wb[ib].qs + 32 * k));
      lo[k] = _mm256_and_si256(raw, low_nibbles);
      hi[k] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low_nibbles);
    }
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(wb[ib].d)));
    for (int t = 0; t < kActs; ++t) {
      const int8_t* q = act[t][ib].qs;
      // AVX2 int16 lanes: 8 maddubs of u <= 15 by |a| <= 127 add up to at
      // most 8 * 2 * 15 * 127 = 30480, inside int16 (simd_avx2.h AddDots).
      __m256i dots = AddDots(_mm256_setzero_si256(), lo[0], Broadcast4(q));
      dots = AddDots(dots, hi[0], Broadcast4(q + 16));
      for (int k = 1; k < 4; ++k) {
        dots = AddDots(dots, lo[k], Broadcast4(q + 4 * k));
        dots = AddDots(dots, hi[k], Broadcast4(q + 16 + 4 * k));
      }
      const ActivationBlockTerms& at = act_terms[t][ib];
      const __m256i isum =
          _mm256_sub_epi32(WidenDots(dots), _mm256_set1_epi32(at.offset));
      const __m256 scale = _mm256_mul_ps(dw, _mm256_set1_ps(at.d));
      acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), scale, acc[t]);
    }
  }
  for (int t = 0; t < kActs; ++t) _mm256_storeu_ps(out + 8 * t, acc[t]);
}

}  // namespace

void GemmQ4_0x8(int64_t n, const void* w, const void* a, size_t a_stride,
                const ActivationBlockTerms* terms, size_t terms_stride, int n_act, float* out,
                bool /*gemm*/) {
  WithActs(n_act, [&](auto acts) {
    Gemm<decltype(acts)::value>(n, w, a, a_stride, terms, terms_stride, out);
  });
}

}  // namespace shardlm::quant::SHARDLM_SIMD_NS
