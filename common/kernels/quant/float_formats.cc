// Scalar reference kernels of the float formats f32, f16 and bf16, and of
// the float operations of the forward pass outside the matmuls.
//
// f32 and f16 vec_dot pair a weight row with an activation row of the same
// format (llama.cpp's vec_dot_type for them) and sum as llama.cpp's CPU
// backend does in the AVX-512 build the goldens come from (ggml_order.h):
// ggml_vec_dot_f32 / _f16 for one activation row, tinyBLAS (llamafile
// sgemm, one 16-lane FMA chain) for batches. bf16 follows the same build's
// vdpbf16ps kernels (DotBF16Zen4 below).
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>

#include "common/base/fp16.h"
#include "common/kernels/quant/ggml_order.h"
#include "common/kernels/quant/kernels.h"

namespace shardlm::quant::ref {
namespace {

float LoadF32(const void* p, int64_t i) { return static_cast<const float*>(p)[i]; }
float LoadF16(const void* p, int64_t i) { return Fp16ToFp32(static_cast<const uint16_t*>(p)[i]); }
float LoadBF16(const void* p, int64_t i) { return Bf16ToFp32(static_cast<const uint16_t*>(p)[i]); }

template <float (*Load)(const void*, int64_t)>
void ToFloat(const void* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = Load(src, i);
}

template <uint16_t (*Store)(float)>
void FromFloat(const float* src, void* dst, int64_t n) {
  auto* out = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) out[i] = Store(src[i]);
}

struct F32 {
  static float Load(const void* p, int64_t i) { return LoadF32(p, i); }
};
struct F16 {
  static float Load(const void* p, int64_t i) { return LoadF16(p, i); }
};

// The 4 x 16 accumulators of ggml_vec_dot_f32 / _f16 over the first np
// elements (np a multiple of 64).
template <class F>
float Dot4x16(int64_t np, const void* x, const void* y) {
  float acc[64] = {};
  for (int64_t i = 0; i < np; i += 64)
    for (int s = 0; s < 64; ++s) acc[s] = std::fma(F::Load(x, i + s), F::Load(y, i + s), acc[s]);
  return np > 0 ? HsumSlots64(acc) : 0.0f;
}

// ggml_vec_dot_f32 as GCC compiled it for AVX-512: past the 64-element steps,
// products rounded and added one by one in 16- and 8-element pieces, the last
// (< 8) fused.
float DotF32(int64_t n, const void* x, const void* y) {
  const int64_t np = n & ~int64_t{63};
  float sum = Dot4x16<F32>(np, x, y);
  int64_t i = np;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; ++l) sum += LoadF32(x, i + l) * LoadF32(y, i + l);
  if (n - i >= 8) {
    for (int l = 0; l < 8; ++l) sum += LoadF32(x, i + l) * LoadF32(y, i + l);
    i += 8;
  }
  for (; i < n; ++i) sum = std::fma(LoadF32(x, i), LoadF32(y, i), sum);
  return sum;
}

// ggml_vec_dot_f16 (AVX-512 build): the tail in double, products in float.
float DotF16(int64_t n, const void* x, const void* y) {
  const int64_t np = n & ~int64_t{63};
  double sum = Dot4x16<F16>(np, x, y);
  for (int64_t i = np; i < n; ++i) sum += static_cast<double>(LoadF16(x, i) * LoadF16(y, i));
  return static_cast<float>(sum);
}

// bf16 as llama.cpp's AVX512_BF16 build (its zen4 variant, where the goldens
// come from) computes it with vdpbf16ps. Per 32-bit lane the instruction adds
// the product of the odd elements, then of the even ones, each an exact
// product rounded once to nearest even into the float sum (an FMA), with
// denormal inputs read as zero and denormal results flushed to zero, whatever
// MXCSR says (Intel SDM; checked on Zen 5: the order, one rounding per
// product, an unflushed tiny product added to FLT_MIN).
float FlushDenormal(float x) {
  return std::fpclassify(x) == FP_SUBNORMAL ? std::copysign(0.0f, x) : x;
}

float DpBf16Lane(float acc, const void* x, const void* y, int64_t even) {
  for (int64_t i : {even + 1, even}) {
    acc = FlushDenormal(std::fma(FlushDenormal(LoadBF16(x, i)), FlushDenormal(LoadBF16(y, i)),
                                 FlushDenormal(acc)));
  }
  return acc;
}

// ggml_vec_dot_bf16 (AVX512_BF16): two 16-lane accumulators over 64-element
// steps (elements 0-31 of each step into the first), each reduced by
// _mm512_reduce_add_ps and added in double; the tail's products rounded to
// float and added in double.
float DotBF16Zen4(int64_t n, const void* x, const void* y) {
  float c[2][16] = {};
  int64_t i = 0;
  for (; i + 64 <= n; i += 64)
    for (int h = 0; h < 2; ++h)
      for (int l = 0; l < 16; ++l) c[h][l] = DpBf16Lane(c[h][l], x, y, i + 32 * h + 2 * l);
  double sum = 0;
  sum += static_cast<double>(HsumLanes16(c[0]));
  sum += static_cast<double>(HsumLanes16(c[1]));
  for (; i < n; ++i) sum += static_cast<double>(LoadBF16(x, i) * LoadBF16(y, i));
  return static_cast<float>(sum);
}

// tinyBLAS<32, __m512, __m512bh> (batches): one 16-lane vdpbf16ps chain over
// 32-element steps, _mm512_reduce_add_ps. It declines n % 32 != 0, and
// ggml falls back to vec_dot.
float DotBatchBF16Zen4(int64_t n, const void* x, const void* y) {
  if (n % 32 != 0) return DotBF16Zen4(n, x, y);
  float c[16] = {};
  for (int64_t i = 0; i < n; i += 32)
    for (int l = 0; l < 16; ++l) c[l] = DpBf16Lane(c[l], x, y, i + 2 * l);
  return HsumLanes16(c);
}

// tinyBLAS<16>: one FMA chain per lane i % 16, _mm512_reduce_add_ps. It
// declines n % 16 != 0, and ggml falls back to vec_dot.
template <class F, float (*Fallback)(int64_t, const void*, const void*)>
float DotBatch(int64_t n, const void* x, const void* y) {
  if (n % 16 != 0) return Fallback(n, x, y);
  float acc[16] = {};
  for (int64_t i = 0; i < n; i += 16)
    for (int l = 0; l < 16; ++l) acc[l] = std::fma(F::Load(x, i + l), F::Load(y, i + l), acc[l]);
  return HsumLanes16(acc);
}

// out[i] = sum_j p[j] rows[j][i], summed as llama.cpp's softmax(KQ) V sums
// over the positions j: slot j % slots keeps an FMA chain (16: tinyBLAS, 64:
// vec_dot's 4 x 16), reduced in ggml's order.
template <class F>
void MixRows(int64_t n, const float* p, const void* const* rows, int64_t offset, int64_t dim,
             int slots, float* scratch, float* out) {
  std::memset(scratch, 0, sizeof(float) * slots * dim);
  for (int64_t j = 0; j < n; ++j) {
    float* acc = scratch + (j % slots) * dim;
    for (int64_t i = 0; i < dim; ++i)
      acc[i] = std::fma(F::Load(rows[j], offset + i), p[j], acc[i]);
  }
  float lanes[64];
  for (int64_t i = 0; i < dim; ++i) {
    for (int s = 0; s < slots; ++s) lanes[s] = scratch[s * dim + i];
    out[i] = slots == 16 ? HsumLanes16(lanes) : HsumSlots64(lanes);
  }
}

}  // namespace

// ggml_v_expf of the AVX-512 build for one lane: 2^n (1 + b P(b)) with
// n = round(x / ln 2), b = x - n ln 2, the +1 inside the last FMA and
// _mm512_scalef_ps (one rounding, also into subnormals) for 2^n.
float ExpGgml(float x) {
  const float r = 0x1.8p23f;
  const float z = std::fma(x, 0x1.715476p+0f, r);
  const float n = z - r;
  const float b = std::fma(-n, 0x1.7f7d1cp-20f, std::fma(-n, 0x1.62e4p-1f, x));
  const float u = b * b;
  const float j = std::fma(std::fma(std::fma(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u,
                                    std::fma(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)),
                           u, std::fma(0x1.ffffecp-1f, b, 1.0f));
  if (std::fabs(n) > 192) return n <= 0 ? 0.0f : INFINITY;
  return std::ldexp(j, static_cast<int>(n));
}

void SwiGlu(int64_t n, const float* gate, const float* up, float* out) {
  const int64_t n16 = n - n % 16;  // ggml_vec_swiglu_f32: 16 lanes, then libm
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    const float e = i < n16 ? ExpGgml(0.0f - g) : std::exp(-g);
    out[i] = g / (1.0f + e) * up[i];
  }
}

double SoftmaxExp(int64_t n, const float* x, float max, float* y) {
  double sum = 0;
  for (int64_t i0 = 0; i0 < n; i0 += 16) {
    float v[16] = {};
    for (int64_t i = i0; i < i0 + 16 && i < n; ++i) v[i - i0] = y[i] = ExpGgml(x[i] - max);
    sum += HsumLanes16(v);
  }
  return sum;
}

void MixRowsF32(int64_t n, const float* p, const void* const* rows, int64_t offset, int64_t dim,
                int slots, float* scratch, float* out) {
  MixRows<F32>(n, p, rows, offset, dim, slots, scratch, out);
}
void MixRowsF16(int64_t n, const float* p, const void* const* rows, int64_t offset, int64_t dim,
                int slots, float* scratch, float* out) {
  MixRows<F16>(n, p, rows, offset, dim, slots, scratch, out);
}

// ggml_vec_mad_f32: one FMA per element in the build the goldens come from.
void MadF32(int64_t n, const float* x, float v, float* y) {
  for (int64_t i = 0; i < n; ++i) y[i] = std::fma(x[i], v, y[i]);
}

void DequantizeF32(const void* src, float* dst, int64_t n) {
  std::memcpy(dst, src, n * sizeof(float));
}
void DequantizeF16(const void* src, float* dst, int64_t n) { ToFloat<LoadF16>(src, dst, n); }
void DequantizeBF16(const void* src, float* dst, int64_t n) { ToFloat<LoadBF16>(src, dst, n); }
void QuantizeF32(const float* src, void* dst, int64_t n) {
  std::memcpy(dst, src, n * sizeof(float));
}
void QuantizeF16(const float* src, void* dst, int64_t n) { FromFloat<Fp32ToFp16>(src, dst, n); }
void QuantizeBF16(const float* src, void* dst, int64_t n) { FromFloat<Fp32ToBf16>(src, dst, n); }
float VecDotF32(int64_t n, const void* w, const void* a) { return DotF32(n, w, a); }
float VecDotF16(int64_t n, const void* w, const void* a) { return DotF16(n, w, a); }
float VecDotBatchF32(int64_t n, const void* w, const void* a) {
  return DotBatch<F32, DotF32>(n, w, a);
}
float VecDotBatchF16(int64_t n, const void* w, const void* a) {
  return DotBatch<F16, DotF16>(n, w, a);
}
float VecDotBF16(int64_t n, const void* w, const void* a) { return DotBF16Zen4(n, w, a); }
float VecDotBatchBF16(int64_t n, const void* w, const void* a) {
  return DotBatchBF16Zen4(n, w, a);
}

}  // namespace shardlm::quant::ref
