// The tensor-format registry: one row per GGUF tensor type with its block
// geometry and its kernels (dequantize, quantize, dot with a quantized
// activation row). Kernels are written once per type; every type has a plain
// scalar reference, and the registry's single dispatch point picks a faster
// implementation (AVX2, AVX-512, ...) at run time where one exists and the
// CPU has it (KernelSet).
#ifndef SHARDLM_COMMON_KERNELS_TENSOR_FORMAT_H_
#define SHARDLM_COMMON_KERNELS_TENSOR_FORMAT_H_

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#include "common/kernels/quant/blocks.h"
#include "common/kernels/quant/kernels.h"
#include "common/model/ggml_type.h"

namespace shardlm {

// Dequantizes n elements (a multiple of the block size) from `src` to `dst`.
using DequantizeRowFn = void (*)(const void* src, float* dst, int64_t n);
// Quantizes n elements (a multiple of the block size) from `src` to `dst`.
using QuantizeRowFn = void (*)(const float* src, void* dst, int64_t n);
// Dot product of one weight row `w` (this format) with one activation row `a`
// already quantized to this format's `vec_dot_type`; n elements.
using VecDotFn = float (*)(int64_t n, const void* w, const void* a);
// The same for 8 weight rows `row_bytes` apart and 1..4 activation rows
// `a_stride` bytes apart: out[8 t + r] = dot(weight row r, activation t).
// `gemm`: the activation rows belong to a group of 4 that llama.cpp
// multiplies with its gemm kernel (all rows of a batch but the last
// n_tokens % 4, when n_tokens >= 4), which rounds more often for K-quants.
using VecDotX8Fn = void (*)(int64_t n, const void* w, size_t row_bytes, const void* a,
                            size_t a_stride, int n_act, float* out, bool gemm);

// vec_dot for a tile of kTileRows weight rows `row_bytes` apart and 1..
// kTileActs activation rows `a_stride` bytes apart: out[kTileRows t + r] is
// exactly vec_dot(weight row r, activation t); each block of weights and
// activations is unpacked once for the whole tile.
using quant::kTileActs;  // the tile's shape lives with the kernels
using quant::kTileRows;
using VecDotTileFn = void (*)(int64_t n, const void* w, size_t row_bytes, const void* a,
                              size_t a_stride, int n_act, float* out);

// Weights stored interleaved 8 rows per block group (a load-time layout of
// this engine: quant::BlockQ4_0x8, quant::BlockQ4_Kx8). `gemm` reads one
// group (8 rows) against n_act (1..4) activation rows `a_stride` bytes apart
// and writes out[8 t + r], equal to the bit to vec_dot_x8 on the plain rows
// with the same `gemm_order` flag; `terms` holds each activation row's
// block_terms, `terms_stride` apart (null where the type needs none).
struct InterleavedX8Kernels {
  // Bytes of one interleaved block: 8 rows x one block of elements.
  size_t block_bytes = 0;
  // 8 plain rows `row_bytes` apart, n elements each -> one interleaved group
  // (n / block size interleaved blocks) at dst.
  void (*interleave)(const void* rows, size_t row_bytes, int64_t n, void* dst) = nullptr;
  // Null, or the per-block terms of one activation row (n / block size of
  // them) that `gemm` needs (quant::ActivationBlockTerms).
  void (*block_terms)(const void* a, int64_t n, quant::ActivationBlockTerms* terms) = nullptr;
  void (*gemm)(int64_t n, const void* w, const void* a, size_t a_stride,
               const quant::ActivationBlockTerms* terms, size_t terms_stride, int n_act, float* out,
               bool gemm_order) = nullptr;
  // Null, or `gemm` over two groups at once, w and w + group_bytes (a set
  // whose registers hold 16 rows): out[16 t + r], rows 0-7 from the first
  // group and 8-15 from the second, each equal to the bit to `gemm`'s.
  void (*gemm_x16)(int64_t n, const void* w, size_t group_bytes, const void* a, size_t a_stride,
                   const quant::ActivationBlockTerms* terms, size_t terms_stride, int n_act,
                   float* out, bool gemm_order) = nullptr;
};

// Every kernel computes what llama.cpp's CPU backend (v0.4.0, x86) computes,
// float rounding for float rounding, so logits match llama.cpp's bit for bit;
// the kReference and kBest kernels of a row agree to the bit as well.
struct TensorFormat {
  GgmlTypeInfo info;           // name, block size, bytes per block
  DequantizeRowFn dequantize;  // always present
  // Weights: llama.cpp's quantize_row_*_ref (the bytes its quantizer
  // writes). Null where this engine cannot write the type.
  QuantizeRowFn quantize;
  // Activations, in the formats that are some type's vec_dot_type: what
  // llama.cpp's CPU backend quantizes a matmul input with (its from_float;
  // q8_0 / q8_1 round differently from their weight quantizers). Null for
  // f32 (used as is) and for the weight-only formats.
  QuantizeRowFn quantize_activation;
  VecDotFn vec_dot;  // null for activation-only formats (q8_1, q8_K)
  // Where llama.cpp repacks the weights into 8-row interleaved blocks (x86:
  // q4_0 and q4_K on AVX2 CPUs, q2_K on AVX-512 ones, when rows % 8 == 0) it
  // sums in another order: this kernel reproduces that for 8 rows at once.
  // Null elsewhere (vec_dot is then llama.cpp's kernel for every shape).
  VecDotX8Fn vec_dot_x8;
  // What llama.cpp computes instead of vec_dot for a batch of >= 2 activation
  // rows when its llamafile sgemm takes the matmul (f32 / f16 weights with
  // rows % 4 == 0: one 16-lane FMA chain per output). Null: vec_dot.
  VecDotFn vec_dot_batch;
  // Null, or vec_dot over a tile (the faster choice for batches and for
  // rows that vec_dot_x8 does not take).
  VecDotTileFn vec_dot_tile;
  // Null, or the kernels of this type's interleaved layout (the faster
  // choice for whole weight matrices with rows % 8 == 0).
  const InterleavedX8Kernels* interleaved_x8;
  // The activation format vec_dot expects, as llama.cpp pairs them:
  // q4_0/q5_0/q8_0 -> q8_0, q4_1/q5_1 -> q8_1, K-quants -> q8_K,
  // f16 -> f16, bf16 -> bf16, f32 -> f32.
  GgmlType vec_dot_type;
};

// Weighted sum of n rows (f32 or f16; row j's dim elements start at element
// `offset` of rows[j], so the rows may lie anywhere, e.g. in a KV cache's
// blocks), as llama.cpp sums softmax(KQ) V over the positions j:
// out[i] = sum_j p[j] rows[j][offset + i], one FMA chain per slot j % slots
// (16: its batched sgemm, 64: vec_dot's 4 x 16 accumulators), reduced in its
// order. scratch: slots * dim floats.
using MixRowsFn = void (*)(int64_t n, const float* p, const void* const* rows, int64_t offset,
                           int64_t dim, int slots, float* scratch, float* out);

// The float operations of the forward pass outside the matmuls, computed as
// llama.cpp's CPU backend computes them in the build the goldens come from
// (AVX-512: its 16-lane exp and sums); bit-exact between kernel sets.
struct ForwardKernels {
  // out[i] = silu(gate[i]) * up[i], silu(x) = x / (1 + e^-x) (ggml_vec_swiglu_f32)
  void (*swiglu)(int64_t n, const float* gate, const float* up, float* out);
  // y[i] = e^(x[i] - max); returns their sum as ggml_vec_soft_max_f32 adds it
  double (*softmax_exp)(int64_t n, const float* x, float max, float* y);
  MixRowsFn mix_rows_f32, mix_rows_f16;
  // y[i] = fma(x[i], v, y[i]) over n values: ggml_vec_mad_f32 as its flash
  // attention accumulates a dequantized V row (one FMA per value in the
  // build the goldens come from: its 16-lane loop, and the leftovers
  // contracted by the compiler).
  void (*mad_f32)(int64_t n, const float* x, float v, float* y);
};

// The kernel sets. Each is complete: a kernel a set has no faster version of
// comes from the next lower set (amx -> avx512 -> avx2 -> scalar; neon ->
// scalar). kBest is the set in use, chosen once per process: the --cpu flag
// (UseKernelSet), else $SHARDLM_CPU, else the best this CPU supports.
enum class KernelSet {
  kReference,  // "scalar": plain C++, the definition of correct
  kAvx2,       // "avx2": AVX2 + FMA + F16C
  kAvx512,     // "avx512": AVX-512F/BW/DQ/VL + VNNI (+ BF16 kernels where the CPU has it)
  kAmx,        // "amx": reserved, not implemented yet (always refused)
  kNeon,       // "neon": aarch64 NEON (+ dot product where present)
  kBest,       // the set in use (see above)
};

// The row for `type` in `set`; never null for a type LookupGgmlType knows.
// An explicit set must be runnable here (KernelSetSupported) — tests ask
// AvailableKernelSets() first.
const TensorFormat& Format(GgmlType type, KernelSet set = KernelSet::kBest);

const ForwardKernels& Forward(KernelSet set = KernelSet::kBest);

// "scalar", "avx2", "avx512", "amx", "neon"; kBest: the name of the set in use.
std::string_view KernelSetName(KernelSet set);

// The set named `name` (one of the names above), or kInvalidArgument.
absl::StatusOr<KernelSet> ParseKernelSet(std::string_view name);

// Ok if `set` is built into this binary and this CPU (and OS) can run it;
// else kFailedPrecondition naming what is missing.
absl::Status KernelSetSupported(KernelSet set);

// The sets runnable here, scalar first, ascending (never kBest).
std::vector<KernelSet> AvailableKernelSets();

// Selects the set kBest resolves to: `name` if not empty (the --cpu flag),
// else $SHARDLM_CPU if set, else the best this CPU supports. Call at startup,
// before weights are loaded; an unknown or unsupported name is an error
// (nothing changes). Without a call, the first use of kBest applies
// $SHARDLM_CPU the same way and exits with a message if it is bad.
absl::Status UseKernelSet(std::string_view name);

// Name of the set in use ("avx512", "avx2", "scalar", ...).
std::string_view BestKernelName();

// Help text for the --cpu flag of the binaries.
inline constexpr char kCpuFlagHelp[] =
    "kernel set: scalar|avx2|avx512|amx|neon (default: $SHARDLM_CPU, else the best this CPU "
    "supports; a set the CPU lacks is an error)";

}  // namespace shardlm

#endif  // SHARDLM_COMMON_KERNELS_TENSOR_FORMAT_H_
