// Scalar quantizers of the K-quants, following ggml's quantize_row_*_ref (the
// path llama-quantize takes without an importance matrix) operation for
// operation, so that a tensor we quantize is the one llama.cpp would write.
//
// Each super-block of 256 is cut into sub-blocks (16 or 32 elements); a
// search picks each sub-block's float scale (and min), then those are
// quantized to 4/6/8 bits against one f16 super-block scale, and finally every
// element is re-quantized with the scale it will actually be decoded with.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/base/fp16.h"
#include "common/kernels/quant/blocks.h"
#include "common/kernels/quant/kernels.h"

namespace shardlm::quant::ref {
namespace {

constexpr float kGroupMaxEps = 1e-15f;

// make_qx_quants (rmse_type 1, no importance weights): symmetric levels
// l in [-nmax, nmax) for x ~ scale * l. Starting from scale = max / -nmax it
// tries 18 nearby inverse scales -(nmax + 0.1 is) / max and keeps the one with
// the best weighted least-squares fit (weights x^2): for fixed levels the best
// scale is sum(w x l) / sum(w l^2) and the fit improves with sum(w x l)^2 /
// sum(w l^2). Returns the scale; L gets l + nmax.
float MakeQxQuants(int n, int nmax, const float* x, int8_t* L) {
  float amax;
  const float max = SignedAbsMax(x, n, &amax);
  if (amax < kGroupMaxEps) {
    std::fill(L, L + n, 0);
    return 0.f;
  }
  float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1);
    L[i] = static_cast<int8_t>(l + nmax);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
  float best = scale * sumlx;
  for (int is = -9; is <= 9; ++is) {
    if (is == 0) continue;
    iscale = -(nmax + 0.1f * is) / max;
    sumlx = suml2 = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1);
      const float w = x[i] * x[i];
      sumlx += w * x[i] * l;
      suml2 += w * l * l;
    }
    if (suml2 > 0 && sumlx * sumlx > best * suml2) {
      for (int i = 0; i < n; ++i) {
        L[i] = static_cast<int8_t>(nmax + std::clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1));
      }
      scale = sumlx / suml2;
      best = scale * sumlx;
    }
  }
  return scale;
}

// make_q3_quants with do_rmse: start from scale max / -nmax, then up to five
// passes of coordinate descent moving one level at a time whenever that
// improves the weighted fit (weights x^2). Returns the scale; L gets l + nmax.
float MakeQ3Quants(int n, int nmax, const float* x, int8_t* L) {
  float amax;
  const float max = SignedAbsMax(x, n, &amax);
  if (amax < kGroupMaxEps) {
    std::fill(L, L + n, 0);
    return 0.f;
  }
  const float iscale = -nmax / max;
  float sumlx = 0, suml2 = 0;
  for (int i = 0; i < n; ++i) {
    const int l = std::clamp(NearestInt(iscale * x[i]), -nmax, nmax - 1);
    L[i] = static_cast<int8_t>(l);
    const float w = x[i] * x[i];
    sumlx += w * x[i] * l;
    suml2 += w * l * l;
  }
  for (int itry = 0; itry < 5; ++itry) {
    int n_changed = 0;
    for (int i = 0; i < n; ++i) {
      const float w = x[i] * x[i];
      float slx = sumlx - w * x[i] * L[i];
      if (slx > 0) {
        float sl2 = suml2 - w * L[i] * L[i];
        const int new_l = std::clamp(NearestInt(x[i] * sl2 / slx), -nmax, nmax - 1);
        if (new_l != L[i]) {
          slx += w * x[i] * new_l;
          sl2 += w * new_l * new_l;
          if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
            L[i] = static_cast<int8_t>(new_l);
            sumlx = slx;
            suml2 = sl2;
            ++n_changed;
          }
        }
      }
    }
    if (n_changed == 0) break;
  }
  for (int i = 0; i < n; ++i) L[i] = static_cast<int8_t>(L[i] + nmax);
  return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// make_qkx2_quants: affine levels l in [0, nmax] for x ~ scale * l + min with
// min <= 0. Tries nstep + 1 inverse scales (rmin + rdelta is + nmax) /
// (max - min); for each level assignment solves the weighted least squares
// for (scale, min) in closed form (Cramer's rule on the 2x2 normal
// equations, D = sum_w sum_wl2 - sum_wl^2) and keeps the lowest weighted
// error (|diff| if use_mad, else diff^2). Returns scale; *the_min = -min.
float MakeQkx2Quants(int n, int nmax, const float* x, const float* weights, uint8_t* L,
                     float* the_min, uint8_t* Laux, float rmin, float rdelta, int nstep,
                     bool use_mad) {
  float min = x[0], max = x[0];
  float sum_w = weights[0];
  float sum_x = sum_w * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min) min = x[i];
    if (x[i] > max) max = x[i];
    const float w = weights[i];
    sum_w += w;
    sum_x += w * x[i];
  }
  if (min > 0) min = 0;
  if (max == min) {
    std::fill(L, L + n, 0);
    *the_min = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float best_error = 0;
  for (int i = 0; i < n; ++i) {
    L[i] = static_cast<uint8_t>(std::clamp(NearestInt(iscale * (x[i] - min)), 0, nmax));
    float diff = scale * L[i] + min - x[i];
    diff = use_mad ? std::fabs(diff) : diff * diff;
    best_error += weights[i] * diff;
  }
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * is + nmax) / (max - min);
    float sum_l = 0, sum_l2 = 0, sum_xl = 0;
    for (int i = 0; i < n; ++i) {
      const int l = std::clamp(NearestInt(iscale * (x[i] - min)), 0, nmax);
      Laux[i] = static_cast<uint8_t>(l);
      const float w = weights[i];
      sum_l += w * l;
      sum_l2 += w * l * l;
      sum_xl += w * l * x[i];
    }
    const float D = sum_w * sum_l2 - sum_l * sum_l;
    if (D > 0) {
      float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
      float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
      if (this_min > 0) {
        this_min = 0;
        this_scale = sum_xl / sum_l2;
      }
      float cur_error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = this_scale * Laux[i] + this_min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        cur_error += weights[i] * diff;
      }
      if (cur_error < best_error) {
        std::copy(Laux, Laux + n, L);
        best_error = cur_error;
        scale = this_scale;
        min = this_min;
      }
    }
  }
  *the_min = -min;
  return scale;
}

// Packs levels < 4 four to a byte: element 128h + 32k + l -> bits 2k of
// qs[32h + l] (q2_K and the low bits of q3_K).
void Pack2Bit(const uint8_t* L, uint8_t* qs) {
  for (int j = 0; j < kQKK; j += 128) {
    for (int l = 0; l < 32; ++l) {
      qs[j / 4 + l] = static_cast<uint8_t>(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) |
                                           (L[j + l + 96] << 6));
    }
  }
}

// Shared by q4_K and q5_K: search each 32-element sub-block with weights
// av_x + |x| (av_x = rms of the sub-block), quantize scales and mins to 6 bits
// against d = max_scale / 63 and dmin = max_min / 63, pack them (inverse of
// UnpackScaleMinK4) and re-quantize the levels to [0, nmax].
template <class Block>
void QuantizeSuperBlockK45(const float* x, int nmax, float rmin, float rdelta, int nstep, Block* y,
                           uint8_t* L) {
  float mins[8], scales[8], weights[32];
  uint8_t Laux[32];
  float max_scale = 0, max_min = 0;
  for (int j = 0; j < 8; ++j) {
    float sum_x2 = 0;
    for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
    const float av_x = std::sqrt(sum_x2 / 32);
    for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
    scales[j] = MakeQkx2Quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux, rmin,
                               rdelta, nstep, false);
    max_scale = std::max(max_scale, scales[j]);
    max_min = std::max(max_min, mins[j]);
  }
  const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
  const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
  for (int j = 0; j < 8; ++j) {
    const uint8_t ls =
        std::min<uint8_t>(63, static_cast<uint8_t>(NearestInt(inv_scale * scales[j])));
    const uint8_t lm = std::min<uint8_t>(63, static_cast<uint8_t>(NearestInt(inv_min * mins[j])));
    if (j < 4) {
      y->scales[j] = ls;
      y->scales[j + 4] = lm;
    } else {
      y->scales[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
      y->scales[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
      y->scales[j] |= static_cast<uint8_t>((lm >> 4) << 6);
    }
  }
  y->d = Fp32ToFp16(max_scale / 63.f);
  y->dmin = Fp32ToFp16(max_min / 63.f);
  uint8_t sc[8], m[8];
  UnpackScaleMinK4(y->scales, sc, m);
  for (int j = 0; j < 8; ++j) {
    const float d = Fp16ToFp32(y->d) * sc[j];
    if (d == 0) continue;
    const float dm = Fp16ToFp32(y->dmin) * m[j];
    for (int ii = 0; ii < 32; ++ii) {
      L[32 * j + ii] =
          static_cast<uint8_t>(std::clamp(NearestInt((x[32 * j + ii] + dm) / d), 0, nmax));
    }
  }
}

}  // namespace

void QuantizeQ2_K(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ2_K*>(dst);
  const float q4scale = 15.f;
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    uint8_t L[kQKK], Laux[16];
    float weights[16], mins[16], scales[16];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 16; ++j) {
      for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
      scales[j] = MakeQkx2Quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux, -0.5f,
                                 0.1f, 15, true);
      max_scale = std::max(max_scale, scales[j]);
      max_min = std::max(max_min, mins[j]);
    }
    if (max_scale > 0) {
      const float iscale = q4scale / max_scale;
      for (int j = 0; j < 16; ++j)
        y[i].scales[j] = static_cast<uint8_t>(NearestInt(iscale * scales[j]));
      y[i].d = Fp32ToFp16(max_scale / q4scale);
    } else {
      std::fill(y[i].scales, y[i].scales + 16, 0);
      y[i].d = Fp32ToFp16(0.f);
    }
    if (max_min > 0) {
      const float iscale = q4scale / max_min;
      for (int j = 0; j < 16; ++j)
        y[i].scales[j] |= static_cast<uint8_t>(NearestInt(iscale * mins[j]) << 4);
      y[i].dmin = Fp32ToFp16(max_min / q4scale);
    } else {
      y[i].dmin = Fp32ToFp16(0.f);
    }
    for (int j = 0; j < 16; ++j) {
      const float d = Fp16ToFp32(y[i].d) * (y[i].scales[j] & 0xF);
      if (d == 0) continue;
      const float dm = Fp16ToFp32(y[i].dmin) * (y[i].scales[j] >> 4);
      for (int ii = 0; ii < 16; ++ii) {
        L[16 * j + ii] =
            static_cast<uint8_t>(std::clamp(NearestInt((x[16 * j + ii] + dm) / d), 0, 3));
      }
    }
    Pack2Bit(L, y[i].qs);
  }
}

void QuantizeQ3_K(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ3_K*>(dst);
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    int8_t L[kQKK];
    float scales[16];
    for (int j = 0; j < 16; ++j) scales[j] = MakeQ3Quants(16, 4, x + 16 * j, L + 16 * j);
    float amax;
    const float max_scale = SignedAbsMax(scales, 16, &amax);
    std::memset(y[i].scales, 0, sizeof(y[i].scales));
    if (max_scale != 0) {
      // Six-bit scales l in [0, 63] (value l - 32): low nibbles in bytes 0-7,
      // top two bits in bytes 8-11 (the layout UnpackScalesQ3K reads).
      const float iscale = -32.f / max_scale;
      for (int j = 0; j < 16; ++j) {
        int l = std::clamp(static_cast<int>(static_cast<int8_t>(NearestInt(iscale * scales[j]))),
                           -32, 31) +
                32;
        if (j < 8) {
          y[i].scales[j] = static_cast<uint8_t>(l & 0xF);
        } else {
          y[i].scales[j - 8] |= static_cast<uint8_t>((l & 0xF) << 4);
        }
        l >>= 4;
        y[i].scales[j % 4 + 8] |= static_cast<uint8_t>(l << (2 * (j / 4)));
      }
      y[i].d = Fp32ToFp16(1 / iscale);
    } else {
      y[i].d = Fp32ToFp16(0.f);
    }
    int8_t sc[16];
    UnpackScalesQ3K(y[i].scales, sc);
    for (int j = 0; j < 16; ++j) {
      const float d = Fp16ToFp32(y[i].d) * sc[j];
      if (d == 0) continue;
      for (int ii = 0; ii < 16; ++ii) {
        L[16 * j + ii] = static_cast<int8_t>(std::clamp(NearestInt(x[16 * j + ii] / d), -4, 3) + 4);
      }
    }
    // Bit 2 of element j's level goes to bit j / 32 of hmask[j % 32] (the
    // BlockQ3_K layout), the low two bits are packed as in q2_K.
    std::memset(y[i].hmask, 0, sizeof(y[i].hmask));
    uint8_t low[kQKK];
    for (int j = 0; j < kQKK; ++j) {
      if (L[j] > 3) y[i].hmask[j % 32] |= static_cast<uint8_t>(1u << (j / 32));
      low[j] = static_cast<uint8_t>(L[j] & 3);
    }
    Pack2Bit(low, y[i].qs);
  }
}

void QuantizeQ4_K(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ4_K*>(dst);
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    uint8_t L[kQKK];
    std::memset(&y[i], 0, sizeof(y[i]));
    QuantizeSuperBlockK45(x, 15, -1.f, 0.1f, 20, &y[i], L);
    for (int g = 0; g < 4; ++g)
      for (int l = 0; l < 32; ++l)
        y[i].qs[32 * g + l] = static_cast<uint8_t>(L[64 * g + l] | (L[64 * g + 32 + l] << 4));
  }
}

void QuantizeQ5_K(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ5_K*>(dst);
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    uint8_t L[kQKK];
    std::memset(&y[i], 0, sizeof(y[i]));
    QuantizeSuperBlockK45(x, 31, -0.5f, 0.1f, 15, &y[i], L);
    // Bit 4 of element 32c + l -> bit c of qh[l]; low 4 bits as q4_K.
    for (int c = 0; c < 8; ++c)
      for (int l = 0; l < 32; ++l) y[i].qh[l] |= static_cast<uint8_t>((L[32 * c + l] >> 4) << c);
    for (int g = 0; g < 4; ++g)
      for (int l = 0; l < 32; ++l) {
        y[i].qs[32 * g + l] =
            static_cast<uint8_t>((L[64 * g + l] & 0xF) | ((L[64 * g + 32 + l] & 0xF) << 4));
      }
  }
}

void QuantizeQ6_K(const float* x, void* dst, int64_t n) {
  auto* y = static_cast<BlockQ6_K*>(dst);
  for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
    int8_t L[kQKK];
    float scales[16];
    for (int ib = 0; ib < 16; ++ib) scales[ib] = MakeQxQuants(16, 32, x + 16 * ib, L + 16 * ib);
    float max_abs_scale;
    const float max_scale = SignedAbsMax(scales, 16, &max_abs_scale);
    std::memset(&y[i], 0, sizeof(y[i]));
    if (max_abs_scale < kGroupMaxEps) continue;  // all-zero block, d = 0
    const float iscale = -128.f / max_scale;
    y[i].d = Fp32ToFp16(1 / iscale);
    for (int ib = 0; ib < 16; ++ib)
      y[i].scales[ib] = static_cast<int8_t>(std::min(127, NearestInt(iscale * scales[ib])));
    for (int j = 0; j < 16; ++j) {
      const float d = Fp16ToFp32(y[i].d) * y[i].scales[j];
      if (d == 0) continue;
      for (int ii = 0; ii < 16; ++ii) {
        L[16 * j + ii] =
            static_cast<int8_t>(std::clamp(NearestInt(x[16 * j + ii] / d), -32, 31) + 32);
      }
    }
    // Inverse of the BlockQ6_K layout: low nibbles of elements 32k + l into
    // ql[l + 32 (k & 1)] (k < 2 low nibble, else high), bits 4-5 into qh[l].
    for (int h = 0; h < 2; ++h) {
      const int8_t* Lh = L + 128 * h;
      for (int l = 0; l < 32; ++l) {
        y[i].ql[64 * h + l] = static_cast<uint8_t>((Lh[l] & 0xF) | ((Lh[l + 64] & 0xF) << 4));
        y[i].ql[64 * h + l + 32] =
            static_cast<uint8_t>((Lh[l + 32] & 0xF) | ((Lh[l + 96] & 0xF) << 4));
        y[i].qh[32 * h + l] =
            static_cast<uint8_t>((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) |
                                 ((Lh[l + 64] >> 4) << 4) | ((Lh[l + 96] >> 4) << 6));
      }
    }
  }
}

}  // namespace shardlm::quant::ref
