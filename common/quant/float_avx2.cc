// AVX2 + F16C kernels of the float formats: f16 <-> f32 rows (F16C
// VCVTPH2PS / VCVTPS2PH round to nearest even, bit-exact with common/fp16.h),
// bf16 -> f32 (a 16-bit shift), and f32/f16/bf16 dot products accumulating in
// four 8-lane f32 FMA chains (32 independent partial sums, which also keeps
// the rounding error far below the reference tolerance). Tails shorter than
// a vector go through the same loads one element at a time.
#include <cstdint>

#include "common/quant/kernels.h"
#include "common/quant/simd_avx2.h"

namespace shardlm::quant::avx2 {
namespace {

struct F32 {
  using Elem = float;
  static __m256 Load8(const Elem* p) { return _mm256_loadu_ps(p); }
  static float Load1(const Elem* p) { return *p; }
};

struct F16Format {
  using Elem = uint16_t;
  static __m256 Load8(const Elem* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static float Load1(const Elem* p) { return F16(*p); }
};

struct BF16Format {
  using Elem = uint16_t;
  static __m256 Load8(const Elem* p) {
    const __m256i wide =
        _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(wide, 16));
  }
  static float Load1(const Elem* p) {
    const uint32_t bits = static_cast<uint32_t>(*p) << 16;
    float f;
    __builtin_memcpy(&f, &bits, sizeof(f));
    return f;
  }
};

template <class F>
float Dot(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const typename F::Elem*>(w);
  const auto* y = static_cast<const typename F::Elem*>(a);
  __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                   _mm256_setzero_ps()};
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    for (int k = 0; k < 4; ++k) {
      acc[k] = _mm256_fmadd_ps(F::Load8(x + i + 8 * k), F::Load8(y + i + 8 * k), acc[k]);
    }
  }
  for (; i + 8 <= n; i += 8) acc[0] = _mm256_fmadd_ps(F::Load8(x + i), F::Load8(y + i), acc[0]);
  float sum =
      HorizontalSum(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3])));
  for (; i < n; ++i) sum += F::Load1(x + i) * F::Load1(y + i);
  return sum;
}

template <class F>
void ToFloat(const void* src, float* dst, int64_t n) {
  const auto* x = static_cast<const typename F::Elem*>(src);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, F::Load8(x + i));
  for (; i < n; ++i) dst[i] = F::Load1(x + i);
}

}  // namespace

float VecDotF32(int64_t n, const void* w, const void* a) { return Dot<F32>(n, w, a); }
float VecDotF16(int64_t n, const void* w, const void* a) { return Dot<F16Format>(n, w, a); }
float VecDotBF16(int64_t n, const void* w, const void* a) { return Dot<BF16Format>(n, w, a); }
void DequantizeF16(const void* src, float* dst, int64_t n) { ToFloat<F16Format>(src, dst, n); }
void DequantizeBF16(const void* src, float* dst, int64_t n) { ToFloat<BF16Format>(src, dst, n); }

void QuantizeF16(const float* src, void* dst, int64_t n) {
  auto* out = static_cast<uint16_t*>(dst);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
  }
  for (; i < n; ++i) out[i] = ToF16(src[i]);
}

}  // namespace shardlm::quant::avx2
