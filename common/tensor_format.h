// The tensor-format registry: one row per GGUF tensor type with its block
// geometry and its kernels (dequantize, quantize, dot with a quantized
// activation row). Kernels are written once per type; every type has a plain
// scalar reference, and the registry's single dispatch point picks a faster
// implementation (AVX2 ...) at run time where one exists and the CPU has it.
#ifndef SHARDLM_COMMON_TENSOR_FORMAT_H_
#define SHARDLM_COMMON_TENSOR_FORMAT_H_

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/ggml_type.h"

namespace shardlm {

// Dequantizes n elements (a multiple of the block size) from `src` to `dst`.
using DequantizeRowFn = void (*)(const void* src, float* dst, int64_t n);
// Quantizes n elements (a multiple of the block size) from `src` to `dst`.
using QuantizeRowFn = void (*)(const float* src, void* dst, int64_t n);
// Dot product of one weight row `w` (this format) with one activation row `a`
// already quantized to this format's `vec_dot_type`; n elements.
using VecDotFn = float (*)(int64_t n, const void* w, const void* a);

struct TensorFormat {
  GgmlTypeInfo info;          // name, block size, bytes per block
  DequantizeRowFn dequantize;  // always present
  QuantizeRowFn quantize;      // null where this engine cannot write the type
  VecDotFn vec_dot;            // null for activation-only formats (q8_1, q8_K)
  // The activation format vec_dot expects, as llama.cpp pairs them:
  // q4_0/q5_0/q8_0 -> q8_0, q4_1/q5_1 -> q8_1, K-quants -> q8_K,
  // f16 -> f16, bf16 -> bf16, f32 -> f32.
  GgmlType vec_dot_type;
};

enum class KernelSet {
  kReference,  // plain scalar C++, the definition of correct
  kBest,       // the fastest implementation this CPU supports
};

// The registry row for `type`; never null for a type LookupGgmlType knows.
const TensorFormat& Format(GgmlType type, KernelSet set = KernelSet::kBest);

// Name of the kernel set kBest resolved to on this CPU ("avx2", "scalar").
std::string_view BestKernelName();

}  // namespace shardlm

#endif  // SHARDLM_COMMON_TENSOR_FORMAT_H_
