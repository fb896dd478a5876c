// Scalar reference of the interleaved q4_0 layout (blocks.h BlockQ4_0x8):
// the load-time repacking of 8 plain rows, the activation block terms the
// fast kernel needs, and the 8-row product over the interleaved bytes.
//
// The product computes exactly what VecDotX8Q4_0 (legacy.cc) computes from
// the plain rows: per row an exact integer dot per block, then one FMA chain
// over the blocks, acc = fma(isum, d_w d_a, acc) — llama.cpp's repacked q4_0
// kernel. Only where the bytes sit differs.
#include <cmath>
#include <cstdint>
#include <cstring>

#include "common/base/fp16.h"
#include "common/kernels/quant/blocks.h"
#include "common/kernels/quant/kernels.h"

namespace shardlm::quant::ref {

void InterleaveQ4_0x8(const void* rows, size_t row_bytes, int64_t n, void* dst) {
  auto* out = static_cast<BlockQ4_0x8*>(dst);
  for (int64_t ib = 0; ib < n / kQK; ++ib) {
    for (int r = 0; r < 8; ++r) {
      const auto* b = RowAt<BlockQ4_0>(rows, row_bytes, r) + ib;
      out[ib].d[r] = b->d;
      for (int k = 0; k < 4; ++k) std::memcpy(&out[ib].qs[32 * k + 4 * r], &b->qs[4 * k], 4);
    }
  }
}

void BlockTermsQ8_0(const void* a, int64_t n, ActivationBlockTerms* terms) {
  const auto* ab = static_cast<const BlockQ8_0*>(a);
  for (int64_t ib = 0; ib < n / kQK; ++ib) {
    int32_t s = 0;
    for (int8_t q : ab[ib].qs) s += q;
    terms[ib] = {Fp16ToFp32(ab[ib].d), 8 * s};
  }
}

void GemmQ4_0x8(int64_t n, const void* w, const void* a, size_t a_stride,
                const ActivationBlockTerms* /*terms*/, size_t /*terms_stride*/, int n_act,
                float* out, bool /*gemm*/) {
  const auto* wb = static_cast<const BlockQ4_0x8*>(w);
  for (int t = 0; t < n_act; ++t) {
    const auto* ab = RowAt<BlockQ8_0>(a, a_stride, t);
    for (int r = 0; r < 8; ++r) {
      float acc = 0;
      for (int64_t ib = 0; ib < n / kQK; ++ib) {
        int isum = 0;
        for (int k = 0; k < 4; ++k) {
          for (int e = 0; e < 4; ++e) {
            const uint8_t byte = wb[ib].qs[32 * k + 4 * r + e];
            isum += ((byte & 0xF) - 8) * ab[ib].qs[4 * k + e];
            isum += ((byte >> 4) - 8) * ab[ib].qs[16 + 4 * k + e];
          }
        }
        acc =
            std::fma(static_cast<float>(isum), Fp16ToFp32(wb[ib].d[r]) * Fp16ToFp32(ab[ib].d), acc);
      }
      out[8 * t + r] = acc;
    }
  }
}

}  // namespace shardlm::quant::ref
