// The reference vec_dot tile (tensor_format.h VecDotTileFn): vec_dot per
// output. The fast tiles only share unpacking between outputs, so they must
// equal this to the bit (tensor_format_test).
#ifndef SHARDLM_COMMON_KERNELS_QUANT_TILE_REFERENCE_H_
#define SHARDLM_COMMON_KERNELS_QUANT_TILE_REFERENCE_H_

#include <cstddef>
#include <cstdint>

#include "common/kernels/quant/kernels.h"

namespace shardlm::quant::ref {

template <float (*kVecDot)(int64_t n, const void* w, const void* a)>
void TileByVecDot(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
                  int n_act, float* out) {
  for (int t = 0; t < n_act; ++t) {
    for (int r = 0; r < kTileRows; ++r) {
      out[kTileRows * t + r] = kVecDot(n, static_cast<const uint8_t*>(w) + r * row_bytes,
                                       static_cast<const uint8_t*>(a) + t * a_stride);
    }
  }
}

}  // namespace shardlm::quant::ref

// Defines ref::VecDotTile<Type> from ref::VecDot<Type> (inside that namespace).
#define SHARDLM_REFERENCE_TILE(Type)                                                     \
  void VecDotTile##Type(int64_t n, const void* w, size_t row_bytes, const void* a,          \
                        size_t a_stride, int n_act, float* out) {                           \
    TileByVecDot<VecDot##Type>(n, w, row_bytes, a, a_stride, n_act, out);                   \
  }

#endif  // SHARDLM_COMMON_KERNELS_QUANT_TILE_REFERENCE_H_
