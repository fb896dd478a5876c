// The aarch64 NEON kernels (kernels.h has the function types and the
// reference kernels they reproduce to the bit). Three namespaces with
// kernels.h's SHARDLM_SIMD_KERNEL_LIST:
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

namespace shardlm::quant {
namespace neon_base {
SHARDLM_SIMD_KERNEL_LIST
}  // namespace neon_base
namespace neon_dotprod {
SHARDLM_SIMD_KERNEL_LIST
}  // namespace neon_dotprod
namespace neon {
SHARDLM_SIMD_KERNEL_LIST
// True when the neon entries run the dot-product builds (HWCAP_ASIMDDP).
bool UsesDotProd();
}  // namespace neon
}  // namespace shardlm::quant

#endif  // SHARDLM_COMMON_KERNELS_QUANT_KERNELS_NEON_H_
