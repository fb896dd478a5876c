// The kernels of interleaved_q4_0_avx2.cc built for the avx512 kernel set: compiled with
// -mavx512f -mavx512bw -mavx512dq -mavx512vl -mavx512vnni (+ AVX2/FMA/F16C),
// into namespace quant::avx512, with VNNI integer dot products
// (simd_avx2.h explains why the results stay bit-exact). One source, two builds.
//
// Plus the avx512 set's own 16-row product (InterleavedX8Kernels::gemm_x16):
// two interleaved groups side by side in a zmm register, group 0's 8 rows in
// lanes 0-7 and group 1's in lanes 8-15. A block's 4 activation bytes of one
// token are the same for all 16 lanes, so they stay a broadcast memory
// operand of vpdpbusd, and every zmm instruction does the work of two ymm
// ones (prompt chunks are compute-bound). Per lane the steps are the ymm
// kernel's: the exact int32 block sum (vpdpbusd gives maddubs + madd's lanes;
// split in two chains and added, still exact), minus 8 sum(a), converted,
// times d_w d_a, one FMA per block in block order: equal to the bit.
#define SHARDLM_SIMD_AVX512 1
#include "common/kernels/quant/interleaved_q4_0_avx2.cc"

namespace shardlm::quant::avx512 {
namespace {

// 32 bytes at p0 in the low half, 32 at p1 in the high half.
inline __m512i LoadPair(const uint8_t* p0, const uint8_t* p1) {
  return _mm512_inserti64x4(
      _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p0))),
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p1)), 1);
}

template <int kActs>
void Gemm16(int64_t n, const void* w, size_t group_bytes, const void* a, size_t a_stride,
            const ActivationBlockTerms* terms, size_t terms_stride, float* out) {
  const auto* g0 = static_cast<const BlockQ4_0x8*>(w);
  const auto* g1 =
      reinterpret_cast<const BlockQ4_0x8*>(static_cast<const uint8_t*>(w) + group_bytes);
  const BlockQ8_0* act[kActs];
  const ActivationBlockTerms* act_terms[kActs];
  __m512 acc[kActs];
  for (int t = 0; t < kActs; ++t) {
    act[t] = RowAt<BlockQ8_0>(a, a_stride, t);
    act_terms[t] = terms + t * terms_stride;
    acc[t] = _mm512_setzero_ps();
  }
  const __m512i low_nibbles = _mm512_set1_epi8(0x0F);
  for (int64_t ib = 0; ib < n / kQK; ++ib) {
    // Two short streams: fetch a few blocks ahead in each (past group 1's
    // end this reads the next pair, MatMul's next call).
    for (int g = 0; g < 2; ++g) {
      const char* p = reinterpret_cast<const char*>((g == 0 ? g0 : g1) + ib) + kPrefetchBytes;
      _mm_prefetch(p, _MM_HINT_T0);
      _mm_prefetch(p + 64, _MM_HINT_T0);
      _mm_prefetch(p + 128, _MM_HINT_T0);
    }
    __m512i lo[4], hi[4];
    for (int k = 0; k < 4; ++k) {
      const __m512i raw = LoadPair(g0[ib].qs + 32 * k, g1[ib].qs + 32 * k);
      lo[k] = _mm512_and_si512(raw, low_nibbles);
      hi[k] = _mm512_and_si512(_mm512_srli_epi16(raw, 4), low_nibbles);
    }
    const __m512 dw = _mm512_cvtph_ps(_mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(g0[ib].d))),
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(g1[ib].d)), 1));
    for (int t = 0; t < kActs; ++t) {
      const int8_t* q = act[t][ib].qs;
      const ActivationBlockTerms& at = act_terms[t][ib];
      // sum (u - 8) a = sum u a - 8 sum a: one chain starts at -8 sum a.
      __m512i lo_dots = _mm512_set1_epi32(-at.offset), hi_dots = _mm512_setzero_si512();
      for (int k = 0; k < 4; ++k) {
        int32_t lo_a, hi_a;
        std::memcpy(&lo_a, q + 4 * k, 4);
        std::memcpy(&hi_a, q + 16 + 4 * k, 4);
        lo_dots = _mm512_dpbusd_epi32(lo_dots, lo[k], _mm512_set1_epi32(lo_a));
        hi_dots = _mm512_dpbusd_epi32(hi_dots, hi[k], _mm512_set1_epi32(hi_a));
      }
      const __m512i isum = _mm512_add_epi32(lo_dots, hi_dots);
      const __m512 scale = _mm512_mul_ps(dw, _mm512_set1_ps(at.d));
      acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), scale, acc[t]);
    }
  }
  for (int t = 0; t < kActs; ++t) _mm512_storeu_ps(out + 16 * t, acc[t]);
}

}  // namespace

void GemmQ4_0x16(int64_t n, const void* w, size_t group_bytes, const void* a, size_t a_stride,
                 const ActivationBlockTerms* terms, size_t terms_stride, int n_act, float* out,
                 bool /*gemm*/) {
  WithActs(n_act, [&](auto acts) {
    Gemm16<decltype(acts)::value>(n, w, group_bytes, a, a_stride, terms, terms_stride, out);
  });
}

}  // namespace shardlm::quant::avx512
