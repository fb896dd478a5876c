// Scalar reference of the interleaved q4_K layout (blocks.h BlockQ4_Kx8):
// the load-time repacking of 8 plain rows and the 8-row product over it.
//
// The product computes exactly what VecDotX8Q4_K (k_quants.cc) computes from
// the plain rows — llama.cpp's repacked q4_K order: per step (a super-block
// for its gemv, 64 elements for its gemm) an exact integer scale sum and min
// sum, then acc = fma(isum, d d_a, acc) and acc_min = fma(imin, dmin d_a,
// acc_min); the row's result is acc - acc_min.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/base/fp16.h"
#include "common/kernels/quant/blocks.h"
#include "common/kernels/quant/kernels.h"

namespace shardlm::quant::ref {

void InterleaveQ4_Kx8(const void* rows, size_t row_bytes, int64_t n, void* dst) {
  auto* out = static_cast<BlockQ4_Kx8*>(dst);
  for (int64_t i = 0; i < n / kQKK; ++i) {
    for (int r = 0; r < 8; ++r) {
      const auto* b = RowAt<BlockQ4_K>(rows, row_bytes, r) + i;
      out[i].d[r] = b->d;
      out[i].dmin[r] = b->dmin;
      uint8_t sc[8], m[8];
      UnpackScaleMinK4(b->scales, sc, m);
      for (int j = 0; j < 8; ++j) {
        out[i].scales[j][r] = sc[j];
        out[i].mins[j][r] = m[j];
      }
      for (int g = 0; g < 4; ++g) {
        for (int c = 0; c < 8; ++c) {
          std::memcpy(&out[i].qs[256 * g + 32 * c + 4 * r], &b->qs[32 * g + 4 * c], 4);
        }
      }
    }
  }
}

void GemmQ4_Kx8(int64_t n, const void* w, const void* a, size_t a_stride,
                const ActivationBlockTerms* /*terms*/, size_t /*terms_stride*/, int n_act,
                float* out, bool gemm) {
  const auto* wb = static_cast<const BlockQ4_Kx8*>(w);
  const int step = gemm ? 64 : kQKK;  // llama.cpp's gemm sums 64 elements at a time
  for (int t = 0; t < n_act; ++t) {
    const auto* ab = RowAt<BlockQ8_K>(a, a_stride, t);
    for (int r = 0; r < 8; ++r) {
      float acc = 0, acc_min = 0;
      for (int64_t i = 0; i < n / kQKK; ++i) {
        const BlockQ4_Kx8& b = wb[i];
        for (int e0 = 0; e0 < kQKK; e0 += step) {
          int32_t isum = 0, imin = 0;
          for (int e = e0; e < e0 + step; ++e) {
            const int g = e / 64, hi = (e % 64) / 32, l = e % 32;
            const uint8_t byte = b.qs[256 * g + 32 * (l / 4) + 4 * r + l % 4];
            const int u = hi ? byte >> 4 : byte & 0xF;
            isum += b.scales[e / 32][r] * u * ab[i].qs[e];
          }
          for (int j = e0 / 16; j < (e0 + step) / 16; ++j)
            imin += b.mins[j / 2][r] * ab[i].bsums[j];
          acc = std::fma(static_cast<float>(isum), Fp16ToFp32(b.d[r]) * ab[i].d, acc);
          acc_min = std::fma(static_cast<float>(imin), Fp16ToFp32(b.dmin[r]) * ab[i].d, acc_min);
        }
      }
      out[8 * t + r] = acc - acc_min;
    }
  }
}

}  // namespace shardlm::quant::ref
