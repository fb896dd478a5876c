// AVX2 + F16C kernels of the float formats: f16 <-> f32 rows (F16C
// VCVTPH2PS / VCVTPS2PH round to nearest even, bit-exact with common/base/fp16.h),
// bf16 -> f32 (a 16-bit shift), the dot products, and the float operations
// of the forward pass outside the matmuls. f32/f16 sums and exp follow
// llama.cpp's AVX-512 build with two 8-lane registers per 16-lane one, so
// they equal the reference kernels (float_formats.cc) to the bit; so does
// bf16, in the order of llama.cpp's vdpbf16ps kernels (emulated with FMAs
// here; the avx512 build calls the instruction where the CPU has it).
#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/kernels/cpu_features.h"
#include "common/kernels/quant/ggml_order.h"
#include "common/kernels/quant/kernels.h"
#include "common/kernels/quant/simd_avx2.h"

namespace shardlm::quant::SHARDLM_SIMD_NS {
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

// HsumLanes16 of a 16-lane value held as lanes 0-7 and 8-15.
inline float Hsum16(__m256 lo, __m256 hi) { return HorizontalSum(_mm256_add_ps(lo, hi)); }

// vdpbf16ps with FMAs (float_formats.cc DpBf16Lane): each 32-bit lane holds
// an even element (low half) and an odd one (high half); the lane adds the
// odd product, then the even one, each one FMA. The instruction reads
// denormals as zero and flushes denormal results (DAZ + FTZ, round to
// nearest even): MXCSR is set so for the dot product's loop and restored
// before anything else (the reductions run in the caller's mode, as in ggml).
class DenormalsAreZero {
 public:
  DenormalsAreZero() : saved_(_mm_getcsr()) {
    _mm_setcsr((saved_ & ~0x6000u) | 0x8040u);  // RN, FTZ (bit 15), DAZ (bit 6)
    asm volatile("" ::: "memory");               // the loop's loads stay after this
  }
  ~DenormalsAreZero() { _mm_setcsr(saved_); }
  DenormalsAreZero(const DenormalsAreZero&) = delete;
  DenormalsAreZero& operator=(const DenormalsAreZero&) = delete;

 private:
  const unsigned saved_;
};

// Pins v's computation before whatever follows (the MXCSR restore).
inline void Done(__m256& v) { asm volatile("" : "+x"(v)); }

inline __m256 DpBf16(__m256 acc, const uint16_t* x, const uint16_t* y) {
  const __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x));
  const __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(y));
  const __m256i high = _mm256_set1_epi32(static_cast<int>(0xFFFF0000u));
  acc = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_and_si256(a, high)),
                        _mm256_castsi256_ps(_mm256_and_si256(b, high)), acc);
  return _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_slli_epi32(a, 16)),
                         _mm256_castsi256_ps(_mm256_slli_epi32(b, 16)), acc);
}

// ggml_vec_dot_bf16 of the AVX512_BF16 build (float_formats.cc DotBF16Zen4):
// its two 16-lane accumulators are c[0..1] and c[2..3].
float DotBF16Zen4(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const uint16_t*>(a);
  __m256 c[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(),
                 _mm256_setzero_ps()};
  int64_t i = 0;
  if (n >= 64) {
    DenormalsAreZero mode;
    for (; i + 64 <= n; i += 64)
      for (int k = 0; k < 4; ++k) c[k] = DpBf16(c[k], x + i + 16 * k, y + i + 16 * k);
    for (__m256& v : c) Done(v);
  }
  double sum = 0;
  sum += static_cast<double>(Hsum16(c[0], c[1]));
  sum += static_cast<double>(Hsum16(c[2], c[3]));
  for (; i < n; ++i) {
    sum += static_cast<double>(BF16Format::Load1(x + i) * BF16Format::Load1(y + i));
  }
  return static_cast<float>(sum);
}

// tinyBLAS<32, __m512, __m512bh> (float_formats.cc DotBatchBF16Zen4).
float DotBatchBF16Zen4(int64_t n, const void* w, const void* a) {
  if (n % 32 != 0) return DotBF16Zen4(n, w, a);
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const uint16_t*>(a);
  __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
  {
    DenormalsAreZero mode;
    for (int64_t i = 0; i < n; i += 32) {
      lo = DpBf16(lo, x + i, y + i);
      hi = DpBf16(hi, x + i + 16, y + i + 16);
    }
    Done(lo);
    Done(hi);
  }
  return Hsum16(lo, hi);
}

// The 4 x 16 accumulators of ggml_vec_dot_f32 / _f16 (AVX-512) over the
// first np elements: accumulator c is acc[2c] (lanes 0-7) and acc[2c + 1].
template <class F>
float Dot4x16(int64_t np, const typename F::Elem* x, const typename F::Elem* y) {
  if (np == 0) return 0.0f;
  __m256 acc[8];
  for (__m256& a : acc) a = _mm256_setzero_ps();
  for (int64_t i = 0; i < np; i += 64)
    for (int k = 0; k < 8; ++k)
      acc[k] = _mm256_fmadd_ps(F::Load8(x + i + 8 * k), F::Load8(y + i + 8 * k), acc[k]);
  return Hsum16(_mm256_add_ps(_mm256_add_ps(acc[0], acc[4]), _mm256_add_ps(acc[2], acc[6])),
                _mm256_add_ps(_mm256_add_ps(acc[1], acc[5]), _mm256_add_ps(acc[3], acc[7])));
}

// See float_formats.cc DotF32: the tail rounds each product, adds in order.
float DotF32Ggml(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const float*>(w);
  const auto* y = static_cast<const float*>(a);
  const int64_t np = n & ~int64_t{63};
  float sum = Dot4x16<F32>(np, x, y);
  int64_t i = np;
  alignas(32) float p[16];
  for (; i + 8 <= n; i += 8) {  // the 16- and 8-element pieces add alike
    _mm256_store_ps(p, _mm256_mul_ps(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (int l = 0; l < 8; ++l) sum += p[l];
  }
  for (; i < n; ++i) sum = std::fma(x[i], y[i], sum);
  return sum;
}

float DotF16Ggml(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const uint16_t*>(a);
  const int64_t np = n & ~int64_t{63};
  double sum = Dot4x16<F16Format>(np, x, y);
  for (int64_t i = np; i < n; ++i) sum += static_cast<double>(F16(x[i]) * F16(y[i]));
  return static_cast<float>(sum);
}

// tinyBLAS<16>: one FMA chain per lane i % 16 (n % 16 == 0, else vec_dot).
template <class F, float (*Fallback)(int64_t, const void*, const void*)>
float DotBatch(int64_t n, const void* w, const void* a) {
  if (n % 16 != 0) return Fallback(n, w, a);
  const auto* x = static_cast<const typename F::Elem*>(w);
  const auto* y = static_cast<const typename F::Elem*>(a);
  __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
  for (int64_t i = 0; i < n; i += 16) {
    lo = _mm256_fmadd_ps(F::Load8(x + i), F::Load8(y + i), lo);
    hi = _mm256_fmadd_ps(F::Load8(x + i + 8), F::Load8(y + i + 8), hi);
  }
  return Hsum16(lo, hi);
}

// float_formats.cc MixRows, 8 dims per register.
template <class F>
void MixRows(int64_t n, const float* p, const void* const* rows, int64_t offset, int64_t dim,
             int slots, float* scratch, float* out) {
  std::memset(scratch, 0, sizeof(float) * slots * dim);
  const int64_t dim8 = dim & ~int64_t{7};
  for (int64_t j = 0; j < n; ++j) {
    float* acc = scratch + (j % slots) * dim;
    const auto* row = static_cast<const typename F::Elem*>(rows[j]) + offset;
    const __m256 pj = _mm256_set1_ps(p[j]);
    int64_t i = 0;
    for (; i < dim8; i += 8)
      _mm256_storeu_ps(acc + i, _mm256_fmadd_ps(F::Load8(row + i), pj, _mm256_loadu_ps(acc + i)));
    for (; i < dim; ++i) acc[i] = std::fma(F::Load1(row + i), p[j], acc[i]);
  }
  auto slot = [&](int s, int64_t i) { return _mm256_loadu_ps(scratch + s * dim + i); };
  int64_t i = 0;
  for (; i < dim8; i += 8) {
    __m256 l[16];  // the 16 lanes of the last (or only) accumulator
    for (int k = 0; k < 16; ++k) {
      l[k] = slots == 16 ? slot(k, i)
                         : _mm256_add_ps(_mm256_add_ps(slot(k, i), slot(32 + k, i)),
                                         _mm256_add_ps(slot(16 + k, i), slot(48 + k, i)));
    }
    __m256 h[8];  // _mm512_reduce_add_ps, lane-wise over the dims
    for (int k = 0; k < 8; ++k) h[k] = _mm256_add_ps(l[k], l[k + 8]);
    for (int k = 0; k < 4; ++k) h[k] = _mm256_add_ps(h[k], h[k + 4]);
    _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_add_ps(h[0], h[2]), _mm256_add_ps(h[1], h[3])));
  }
  float lanes[64];
  for (; i < dim; ++i) {
    for (int s = 0; s < slots; ++s) lanes[s] = scratch[s * dim + i];
    out[i] = slots == 16 ? HsumLanes16(lanes) : HsumSlots64(lanes);
  }
}

// ggml_v_expf of the AVX-512 build (float_formats.cc ExpGgml), 8 lanes. Its
// _mm512_scalef_ps is one multiplication by 2^n where that is a normal float;
// the rare lanes beyond go through ldexpf, also one rounding.
inline __m256 ExpGgml8(__m256 x) {
  const __m256 r = _mm256_set1_ps(0x1.8p23f);
  const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
  const __m256 n = _mm256_sub_ps(z, r);
  const __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                                    _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
  const __m256 u = _mm256_mul_ps(b, b);
  const __m256 j = _mm256_fmadd_ps(
      _mm256_fmadd_ps(
          _mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
          _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
      u, _mm256_fmadd_ps(_mm256_set1_ps(0x1.ffffecp-1f), b, _mm256_set1_ps(1.0f)));
  const __m256i ni = _mm256_cvtps_epi32(n);
  const __m256 pow2 =
      _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(ni, _mm256_set1_epi32(127)), 23));
  __m256 res = _mm256_mul_ps(j, pow2);
  const __m256 normal = _mm256_and_ps(_mm256_cmp_ps(n, _mm256_set1_ps(-126.0f), _CMP_GE_OQ),
                                      _mm256_cmp_ps(n, _mm256_set1_ps(127.0f), _CMP_LE_OQ));
  if (_mm256_movemask_ps(normal) != 0xFF) {
    alignas(32) float jv[8], nv[8], rv[8];
    _mm256_store_ps(jv, j);
    _mm256_store_ps(nv, n);
    _mm256_store_ps(rv, res);
    const int m = _mm256_movemask_ps(normal);
    for (int k = 0; k < 8; ++k) {
      if (m & (1 << k)) continue;
      if (std::fabs(nv[k]) > 192) {
        rv[k] = nv[k] <= 0 ? 0.0f : INFINITY;
      } else {
        rv[k] = std::ldexp(jv[k], static_cast<int>(nv[k]));
      }
    }
    res = _mm256_load_ps(rv);
  }
  return res;
}

template <class F>
void ToFloat(const void* src, float* dst, int64_t n) {
  const auto* x = static_cast<const typename F::Elem*>(src);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, F::Load8(x + i));
  for (; i < n; ++i) dst[i] = F::Load1(x + i);
}

}  // namespace

float VecDotF32(int64_t n, const void* w, const void* a) { return DotF32Ggml(n, w, a); }
float VecDotF16(int64_t n, const void* w, const void* a) { return DotF16Ggml(n, w, a); }
float VecDotBatchF32(int64_t n, const void* w, const void* a) {
  return DotBatch<F32, DotF32Ggml>(n, w, a);
}
float VecDotBatchF16(int64_t n, const void* w, const void* a) {
  return DotBatch<F16Format, DotF16Ggml>(n, w, a);
}

void SwiGlu(int64_t n, const float* gate, const float* up, float* out) {
  const int64_t n16 = n - n % 16;
  int64_t i = 0;
  for (; i < n16; i += 8) {
    const __m256 g = _mm256_loadu_ps(gate + i);
    const __m256 e = ExpGgml8(_mm256_sub_ps(_mm256_setzero_ps(), g));
    const __m256 silu = _mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
    _mm256_storeu_ps(out + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
  }
  for (; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

double SoftmaxExp(int64_t n, const float* x, float max, float* y) {
  double sum = 0;
  const __m256 vmax = _mm256_set1_ps(max);
  for (int64_t i0 = 0; i0 < n; i0 += 16) {
    alignas(32) float in[16], v[16];
    const int64_t m = n - i0 < 16 ? n - i0 : 16;
    for (int k = 0; k < 16; ++k) in[k] = k < m ? x[i0 + k] : -INFINITY;  // exp -> 0
    const __m256 lo = ExpGgml8(_mm256_sub_ps(_mm256_load_ps(in), vmax));
    const __m256 hi = ExpGgml8(_mm256_sub_ps(_mm256_load_ps(in + 8), vmax));
    _mm256_store_ps(v, lo);
    _mm256_store_ps(v + 8, hi);
    std::memcpy(y + i0, v, m * sizeof(float));
    sum += Hsum16(lo, hi);
  }
  return sum;
}

void MixRowsF32(int64_t n, const float* p, const void* const* rows, int64_t offset, int64_t dim,
                int slots, float* scratch, float* out) {
  MixRows<F32>(n, p, rows, offset, dim, slots, scratch, out);
}
void MixRowsF16(int64_t n, const float* p, const void* const* rows, int64_t offset, int64_t dim,
                int slots, float* scratch, float* out) {
  MixRows<F16Format>(n, p, rows, offset, dim, slots, scratch, out);
}
// float_formats.cc MadF32, 8 values per register.
void MadF32(int64_t n, const float* x, float v, float* y) {
  const __m256 vv = _mm256_set1_ps(v);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(_mm256_loadu_ps(x + i), vv, _mm256_loadu_ps(y + i)));
  }
  for (; i < n; ++i) y[i] = std::fma(x[i], v, y[i]);
}
#if SHARDLM_SIMD_VNNI
// The avx512 set takes vdpbf16ps where the CPU has it (Zen 4/5, Sapphire
// Rapids; not Ice Lake): the same bits, fewer instructions.
// Asked on first use, not by a namespace-scope initializer: this file is
// compiled with AVX-512 flags, and a static initializer here would run at
// program start on every CPU, including AVX2-only ones that never pick
// this set.
bool HasBf16Dot() {
  static const bool has = HostCpu().avx512bf16;
  return has;
}
float VecDotBF16(int64_t n, const void* w, const void* a) {
  return HasBf16Dot() ? avx512bf16::VecDotBF16(n, w, a) : DotBF16Zen4(n, w, a);
}
float VecDotBatchBF16(int64_t n, const void* w, const void* a) {
  return HasBf16Dot() ? avx512bf16::VecDotBatchBF16(n, w, a) : DotBatchBF16Zen4(n, w, a);
}
#else
float VecDotBF16(int64_t n, const void* w, const void* a) { return DotBF16Zen4(n, w, a); }
float VecDotBatchBF16(int64_t n, const void* w, const void* a) {
  return DotBatchBF16Zen4(n, w, a);
}
#endif
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

}  // namespace shardlm::quant::SHARDLM_SIMD_NS
