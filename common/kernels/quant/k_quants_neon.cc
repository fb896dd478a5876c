// NEON vec_dot of the K-quants (q2_K .. q6_K) against q8_K activations, and
// the q8_K quantizer (aarch64; built plain and with the dot product, see
// simd_neon.h).
//
// The integer lanes are those of llama.cpp's AVX2 kernels (k_quants.cc
// VecDot): lane k collects s_j * level * q over elements 4k..4k+3 of every
// 32-element chunk — Dot4 yields exactly these 4-element sums, times the
// chunk's sub-block scale — then one FMA per super-block and lane, and each
// type's own min / offset term (ggml_order.h MinMode). Equal to the
// reference to the bit.
#include <arm_neon.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/kernels/quant/blocks.h"
#include "common/kernels/quant/ggml_order.h"
#include "common/kernels/quant/kernels_neon.h"
#include "common/kernels/quant/simd_neon.h"

namespace shardlm::quant::SHARDLM_NEON_NS {
namespace {

// One super-block with its levels in registers: chunk c (elements
// 32c..32c+31) in u[c][0] (first 16) and u[c][1]; 16 integer scales s and
// mins m (one per 16 elements), as k_quants.cc's KValues.
struct KLevels {
  int8x16_t u[8][2];
  int s[16];
  int m[16];
  float d, dmin;
};

inline int8x16_t Bits2(uint8x16_t q, int shift) {
  return vreinterpretq_s8_u8(
      vandq_u8(vshlq_u8(q, vdupq_n_s8(static_cast<int8_t>(-shift))), vdupq_n_u8(3)));
}

struct Q2K {  // element 128h + 32k + l: bits 2k..2k+1 of qs[32h + l]
  using Block = BlockQ2_K;
  static constexpr MinMode kMinMode = MinMode::kLanesFirst;
  static constexpr int kGemmSteps = 2;  // ggml_gemm_q2_K_8x8: 128 elements
  static void Unpack(const Block& b, KLevels* v) {
    for (int h = 0; h < 2; ++h)
      for (int o = 0; o < 2; ++o) {
        const uint8x16_t q = vld1q_u8(b.qs + 32 * h + 16 * o);
        for (int k = 0; k < 4; ++k) v->u[4 * h + k][o] = Bits2(q, 2 * k);
      }
    for (int j = 0; j < 16; ++j) {
      v->s[j] = b.scales[j] & 0xF;
      v->m[j] = b.scales[j] >> 4;
    }
    v->d = F16(b.d);
    v->dmin = F16(b.dmin);
  }
};

struct Q3K {  // q2_K's low bits, bit 4h + k of hmask[l] as bit 2; minus 4
  using Block = BlockQ3_K;
  static constexpr MinMode kMinMode = MinMode::kSigned;
  static void Unpack(const Block& b, KLevels* v) {
    for (int o = 0; o < 2; ++o) {
      const uint8x16_t hmask = vld1q_u8(b.hmask + 16 * o);
      for (int h = 0; h < 2; ++h) {
        const uint8x16_t q = vld1q_u8(b.qs + 32 * h + 16 * o);
        for (int k = 0; k < 4; ++k) {
          const uint8x16_t hbit = vandq_u8(
              vshlq_u8(hmask, vdupq_n_s8(static_cast<int8_t>(-(4 * h + k)))), vdupq_n_u8(1));
          v->u[4 * h + k][o] = vsubq_s8(
              vorrq_s8(Bits2(q, 2 * k), vreinterpretq_s8_u8(vshlq_n_u8(hbit, 2))), vdupq_n_s8(4));
        }
      }
    }
    int8_t sc[16];
    UnpackScalesQ3K(b.scales, sc);
    for (int j = 0; j < 16; ++j) {
      v->s[j] = sc[j];
      v->m[j] = 4 * sc[j];
    }
    v->d = v->dmin = F16(b.d);
  }
};

// q4_K and q5_K: chunk 2g = low nibbles of qs[32g..32g+31], chunk 2g + 1
// their high nibbles; q5_K adds bit c of qh[l] as bit 4 of chunk c.
template <class B, bool kFifthBit>
struct Q45K {
  using Block = B;
  static constexpr MinMode kMinMode = kFifthBit ? MinMode::kScalar : MinMode::kLanes4;
  static constexpr int kGemmSteps = 4;  // ggml_gemm_q4_K_8x8: 64 elements
  static void Unpack(const Block& b, KLevels* v) {
    for (int g = 0; g < 4; ++g)
      for (int o = 0; o < 2; ++o)
        Nibbles(b.qs + 32 * g + 16 * o, &v->u[2 * g][o], &v->u[2 * g + 1][o]);
    if constexpr (kFifthBit) {
      for (int o = 0; o < 2; ++o) {
        const uint8x16_t qh = vld1q_u8(b.qh + 16 * o);
        for (int c = 0; c < 8; ++c) {
          const uint8x16_t bit =
              vandq_u8(vshlq_u8(qh, vdupq_n_s8(static_cast<int8_t>(-c))), vdupq_n_u8(1));
          v->u[c][o] = vorrq_s8(v->u[c][o], vreinterpretq_s8_u8(vshlq_n_u8(bit, 4)));
        }
      }
    }
    uint8_t sc[8], m[8];
    UnpackScaleMinK4(b.scales, sc, m);
    for (int j = 0; j < 16; ++j) {
      v->s[j] = sc[j / 2];
      v->m[j] = m[j / 2];
    }
    v->d = F16(b.d);
    v->dmin = F16(b.dmin);
  }
};
using Q4K = Q45K<BlockQ4_K, false>;
using Q5K = Q45K<BlockQ5_K, true>;

// q6_K: in half h, chunk k's low 4 bits are a nibble of ql (low nibbles of
// ql[64h..+31] for k = 0, of ql[64h+32..+63] for k = 1, high nibbles for
// k = 2, 3), bits 2k..2k+1 of qh[32h..+31] on top; offset 32.
struct Q6K {
  using Block = BlockQ6_K;
  static constexpr MinMode kMinMode = MinMode::kIntLanes;
  static void Unpack(const Block& b, KLevels* v) {
    const uint8x16_t low4 = vdupq_n_u8(0x0F);
    for (int h = 0; h < 2; ++h)
      for (int o = 0; o < 2; ++o) {
        const uint8x16_t ql0 = vld1q_u8(b.ql + 64 * h + 16 * o);
        const uint8x16_t ql1 = vld1q_u8(b.ql + 64 * h + 32 + 16 * o);
        const uint8x16_t qh = vld1q_u8(b.qh + 32 * h + 16 * o);
        const uint8x16_t lows[4] = {vandq_u8(ql0, low4), vandq_u8(ql1, low4), vshrq_n_u8(ql0, 4),
                                    vshrq_n_u8(ql1, 4)};
        for (int k = 0; k < 4; ++k) {
          const uint8x16_t high = vreinterpretq_u8_s8(Bits2(qh, 2 * k));
          v->u[4 * h + k][o] = vreinterpretq_s8_u8(vorrq_u8(lows[k], vshlq_n_u8(high, 4)));
        }
      }
    for (int j = 0; j < 16; ++j) {
      v->s[j] = b.scales[j];
      v->m[j] = 32 * b.scales[j];
    }
    v->d = v->dmin = F16(b.d);
  }
};

// k_quants.cc VecDot: int32 lane k (lo: 0..3, hi: 4..7) collects
// s_j level q over elements 4k..4k+3 of every chunk (Dot4's lanes, times the
// sub-block scale), one FMA per super-block and lane, and the type's min /
// offset term in its MinMode.
template <class T>
float VecDot(int64_t n, const void* w, const void* a) {
  const auto* wb = static_cast<const typename T::Block*>(w);
  const auto* ab = static_cast<const BlockQ8_K*>(a);
  float32x4_t acc[2] = {vdupq_n_f32(0), vdupq_n_f32(0)};
  float32x4_t acc_min = vdupq_n_f32(0);  // kLanes4
  float summs = 0;                       // kScalar
  KLevels v;
  for (int64_t i = 0; i < n / kQKK; ++i) {
    T::Unpack(wb[i], &v);
    const BlockQ8_K& y = ab[i];
    int32x4_t lanes[2] = {vdupq_n_s32(0), vdupq_n_s32(0)};
    for (int c = 0; c < 8; ++c) {
      for (int o = 0; o < 2; ++o) {
        const int32x4_t dot = Dot4(vdupq_n_s32(0), v.u[c][o], vld1q_s8(y.qs + 32 * c + 16 * o));
        lanes[o] = vmlaq_n_s32(lanes[o], dot, v.s[2 * c + o]);
      }
    }
    const float d = y.d * v.d;
    const float neg_dmin = -y.d * v.dmin;
    // Per lane k the pair of 16-element sums 2k, 2k + 1 (kLanesFirst,
    // kIntLanes), or per 32-element sub-block (kLanes4, kScalar).
    int32_t pair[8];
    for (int k = 0; k < 8; ++k)
      pair[k] = v.m[2 * k] * y.bsums[2 * k] + v.m[2 * k + 1] * y.bsums[2 * k + 1];
    if constexpr (T::kMinMode == MinMode::kLanesFirst) {
      for (int o = 0; o < 2; ++o)
        acc[o] = vfmaq_n_f32(acc[o], vcvtq_f32_s32(vld1q_s32(pair + 4 * o)), neg_dmin);
    } else if constexpr (T::kMinMode == MinMode::kIntLanes) {
      for (int o = 0; o < 2; ++o) lanes[o] = vsubq_s32(lanes[o], vld1q_s32(pair + 4 * o));
    } else if constexpr (T::kMinMode == MinMode::kLanes4 || T::kMinMode == MinMode::kScalar) {
      int32_t bsum32[8], mins4[4];
      for (int j = 0; j < 8; ++j) bsum32[j] = y.bsums[2 * j] + y.bsums[2 * j + 1];
      for (int k = 0; k < 4; ++k)
        mins4[k] = v.m[4 * k] * bsum32[2 * k] + v.m[4 * k + 2] * bsum32[2 * k + 1];
      if constexpr (T::kMinMode == MinMode::kLanes4) {
        acc_min = vfmaq_n_f32(acc_min, vcvtq_f32_s32(vld1q_s32(mins4)), neg_dmin);
      } else {
        summs = std::fma(neg_dmin, static_cast<float>(mins4[0] + mins4[1] + mins4[2] + mins4[3]),
                         summs);
      }
    }
    for (int o = 0; o < 2; ++o) acc[o] = vfmaq_n_f32(acc[o], vcvtq_f32_s32(lanes[o]), d);
  }
  if constexpr (T::kMinMode == MinMode::kLanes4) {
    const float32x2_t m2 = vadd_f32(vget_low_f32(acc_min), vget_high_f32(acc_min));
    return HsumLanes8(acc[0], acc[1]) + (vget_lane_f32(m2, 0) + vget_lane_f32(m2, 1));
  }
  if constexpr (T::kMinMode == MinMode::kScalar) return HsumLanes8(acc[0], acc[1]) + summs;
  return HsumLanes8(acc[0], acc[1]);
}

// vec_dot per output (tile_reference.h's definition, with this vec_dot).
template <class T>
void VecDotTile(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
                int n_act, float* out) {
  for (int t = 0; t < n_act; ++t) {
    for (int r = 0; r < kTileRows; ++r) {
      out[kTileRows * t + r] = VecDot<T>(n, static_cast<const uint8_t*>(w) + r * row_bytes,
                                         static_cast<const uint8_t*>(a) + t * a_stride);
    }
  }
}

// Eight rows as llama.cpp's repacked 8-row kernels sum them (k_quants.cc
// VecDotX8): per step (a super-block for its gemv; 256 / kGemmSteps
// elements for its gemm) one exact integer scale sum and one min sum per
// row, each into its own FMA chain; the result is their difference. Each
// row's block is unpacked once for all kActs activation rows; the chains of
// rows 0..3 and 4..7 share one FMA each.
template <class T, int kActs>
void X8(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride, float* out,
        bool gemm) {
  const int steps = gemm ? T::kGemmSteps : 1, chunks = 8 / steps;
  const BlockQ8_K* act[kActs];
  float32x4_t acc[kActs][2], acc_min[kActs][2];
  for (int t = 0; t < kActs; ++t) {
    act[t] = RowAt<BlockQ8_K>(a, a_stride, t);
    acc[t][0] = acc[t][1] = acc_min[t][0] = acc_min[t][1] = vdupq_n_f32(0);
  }
  KLevels v;
  for (int64_t i = 0; i < n / kQKK; ++i) {
    int32_t isum[kActs][4][8], imin[kActs][4][8];  // [token][step][row]
    float d[8], dmin[8];
    for (int r = 0; r < 8; ++r) {
      T::Unpack(RowAt<typename T::Block>(w, row_bytes, r)[i], &v);
      d[r] = v.d;
      dmin[r] = v.dmin;
      for (int t = 0; t < kActs; ++t) {
        const BlockQ8_K& y = act[t][i];
        for (int st = 0; st < steps; ++st) {
          int32_t sum = 0, min = 0;
          for (int c = st * chunks; c < (st + 1) * chunks; ++c) {
            for (int o = 0; o < 2; ++o) {
              const int32x4_t dot =
                  Dot4(vdupq_n_s32(0), v.u[c][o], vld1q_s8(y.qs + 32 * c + 16 * o));
              sum += vaddvq_s32(dot) * v.s[2 * c + o];
              min += v.m[2 * c + o] * y.bsums[2 * c + o];
            }
          }
          isum[t][st][r] = sum;
          imin[t][st][r] = min;
        }
      }
    }
    for (int t = 0; t < kActs; ++t) {
      for (int h = 0; h < 2; ++h) {
        const float32x4_t scale = vmulq_n_f32(vld1q_f32(d + 4 * h), act[t][i].d);
        const float32x4_t min_scale = vmulq_n_f32(vld1q_f32(dmin + 4 * h), act[t][i].d);
        for (int st = 0; st < steps; ++st) {
          acc[t][h] = vfmaq_f32(acc[t][h], vcvtq_f32_s32(vld1q_s32(isum[t][st] + 4 * h)), scale);
          acc_min[t][h] =
              vfmaq_f32(acc_min[t][h], vcvtq_f32_s32(vld1q_s32(imin[t][st] + 4 * h)), min_scale);
        }
      }
    }
  }
  for (int t = 0; t < kActs; ++t) {
    vst1q_f32(out + 8 * t, vsubq_f32(acc[t][0], acc_min[t][0]));
    vst1q_f32(out + 8 * t + 4, vsubq_f32(acc[t][1], acc_min[t][1]));
  }
}

template <class T>
void X8Acts(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride, int n_act,
            float* out, bool gemm) {
  WithActs(n_act, [&](auto acts) {
    X8<T, decltype(acts)::value>(n, w, row_bytes, a, a_stride, out, gemm);
  });
}

}  // namespace

// quantize_row_q8_K_ref (k_quants.cc QuantizeQ8_K): iscale = -127 / max with
// max the signed value of largest magnitude (the first one on ties), q =
// min(127, round-to-even(iscale x)) (fcvtns, as NearestInt), d = 1 / iscale,
// bsums = sums of 16; an all-zero block is all zeros.
void QuantizeQ8_K(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ8_K*>(dst);
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    float32x4_t amax4 = vdupq_n_f32(0);
    for (int j = 0; j < kQKK; j += 4) amax4 = vmaxq_f32(amax4, vabsq_f32(vld1q_f32(x + j)));
    const float amax = vmaxvq_f32(amax4);
    if (amax == 0) {
      std::memset(&y[i], 0, sizeof(y[i]));
      continue;
    }
    int first = 0;
    while (std::fabs(x[first]) != amax) ++first;
    const float iscale = -127.f / x[first];
    for (int j = 0; j < kQKK; j += 16) {
      int32x4_t q[4];
      for (int k = 0; k < 4; ++k) {
        q[k] = vminq_s32(vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + j + 4 * k), iscale)),
                         vdupq_n_s32(127));
      }
      const int16x8_t q16[2] = {vcombine_s16(vmovn_s32(q[0]), vmovn_s32(q[1])),
                                vcombine_s16(vmovn_s32(q[2]), vmovn_s32(q[3]))};
      vst1q_s8(y[i].qs + j, vcombine_s8(vmovn_s16(q16[0]), vmovn_s16(q16[1])));
      y[i].bsums[j / 16] = static_cast<int16_t>(vaddvq_s16(vaddq_s16(q16[0], q16[1])));
    }
    y[i].d = 1 / iscale;
  }
}

float VecDotQ2_K(int64_t n, const void* w, const void* a) { return VecDot<Q2K>(n, w, a); }
float VecDotQ3_K(int64_t n, const void* w, const void* a) { return VecDot<Q3K>(n, w, a); }
float VecDotQ4_K(int64_t n, const void* w, const void* a) { return VecDot<Q4K>(n, w, a); }
float VecDotQ5_K(int64_t n, const void* w, const void* a) { return VecDot<Q5K>(n, w, a); }
float VecDotQ6_K(int64_t n, const void* w, const void* a) { return VecDot<Q6K>(n, w, a); }
#define SHARDLM_TILE(Name, Type)                                                   \
  void VecDotTile##Name(int64_t n, const void* w, size_t row_bytes, const void* a, \
                        size_t a_stride, int n_act, float* out) {                  \
    VecDotTile<Type>(n, w, row_bytes, a, a_stride, n_act, out);                    \
  }
SHARDLM_TILE(Q3_K, Q3K)
SHARDLM_TILE(Q5_K, Q5K)
SHARDLM_TILE(Q6_K, Q6K)
#undef SHARDLM_TILE
void VecDotX8Q2_K(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
                  int n_act, float* out, bool gemm) {
  X8Acts<Q2K>(n, w, row_bytes, a, a_stride, n_act, out, gemm);
}
void VecDotX8Q4_K(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
                  int n_act, float* out, bool gemm) {
  X8Acts<Q4K>(n, w, row_bytes, a, a_stride, n_act, out, gemm);
}

}  // namespace shardlm::quant::SHARDLM_NEON_NS
