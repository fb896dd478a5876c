// The aarch64 NEON kernels (kernels.h has the function types and the
// reference kernels they reproduce to the bit). Three namespaces with the
// same list:
//   neon_base     plain ARMv8.0 Advanced SIMD (every aarch64 CPU)
//   neon_dotprod  the same sources built with +dotprod (sdot); call only on
//                 CPUs with HWCAP_ASIMDDP
//   neon          what the registry uses: each entry calls neon_dotprod's
//                 kernel where the CPU has the dot product, else neon_base's
//                 (neon_dispatch.cc)
// Compiled only for aarch64 (SHARDLM_HAVE_NEON_KERNELS).
#ifndef SHARDLM_COMMON_KERNELS_QUANT_KERNELS_NEON_H_
#define SHARDLM_COMMON_KERNELS_QUANT_KERNELS_NEON_H_

#include <cstddef>
#include <cstdint>

#include "common/kernels/quant/blocks.h"
#include "common/kernels/quant/kernels.h"

// One declaration list, repeated for each namespace.
#define SHARDLM_NEON_KERNEL_LIST                                                             \
  DequantizeKernel DequantizeQ4_0, DequantizeQ8_0;                                           \
  QuantizeKernel QuantizeQ8_0, QuantizeQ8_1, QuantizeActivationQ8_0, QuantizeActivationQ8_1; \
  VecDotKernel VecDotQ4_0, VecDotQ4_1, VecDotQ5_0, VecDotQ5_1, VecDotQ8_0;                   \
  TileKernel VecDotTileQ4_0, VecDotTileQ4_1, VecDotTileQ5_0, VecDotTileQ5_1, VecDotTileQ8_0; \
  X8Kernel VecDotX8Q4_0, VecDotX8Q2_K, VecDotX8Q4_K;                                         \
  InterleavedGemmKernel GemmQ4_0x8;                                                          \
  VecDotKernel VecDotQ2_K, VecDotQ3_K, VecDotQ4_K, VecDotQ5_K, VecDotQ6_K;                   \
  TileKernel VecDotTileQ3_K, VecDotTileQ5_K, VecDotTileQ6_K;                                 \
  QuantizeKernel QuantizeQ8_K;                                                               \
  InterleavedGemmKernel GemmQ4_Kx8;                                                          \
  DequantizeKernel DequantizeF16, DequantizeBF16;                                            \
  QuantizeKernel QuantizeF16;                                                                \
  VecDotKernel VecDotF32, VecDotF16, VecDotBF16, VecDotBatchF32, VecDotBatchF16;             \
  void SwiGlu(int64_t n, const float* gate, const float* up, float* out);                    \
  double SoftmaxExp(int64_t n, const float* x, float max, float* y);                         \
  MixRowsKernel MixRowsF32, MixRowsF16;

namespace shardlm::quant {
namespace neon_base {
SHARDLM_NEON_KERNEL_LIST
}  // namespace neon_base
namespace neon_dotprod {
SHARDLM_NEON_KERNEL_LIST
}  // namespace neon_dotprod
namespace neon {
SHARDLM_NEON_KERNEL_LIST
// True when the neon entries run the dot-product builds (HWCAP_ASIMDDP).
bool UsesDotProd();
}  // namespace neon
}  // namespace shardlm::quant

#endif  // SHARDLM_COMMON_KERNELS_QUANT_KERNELS_NEON_H_
