// NEON kernels of f32 and f16, and the forward pass's float operations
// (tensor_format.h ForwardKernels) (aarch64; built plain and with the dot
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
#include <cstring>

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
  static float Load(const void* p, int64_t i) { return F16(static_cast<const uint16_t*>(p)[i]); }
};

// bf16: the top half of an f32.
struct BF16Row {
  static float32x4_t Load4(const void* p, int64_t i) {
    const uint16x4_t h = vld1_u16(static_cast<const uint16_t*>(p) + i);
    return vreinterpretq_f32_u32(vshll_n_u16(h, 16));
  }
  static float Load(const void* p, int64_t i) {
    const uint32_t bits = static_cast<uint32_t>(static_cast<const uint16_t*>(p)[i]) << 16;
    float f;
    std::memcpy(&f, &bits, sizeof(f));
    return f;
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
  for (int64_t i = np; i < n; ++i)
    sum += static_cast<double>(F16Row::Load(x, i) * F16Row::Load(y, i));
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

// float_formats.cc MixRows, 4 dims per register: slot j % slots keeps an
// FMA chain per dim, reduced lane-wise in ggml's order (HsumLanes16 /
// HsumSlots64).
template <class F>
void MixRows(int64_t n, const float* p, const void* const* rows, int64_t offset, int64_t dim,
             int slots, float* scratch, float* out) {
  std::memset(scratch, 0, sizeof(float) * slots * dim);
  const int64_t dim4 = dim & ~int64_t{3};
  for (int64_t j = 0; j < n; ++j) {
    float* acc = scratch + (j % slots) * dim;
    int64_t i = 0;
    for (; i < dim4; i += 4) {
      vst1q_f32(acc + i, vfmaq_n_f32(vld1q_f32(acc + i), F::Load4(rows[j], offset + i), p[j]));
    }
    for (; i < dim; ++i) acc[i] = std::fma(F::Load(rows[j], offset + i), p[j], acc[i]);
  }
  auto slot = [&](int s, int64_t i) { return vld1q_f32(scratch + s * dim + i); };
  int64_t i = 0;
  for (; i < dim4; i += 4) {
    float32x4_t l[16];  // the 16 lanes of the last (or only) accumulator
    for (int k = 0; k < 16; ++k) {
      l[k] = slots == 16 ? slot(k, i)
                         : vaddq_f32(vaddq_f32(slot(k, i), slot(32 + k, i)),
                                     vaddq_f32(slot(16 + k, i), slot(48 + k, i)));
    }
    float32x4_t h[8];  // HsumLanes16, lane-wise over the dims
    for (int k = 0; k < 8; ++k) h[k] = vaddq_f32(l[k], l[k + 8]);
    for (int k = 0; k < 4; ++k) h[k] = vaddq_f32(h[k], h[k + 4]);
    vst1q_f32(out + i, vaddq_f32(vaddq_f32(h[0], h[2]), vaddq_f32(h[1], h[3])));
  }
  float lanes[64];
  for (; i < dim; ++i) {
    for (int s = 0; s < slots; ++s) lanes[s] = scratch[s * dim + i];
    out[i] = slots == 16 ? HsumLanes16(lanes) : HsumSlots64(lanes);
  }
}

// float_formats.cc ExpGgml, 4 lanes: the same FMAs, then 2^n as one
// multiplication where 2^n is a normal float; the rare lanes beyond go
// through ldexpf (also one rounding), as the reference.
float32x4_t ExpGgml4(float32x4_t x) {
  const float32x4_t r = vdupq_n_f32(0x1.8p23f);
  const float32x4_t n = vsubq_f32(vfmaq_f32(r, x, vdupq_n_f32(0x1.715476p+0f)), r);
  const float32x4_t b =
      vfmsq_f32(vfmsq_f32(x, n, vdupq_n_f32(0x1.62e4p-1f)), n, vdupq_n_f32(0x1.7f7d1cp-20f));
  const float32x4_t u = vmulq_f32(b, b);
  const auto fma = [](float32x4_t a, float32x4_t m, float c) {  // a * m + c, fused
    return vfmaq_f32(vdupq_n_f32(c), a, m);
  };
  const float32x4_t j = vfmaq_f32(fma(vdupq_n_f32(0x1.ffffecp-1f), b, 1.0f),
                                  vfmaq_f32(fma(vdupq_n_f32(0x1.555e66p-3f), b, 0x1.fffdb6p-2f),
                                            fma(vdupq_n_f32(0x1.0e4020p-7f), b, 0x1.573e2ep-5f), u),
                                  u);
  const int32x4_t ni = vcvtnq_s32_f32(n);
  const float32x4_t pow2 = vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(ni, vdupq_n_s32(127)), 23));
  float32x4_t res = vmulq_f32(j, pow2);
  const uint32x4_t normal =
      vandq_u32(vcgeq_f32(n, vdupq_n_f32(-126.0f)), vcleq_f32(n, vdupq_n_f32(127.0f)));
  if (vminvq_u32(normal) == 0) {
    float jv[4], nv[4], rv[4];
    uint32_t mv[4];
    vst1q_f32(jv, j);
    vst1q_f32(nv, n);
    vst1q_f32(rv, res);
    vst1q_u32(mv, normal);
    for (int k = 0; k < 4; ++k) {
      if (mv[k] != 0) continue;
      if (std::fabs(nv[k]) > 192) {
        rv[k] = nv[k] <= 0 ? 0.0f : INFINITY;
      } else {
        rv[k] = std::ldexp(jv[k], static_cast<int>(nv[k]));
      }
    }
    res = vld1q_f32(rv);
  }
  return res;
}

}  // namespace

void SwiGlu(int64_t n, const float* gate, const float* up, float* out) {
  const int64_t n16 = n - n % 16;  // ggml_vec_swiglu_f32: 16 lanes, then libm
  int64_t i = 0;
  for (; i < n16; i += 4) {
    const float32x4_t g = vld1q_f32(gate + i);
    const float32x4_t e = ExpGgml4(vsubq_f32(vdupq_n_f32(0.0f), g));
    const float32x4_t silu = vdivq_f32(g, vaddq_f32(vdupq_n_f32(1.0f), e));
    vst1q_f32(out + i, vmulq_f32(silu, vld1q_f32(up + i)));
  }
  for (; i < n; ++i) out[i] = gate[i] / (1.0f + std::exp(-gate[i])) * up[i];
}

double SoftmaxExp(int64_t n, const float* x, float max, float* y) {
  double sum = 0;
  const float32x4_t vmax = vdupq_n_f32(max);
  for (int64_t i0 = 0; i0 < n; i0 += 16) {
    float in[16], v[16];
    const int64_t m = n - i0 < 16 ? n - i0 : 16;
    for (int k = 0; k < 16; ++k) in[k] = k < m ? x[i0 + k] : -INFINITY;  // exp -> 0
    for (int q = 0; q < 4; ++q)
      vst1q_f32(v + 4 * q, ExpGgml4(vsubq_f32(vld1q_f32(in + 4 * q), vmax)));
    std::memcpy(y + i0, v, m * sizeof(float));
    sum += HsumLanes16(v);
  }
  return sum;
}

void MixRowsF32(int64_t n, const float* p, const void* const* rows, int64_t offset, int64_t dim,
                int slots, float* scratch, float* out) {
  MixRows<F32Row>(n, p, rows, offset, dim, slots, scratch, out);
}
void MixRowsF16(int64_t n, const float* p, const void* const* rows, int64_t offset, int64_t dim,
                int slots, float* scratch, float* out) {
  MixRows<F16Row>(n, p, rows, offset, dim, slots, scratch, out);
}

// bf16 is the one float format whose dot product may differ from the
// reference (which sums in double, as llama.cpp's bf16 kernel does on no
// SIMD path we reproduce): 16 FMA slots, then the tail, within the tolerance
// tensor_format_test states, as the AVX2 kernel.
float VecDotBF16(int64_t n, const void* w, const void* a) {
  const int64_t np = n & ~int64_t{15};
  float slots[16];
  Chains<BF16Row, 16>(np, w, a, slots);
  float sum = np > 0 ? HsumLanes16(slots) : 0.0f;
  for (int64_t i = np; i < n; ++i) sum += BF16Row::Load(w, i) * BF16Row::Load(a, i);
  return sum;
}

void DequantizeBF16(const void* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(dst + i, BF16Row::Load4(src, i));
  for (; i < n; ++i) dst[i] = BF16Row::Load(src, i);
}

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
