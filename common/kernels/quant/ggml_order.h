// The summation orders of llama.cpp's CPU kernels, written out in scalar
// code so the reference kernels reproduce the SIMD results bit for bit.
//
// Float addition is not associative: to get llama.cpp's logits exactly, a
// kernel must add the same partial sums in the same order and round the same
// products (FMA or not) as ggml does. ggml's AVX2 dot products keep 8 float
// lanes (lane k collects the integer sums of elements 4k..4k+3 of every
// 32-element chunk) and reduce them with hsum_float_8; its AVX-512 kernels
// keep 16 lanes and reduce with GCC's _mm512_reduce_add_ps.
//
// always_inline: included by scalar and by -mavx2 files (see blocks.h).
#ifndef SHARDLM_COMMON_KERNELS_QUANT_GGML_ORDER_H_
#define SHARDLM_COMMON_KERNELS_QUANT_GGML_ORDER_H_

namespace shardlm::quant {

// ggml's hsum_float_8: the two 128-bit halves first, then (0+2) + (1+3).
[[gnu::always_inline]] inline float HsumLanes8(const float* a) {
  const float t0 = a[0] + a[4], t1 = a[1] + a[5], t2 = a[2] + a[6], t3 = a[3] + a[7];
  return (t0 + t2) + (t1 + t3);
}

// Four lanes as ggml reduces an __m128 (movehl, movehdup): (0+2) + (1+3).
[[gnu::always_inline]] inline float HsumLanes4(const float* a) {
  return (a[0] + a[2]) + (a[1] + a[3]);
}

// GCC's _mm512_reduce_add_ps: 256-bit halves, 128-bit halves, then as above.
[[gnu::always_inline]] inline float HsumLanes16(const float* a) {
  float h[8];
  for (int i = 0; i < 8; ++i) h[i] = a[i] + a[i + 8];
  const float q[4] = {h[0] + h[4], h[1] + h[5], h[2] + h[6], h[3] + h[7]};
  return HsumLanes4(q);
}

// ggml_vec_dot_f32 / _f16 of the AVX-512 build keep 4 accumulators of 16
// lanes (element i in accumulator (i / 16) % 4, lane i % 16, i.e. slot
// i % 64) and reduce them pairwise (GGML_F32x16_REDUCE): (0+2) + (1+3),
// then _mm512_reduce_add_ps.
[[gnu::always_inline]] inline float HsumSlots64(const float* acc) {
  float t[16];
  for (int l = 0; l < 16; ++l) t[l] = (acc[l] + acc[32 + l]) + (acc[16 + l] + acc[48 + l]);
  return HsumLanes16(t);
}

// How ggml's AVX2 vec_dot of each K-quant folds the min / offset term of
// x = d s u - dmin m into its float accumulation (arch/x86/quants.c):
enum class MinMode {
  kLanesFirst,  // q2_K: lane k += (-dmin d_a) (m_2k b_2k + m_2k+1 b_2k+1), into
                //       the same 8 lanes, before the scale term
  kSigned,      // q3_K: the levels u - 4 enter the integer lanes directly
  kLanes4,      // q4_K: 4 lanes of (-dmin d_a) (pairs of 32-element sums), added last
  kScalar,      // q5_K: one scalar FMA chain of (-dmin d_a) sum_j m_j b_j, added last
  kIntLanes,    // q6_K: lane k -= 32 (s_2k b_2k + s_2k+1 b_2k+1), in integers
};

}  // namespace shardlm::quant

#endif  // SHARDLM_COMMON_KERNELS_QUANT_GGML_ORDER_H_
