// CPUID / XGETBV by hand rather than __builtin_cpu_supports: clang 14 (the
// fuzz build) lacks some of the names, and AMX needs XCR0's tile bits, which
// neither compiler's cpu model checks.
#include "common/kernels/cpu_features.h"

#include <cstdint>
#include <utility>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

namespace shardlm {
namespace {

#if defined(__x86_64__) || defined(__i386__)
// XCR0 (the register state the OS saves on a context switch). Inline asm so
// this file needs no -mxsave.
uint64_t ReadXcr0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t{hi} << 32) | lo;
}

CpuFeatures Detect() {
  CpuFeatures f;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return f;
  const bool osxsave = (ecx & bit_OSXSAVE) != 0;
  const uint64_t xcr0 = osxsave ? ReadXcr0() : 0;
  const bool os_ymm = (xcr0 & 0x6) == 0x6;         // SSE + AVX state
  const bool os_zmm = os_ymm && (xcr0 & 0xe0) == 0xe0;  // opmask, ZMM_Hi256, Hi16_ZMM
  const bool os_amx = (xcr0 & 0x60000) == 0x60000;  // XTILECFG + XTILEDATA
  const bool avx = os_ymm && (ecx & bit_AVX) != 0;
  f.fma = avx && (ecx & bit_FMA) != 0;
  f.f16c = avx && (ecx & bit_F16C) != 0;
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, eax, ebx, ecx, edx);
  const unsigned max_subleaf = eax;
  f.avx2 = avx && (ebx & bit_AVX2) != 0;
  f.avx512f = os_zmm && (ebx & (1u << 16)) != 0;
  f.avx512dq = f.avx512f && (ebx & (1u << 17)) != 0;
  f.avx512bw = f.avx512f && (ebx & (1u << 30)) != 0;
  f.avx512vl = f.avx512f && (ebx & (1u << 31)) != 0;
  f.avx512vnni = f.avx512f && (ecx & (1u << 11)) != 0;
  f.amx_bf16 = os_amx && (edx & (1u << 22)) != 0;
  f.amx_tile = os_amx && (edx & (1u << 24)) != 0;
  f.amx_int8 = os_amx && (edx & (1u << 25)) != 0;
  if (max_subleaf >= 1) {
    __cpuid_count(7, 1, eax, ebx, ecx, edx);
    f.avx512bf16 = f.avx512f && (eax & (1u << 5)) != 0;
  }
  return f;
}
#elif defined(__aarch64__)
CpuFeatures Detect() {
  CpuFeatures f;
  f.neon = true;  // Advanced SIMD is mandatory on aarch64
#if defined(__linux__) && defined(HWCAP_ASIMDDP)
  f.neon_dotprod = (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#endif
  return f;
}
#else
CpuFeatures Detect() { return {}; }
#endif

}  // namespace

const CpuFeatures& HostCpu() {
  static const CpuFeatures features = Detect();
  return features;
}

std::string CpuFeatureList(const CpuFeatures& cpu) {
  const std::pair<bool, const char*> flags[] = {
      {cpu.avx2, "avx2"},           {cpu.fma, "fma"},
      {cpu.f16c, "f16c"},           {cpu.avx512f, "avx512f"},
      {cpu.avx512bw, "avx512bw"},   {cpu.avx512dq, "avx512dq"},
      {cpu.avx512vl, "avx512vl"},   {cpu.avx512vnni, "avx512vnni"},
      {cpu.avx512bf16, "avx512bf16"}, {cpu.amx_tile, "amx_tile"},
      {cpu.amx_int8, "amx_int8"},   {cpu.amx_bf16, "amx_bf16"},
      {cpu.neon, "neon"},           {cpu.neon_dotprod, "dotprod"}};
  std::string out;
  for (const auto& [has, name] : flags) {
    if (!has) continue;
    if (!out.empty()) out += ' ';
    out += name;
  }
  return out;
}

}  // namespace shardlm
