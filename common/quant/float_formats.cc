// Scalar reference kernels of the float formats f32, f16 and bf16. Their
// vec_dot pairs a weight row with an activation row of the same format
// (llama.cpp's vec_dot_type for them) and accumulates in double, so the
// reference is the exactly rounded dot of the stored values up to one final
// rounding; SIMD versions accumulate in f32 lanes and are held to it within
// a relative tolerance.
#include <cstdint>
#include <cstring>

#include "common/fp16.h"
#include "common/quant/kernels.h"

namespace shardlm::quant::ref {
namespace {

float LoadF32(const void* p, int64_t i) { return static_cast<const float*>(p)[i]; }
float LoadF16(const void* p, int64_t i) { return Fp16ToFp32(static_cast<const uint16_t*>(p)[i]); }
float LoadBF16(const void* p, int64_t i) { return Bf16ToFp32(static_cast<const uint16_t*>(p)[i]); }

template <float (*Load)(const void*, int64_t)>
float Dot(int64_t n, const void* w, const void* a) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(Load(w, i)) * Load(a, i);
  return static_cast<float>(sum);
}

template <float (*Load)(const void*, int64_t)>
void ToFloat(const void* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = Load(src, i);
}

template <uint16_t (*Store)(float)>
void FromFloat(const float* src, void* dst, int64_t n) {
  auto* out = static_cast<uint16_t*>(dst);
  for (int64_t i = 0; i < n; ++i) out[i] = Store(src[i]);
}

}  // namespace

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
float VecDotF32(int64_t n, const void* w, const void* a) { return Dot<LoadF32>(n, w, a); }
float VecDotF16(int64_t n, const void* w, const void* a) { return Dot<LoadF16>(n, w, a); }
float VecDotBF16(int64_t n, const void* w, const void* a) { return Dot<LoadBF16>(n, w, a); }

}  // namespace shardlm::quant::ref
