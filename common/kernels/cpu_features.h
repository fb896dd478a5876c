// What this CPU and its OS can run, read once from CPUID and XGETBV: the
// registry (tensor_format.cc) chooses and refuses kernel sets from it.
#ifndef SHARDLM_COMMON_KERNELS_CPU_FEATURES_H_
#define SHARDLM_COMMON_KERNELS_CPU_FEATURES_H_

#include <string>

namespace shardlm {

struct CpuFeatures {
  // x86-64. Each AVX-512 / AMX bit is set only when the OS also saves the
  // register state (XCR0: opmask + ZMM, tile config + data), so a true bit
  // means the instructions run without SIGILL.
  bool avx2 = false, fma = false, f16c = false;
  bool avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false;
  bool avx512vnni = false, avx512bf16 = false;
  bool amx_tile = false, amx_int8 = false, amx_bf16 = false;
  // aarch64: Advanced SIMD, and the sdot/udot instructions (ARMv8.2 DotProd).
  bool neon = false, neon_dotprod = false;
};

// This machine's features (computed on first call).
const CpuFeatures& HostCpu();

// The features above that this CPU has, space-separated ("avx2 fma f16c
// avx512f ..."), for logs and benchmarks.
std::string CpuFeatureList(const CpuFeatures& cpu);

}  // namespace shardlm

#endif  // SHARDLM_COMMON_KERNELS_CPU_FEATURES_H_
