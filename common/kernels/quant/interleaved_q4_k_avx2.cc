// AVX2 product of 8 interleaved q4_K rows (blocks.h BlockQ4_Kx8) with 1..4
// q8_K activation rows. Compiled with -mavx2 -mfma -mf16c.
//
// As for q4_0 (interleaved_q4_0_avx2.cc): each 32-byte load holds 4
// elements of all 8 rows per nibble half, the activation's 4 bytes are
// broadcast, and maddubs keeps each row in its own lanes. A 32-element
// sub-block's pair sums stay in int16 (8 loads of u <= 15 times |a| <= 127:
// at most 30480), then one madd by the row's sub-block scale (each dword
// holds it twice) gives its int32 sum. The min term pairs two sub-blocks per
// madd: (m_2g, m_2g+1) x (their activation sums). Float steps as the
// reference (interleaved_q4_k.cc), so results are equal to the bit.
#include <immintrin.h>

#include <cstdint>

#include "common/kernels/quant/blocks.h"
#include "common/kernels/quant/kernels.h"
#include "common/kernels/quant/simd_avx2.h"

namespace shardlm::quant::SHARDLM_SIMD_NS {
namespace {

// 8 bytes (one per row) -> dword r = byte r in both int16 halves.
inline __m256i ScalePerRow(const uint8_t* bytes) {
  const __m256i x = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(bytes)));
  return _mm256_or_si256(x, _mm256_slli_epi32(x, 16));
}

// dword r = (lo[r], hi[r]) as int16 halves.
inline __m256i MinPairPerRow(const uint8_t* lo, const uint8_t* hi) {
  const auto load = [](const uint8_t* p) {
    return _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  };
  return _mm256_or_si256(load(lo), _mm256_slli_epi32(load(hi), 16));
}

// kGemm: one FMA pair per 64 elements (llama.cpp's gemm); else one per
// super-block (its gemv).
template <int kActs, bool kGemm>
void Gemm(int64_t n, const void* w, const void* a, size_t a_stride, float* out) {
  const auto* wb = static_cast<const BlockQ4_Kx8*>(w);
  const BlockQ8_K* act[kActs];
  __m256 acc[kActs], acc_min[kActs];
  for (int t = 0; t < kActs; ++t) {
    act[t] = RowAt<BlockQ8_K>(a, a_stride, t);
    acc[t] = acc_min[t] = _mm256_setzero_ps();
  }
  const __m256i low_nibbles = _mm256_set1_epi8(0x0F);
  for (int64_t i = 0; i < n / kQKK; ++i) {
    const BlockQ4_Kx8& b = wb[i];
    // One stream, but a short one per call: fetch the next super-block
    // (past the row's end: the next group, MatMul's next call).
    for (size_t off = 0; off < sizeof(b); off += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(&b) + sizeof(b) + off, _MM_HINT_T0);
    }
    const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.d)));
    const __m256 dm = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.dmin)));
    __m256 scale[kActs], scale_min[kActs];
    __m256i isum[kActs], imin[kActs];  // gemv: the whole super-block
    for (int t = 0; t < kActs; ++t) {
      const __m256 da = _mm256_set1_ps(act[t][i].d);
      scale[t] = _mm256_mul_ps(dw, da);
      scale_min[t] = _mm256_mul_ps(dm, da);
      isum[t] = imin[t] = _mm256_setzero_si256();
    }
    for (int g = 0; g < 4; ++g) {  // 64 elements: sub-blocks 2g (low nibbles), 2g + 1 (high)
      __m256i lo_sum[kActs], hi_sum[kActs];
      for (int t = 0; t < kActs; ++t) lo_sum[t] = hi_sum[t] = _mm256_setzero_si256();
      for (int c = 0; c < 8; ++c) {
        const __m256i raw =
            _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 256 * g + 32 * c));
        const __m256i lo = _mm256_and_si256(raw, low_nibbles);
        const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), low_nibbles);
        for (int t = 0; t < kActs; ++t) {
          const int8_t* q = act[t][i].qs + 64 * g + 4 * c;
          lo_sum[t] = AddDots(lo_sum[t], lo, Broadcast4(q));
          hi_sum[t] = AddDots(hi_sum[t], hi, Broadcast4(q + 32));
        }
      }
      const __m256i sc_lo = ScalePerRow(b.scales[2 * g]), sc_hi = ScalePerRow(b.scales[2 * g + 1]);
      const __m256i mins = MinPairPerRow(b.mins[2 * g], b.mins[2 * g + 1]);
      for (int t = 0; t < kActs; ++t) {
        const __m256i s = _mm256_add_epi32(WidenDotsScaled(lo_sum[t], sc_lo),
                                           WidenDotsScaled(hi_sum[t], sc_hi));
        const int16_t* bs = act[t][i].bsums + 4 * g;
        const uint32_t pair = static_cast<uint16_t>(bs[0] + bs[1]) |
                              static_cast<uint32_t>(static_cast<uint16_t>(bs[2] + bs[3])) << 16;
        const __m256i m = _mm256_madd_epi16(mins, _mm256_set1_epi32(static_cast<int32_t>(pair)));
        if constexpr (kGemm) {
          acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), scale[t], acc[t]);
          acc_min[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(m), scale_min[t], acc_min[t]);
        } else {
          isum[t] = _mm256_add_epi32(isum[t], s);
          imin[t] = _mm256_add_epi32(imin[t], m);
        }
      }
    }
    if constexpr (!kGemm) {
      for (int t = 0; t < kActs; ++t) {
        acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[t]), scale[t], acc[t]);
        acc_min[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(imin[t]), scale_min[t], acc_min[t]);
      }
    }
  }
  for (int t = 0; t < kActs; ++t) _mm256_storeu_ps(out + 8 * t, _mm256_sub_ps(acc[t], acc_min[t]));
}

template <bool kGemm>
void GemmActs(int64_t n, const void* w, const void* a, size_t a_stride, int n_act, float* out) {
  WithActs(n_act, [&](auto acts) { Gemm<decltype(acts)::value, kGemm>(n, w, a, a_stride, out); });
}

}  // namespace

void GemmQ4_Kx8(int64_t n, const void* w, const void* a, size_t a_stride,
                const ActivationBlockTerms* /*terms*/, size_t /*terms_stride*/, int n_act,
                float* out, bool gemm) {
  if (gemm) return GemmActs<true>(n, w, a, a_stride, n_act, out);
  GemmActs<false>(n, w, a, a_stride, n_act, out);
}

}  // namespace shardlm::quant::SHARDLM_SIMD_NS
