// bf16 dot products with AVX-512 BF16's vdpbf16ps, written as llama.cpp's
// AVX512_BF16 build (its zen4 variant) writes them, so they equal the
// reference (float_formats.cc DotBF16Zen4 / DotBatchBF16Zen4, which spell
// out the instruction's order) to the bit. Compiled with -mavx512bf16;
// called only where the CPU has it (float_avx2.cc, the avx512 build).
#include <immintrin.h>

#include <cstdint>

#include "common/kernels/quant/kernels.h"

#if !defined(__AVX512BF16__)
#error "bf16_avx512.cc needs -mavx512f -mavx512bf16"
#endif

namespace shardlm::quant::avx512bf16 {
namespace {

// Fetch ahead: without it, rows streamed from DRAM ran ~1.25x slower than
// the FMA emulation (shardlm_kernels_bench vec_dot/bf16, 16384 rows; likely
// the two dependent accumulator chains keep too few loads in flight, and
// 64-byte loads of rows not 64-byte aligned split across lines).
constexpr int kPrefetchBytes = 1024;

inline __m512bh Load32(const uint16_t* p) {
  return reinterpret_cast<__m512bh>(_mm512_loadu_si512(p));
}

float BF16ToFloat(uint16_t h) {
  const uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  __builtin_memcpy(&f, &bits, sizeof(f));
  return f;
}

}  // namespace

// ggml_vec_dot_bf16: two accumulators over 64-element steps, each reduced by
// _mm512_reduce_add_ps and added in double; the tail's float products in double.
float VecDotBF16(int64_t n, const void* w, const void* a) {
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const uint16_t*>(a);
  __m512 c1 = _mm512_setzero_ps(), c2 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    _mm_prefetch(reinterpret_cast<const char*>(x + i) + kPrefetchBytes, _MM_HINT_T0);
    _mm_prefetch(reinterpret_cast<const char*>(x + i) + kPrefetchBytes + 64, _MM_HINT_T0);
    c1 = _mm512_dpbf16_ps(c1, Load32(x + i), Load32(y + i));
    c2 = _mm512_dpbf16_ps(c2, Load32(x + i + 32), Load32(y + i + 32));
  }
  double sum = 0;
  sum += static_cast<double>(_mm512_reduce_add_ps(c1));
  sum += static_cast<double>(_mm512_reduce_add_ps(c2));
  for (; i < n; ++i) sum += static_cast<double>(BF16ToFloat(x[i]) * BF16ToFloat(y[i]));
  return static_cast<float>(sum);
}

// tinyBLAS<32, __m512, __m512bh> for one output: one chain over 32-element
// steps (n % 32 == 0, else ggml takes vec_dot).
float VecDotBatchBF16(int64_t n, const void* w, const void* a) {
  if (n % 32 != 0) return VecDotBF16(n, w, a);
  const auto* x = static_cast<const uint16_t*>(w);
  const auto* y = static_cast<const uint16_t*>(a);
  __m512 c = _mm512_setzero_ps();
  for (int64_t i = 0; i < n; i += 32) c = _mm512_dpbf16_ps(c, Load32(x + i), Load32(y + i));
  return _mm512_reduce_add_ps(c);
}

}  // namespace shardlm::quant::avx512bf16
