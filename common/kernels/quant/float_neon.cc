// NEON kernels of f32 and f16 (aarch64; built plain and with the dot
// product, see simd_neon.h — neither build uses it here).
//
// The orders are the reference's (float_formats.cc), which are llama.cpp's
// AVX-512 build: vec_dot keeps 64 FMA slots (16 float32x4 registers,
// element i in slot i % 64) reduced as ggml_order.h HsumSlots64, then the
// reference's own tail; the batch kernel (tinyBLAS) keeps 16 slots. Equal to
// the bit.
#include <arm_neon.h>

#include <cmath>
#include <cstdint>

#include "common/kernels/quant/ggml_order.h"
#include "common/kernels/quant/kernels_neon.h"
#include "common/kernels/quant/simd_neon.h"

namespace shardlm::quant::SHARDLM_NEON_NS {
namespace {

struct F32Row {
  static float32x4_t Load4(const void* p, int64_t i) {
    return vld1q_f32(static_cast<const float*>(p) + i);
  }
  static float Load(const void* p, int64_t i) { return static_cast<const float*>(p)[i]; }
};
struct F16Row {
  static float32x4_t Load4(const void* p, int64_t i) {
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(static_cast<const uint16_t*>(p) + i)));
  }
  static float Load(const void* p, int64_t i) {
    return F16(static_cast<const uint16_t*>(p)[i]);
  }
};

// kSlots FMA chains (slot i % kSlots) over the first np elements (np a
// multiple of kSlots), left in `slots`.
template <class F, int kSlots>
void Chains(int64_t np, const void* x, const void* y, float* slots) {
  float32x4_t acc[kSlots / 4];
  for (auto& v : acc) v = vdupq_n_f32(0);
  for (int64_t i = 0; i < np; i += kSlots) {
    for (int q = 0; q < kSlots / 4; ++q) {
      acc[q] = vfmaq_f32(acc[q], F::Load4(x, i + 4 * q), F::Load4(y, i + 4 * q));
    }
  }
  for (int q = 0; q < kSlots / 4; ++q) vst1q_f32(slots + 4 * q, acc[q]);
}

// float_formats.cc DotF32: 64 slots, then 16- and 8-element pieces added
// one product at a time, the last < 8 fused.
float DotF32(int64_t n, const void* x, const void* y) {
  const int64_t np = n & ~int64_t{63};
  float slots[64];
  Chains<F32Row, 64>(np, x, y, slots);
  float sum = np > 0 ? HsumSlots64(slots) : 0.0f;
  int64_t i = np;
  for (; i + 16 <= n; i += 16)
    for (int l = 0; l < 16; ++l) sum += F32Row::Load(x, i + l) * F32Row::Load(y, i + l);
  if (n - i >= 8) {
    for (int l = 0; l < 8; ++l) sum += F32Row::Load(x, i + l) * F32Row::Load(y, i + l);
    i += 8;
  }
  for (; i < n; ++i) sum = std::fma(F32Row::Load(x, i), F32Row::Load(y, i), sum);
  return sum;
}

// float_formats.cc DotF16: 64 slots, the tail in double.
float DotF16(int64_t n, const void* x, const void* y) {
  const int64_t np = n & ~int64_t{63};
  float slots[64];
  Chains<F16Row, 64>(np, x, y, slots);
  double sum = np > 0 ? HsumSlots64(slots) : 0.0f;
  for (int64_t i = np; i < n; ++i) sum += static_cast<double>(F16Row::Load(x, i) * F16Row::Load(y, i));
  return static_cast<float>(sum);
}

// tinyBLAS<16>: 16 slots, or vec_dot where n % 16 != 0.
template <class F, float (*Fallback)(int64_t, const void*, const void*)>
float DotBatch(int64_t n, const void* x, const void* y) {
  if (n % 16 != 0) return Fallback(n, x, y);
  float slots[16];
  Chains<F, 16>(n, x, y, slots);
  return HsumLanes16(slots);
}

}  // namespace

float VecDotF32(int64_t n, const void* w, const void* a) { return DotF32(n, w, a); }
float VecDotF16(int64_t n, const void* w, const void* a) { return DotF16(n, w, a); }
float VecDotBatchF32(int64_t n, const void* w, const void* a) {
  return DotBatch<F32Row, DotF32>(n, w, a);
}
float VecDotBatchF16(int64_t n, const void* w, const void* a) {
  return DotBatch<F16Row, DotF16>(n, w, a);
}

void DequantizeF16(const void* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, F16Row::Load4(src, i));
  for (; i < n; ++i) dst[i] = F16Row::Load(src, i);
}

void QuantizeF16(const float* src, void* dst, int64_t n) {
  auto* out = static_cast<uint16_t*>(dst);
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    vst1_u16(out + i, vreinterpret_u16_f16(vcvt_f16_f32(vld1q_f32(src + i))));
  }
  for (; i < n; ++i) out[i] = ToF16(src[i]);
}

}  // namespace shardlm::quant::SHARDLM_NEON_NS
