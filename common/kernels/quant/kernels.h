// Kernel entry points, one per (type, operation, kernel set), with the
// registry's signatures (common/kernels/tensor_format.h). Only tensor_format.cc, the
// tests and the benchmarks call these by name; everyone else goes through
// Format(type).
//
// Preconditions (our own invariants, not checked in the hot path): n is a
// multiple of the type's block size; activation rows come from this engine's
// q8 quantizers, whose values lie in [-127, 127] (the SIMD dot products rely
// on |a| <= 127; weights may use the full int8 range).
#ifndef SHARDLM_COMMON_KERNELS_QUANT_KERNELS_H_
#define SHARDLM_COMMON_KERNELS_QUANT_KERNELS_H_

#include <cstddef>
#include <cstdint>

#include "common/kernels/quant/blocks.h"

namespace shardlm::quant {

// Shape of a vec_dot tile (tensor_format.h VecDotTileFn): kTileRows weight
// rows against up to kTileActs activation rows.
constexpr int kTileRows = 2, kTileActs = 4;

// The function type of each kernel family, so each list below declares many
// kernels in one line (tensor_format.h documents them: DequantizeRowFn,
// QuantizeRowFn, VecDotFn, VecDotX8Fn, VecDotTileFn, InterleavedX8Kernels::
// gemm, MixRowsFn).
using DequantizeKernel = void(const void* src, float* dst, int64_t n);
using QuantizeKernel = void(const float* src, void* dst, int64_t n);
using VecDotKernel = float(int64_t n, const void* w, const void* a);
using X8Kernel = void(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
                      int n_act, float* out, bool gemm);
using TileKernel = void(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
                        int n_act, float* out);
using InterleavedGemmKernel = void(int64_t n, const void* w, const void* a, size_t a_stride,
                                   const ActivationBlockTerms* terms, size_t terms_stride,
                                   int n_act, float* out, bool gemm);
// The same over two groups `group_bytes` apart (InterleavedX8Kernels::gemm_x16).
using InterleavedGemm16Kernel = void(int64_t n, const void* w, size_t group_bytes, const void* a,
                                     size_t a_stride, const ActivationBlockTerms* terms,
                                     size_t terms_stride, int n_act, float* out, bool gemm);
using MixRowsKernel = void(int64_t n, const float* p, const void* const* rows, int64_t offset,
                           int64_t dim, int slots, float* scratch, float* out);
// y = fma(x, v, y) (tensor_format.h ForwardKernels::mad_f32).
using MadKernel = void(int64_t n, const float* x, float v, float* y);

// Plain scalar C++: the definition of correct. Weight quantizers are ggml's
// quantize_row_*_ref; everything else computes what llama.cpp's CPU backend
// computes, in its order of float operations (common/kernels/quant/ggml_order.h),
// so the SIMD kernels below equal these to the bit.
namespace ref {

DequantizeKernel DequantizeF32, DequantizeF16, DequantizeBF16;
QuantizeKernel QuantizeF32, QuantizeF16, QuantizeBF16;
VecDotKernel VecDotF32, VecDotF16, VecDotBF16, VecDotBatchF32, VecDotBatchF16, VecDotBatchBF16;
// The forward pass's float operations (tensor_format.h ForwardKernels).
float ExpGgml(float x);
void SwiGlu(int64_t n, const float* gate, const float* up, float* out);
double SoftmaxExp(int64_t n, const float* x, float max, float* y);
MixRowsKernel MixRowsF32, MixRowsF16;
MadKernel MadF32;

// Legacy types. vec_dot's activations: q8_0 for q4_0 / q5_0 / q8_0, q8_1
// for q4_1 / q5_1.
DequantizeKernel DequantizeQ4_0, DequantizeQ4_1, DequantizeQ5_0, DequantizeQ5_1, DequantizeQ8_0,
    DequantizeQ8_1;
QuantizeKernel QuantizeQ4_0, QuantizeQ4_1, QuantizeQ5_0, QuantizeQ5_1, QuantizeQ8_0, QuantizeQ8_1;
VecDotKernel VecDotQ4_0, VecDotQ4_1, VecDotQ5_0, VecDotQ5_1, VecDotQ8_0;
// vec_dot over kTileRows x n_act (tensor_format.h VecDotTileFn).
TileKernel VecDotTileQ4_0, VecDotTileQ4_1, VecDotTileQ5_0, VecDotTileQ5_1, VecDotTileQ8_0;
QuantizeKernel QuantizeActivationQ8_0, QuantizeActivationQ8_1;
// Eight rows `row_bytes` apart against 1..4 activation rows
// (TensorFormat::vec_dot_x8).
X8Kernel VecDotX8Q4_0;
// The interleaved q4_0 layout (blocks.h BlockQ4_0x8; TensorFormat::
// interleaved_x8): 8 plain rows -> one interleaved group; the per-block
// terms of a q8_0 activation row; the 8-row product over a group.
void InterleaveQ4_0x8(const void* rows, size_t row_bytes, int64_t n, void* dst);
void BlockTermsQ8_0(const void* a, int64_t n, ActivationBlockTerms* terms);
InterleavedGemmKernel GemmQ4_0x8;

// K-quants; vec_dot's activations are q8_K.
DequantizeKernel DequantizeQ2_K, DequantizeQ3_K, DequantizeQ4_K, DequantizeQ5_K, DequantizeQ6_K,
    DequantizeQ8_K;
QuantizeKernel QuantizeQ2_K, QuantizeQ3_K, QuantizeQ4_K, QuantizeQ5_K, QuantizeQ6_K, QuantizeQ8_K;
VecDotKernel VecDotQ2_K, VecDotQ3_K, VecDotQ4_K, VecDotQ5_K, VecDotQ6_K;
// K-quants without a repacked x8 kernel in llama.cpp: vec_dot over a tile.
TileKernel VecDotTileQ3_K, VecDotTileQ5_K, VecDotTileQ6_K;
X8Kernel VecDotX8Q2_K, VecDotX8Q4_K;
// The interleaved q4_K layout (blocks.h BlockQ4_Kx8), as for q4_0 (its
// activation sums come with the q8_K blocks).
void InterleaveQ4_Kx8(const void* rows, size_t row_bytes, int64_t n, void* dst);
InterleavedGemmKernel GemmQ4_Kx8;

}  // namespace ref

// The kernels every SIMD set provides (AVX2, AVX-512, NEON): one declaration
// list, repeated in each set's namespace; a null registry slot is the
// reference's, so a set declares only what it replaces.
#define SHARDLM_SIMD_KERNEL_LIST                                                             \
  DequantizeKernel DequantizeF16, DequantizeBF16;                                            \
  QuantizeKernel QuantizeF16;                                                                \
  VecDotKernel VecDotF32, VecDotF16, VecDotBF16, VecDotBatchF32, VecDotBatchF16;             \
  VecDotKernel VecDotBatchBF16;                                                              \
  void SwiGlu(int64_t n, const float* gate, const float* up, float* out);                    \
  double SoftmaxExp(int64_t n, const float* x, float max, float* y);                         \
  MixRowsKernel MixRowsF32, MixRowsF16;                                                      \
  MadKernel MadF32;                                                                         \
  DequantizeKernel DequantizeQ4_0, DequantizeQ8_0;                                           \
  QuantizeKernel QuantizeQ8_0, QuantizeQ8_1, QuantizeActivationQ8_0, QuantizeActivationQ8_1; \
  VecDotKernel VecDotQ4_0, VecDotQ4_1, VecDotQ5_0, VecDotQ5_1, VecDotQ8_0;                   \
  TileKernel VecDotTileQ4_0, VecDotTileQ4_1, VecDotTileQ5_0, VecDotTileQ5_1, VecDotTileQ8_0; \
  X8Kernel VecDotX8Q4_0, VecDotX8Q2_K, VecDotX8Q4_K;                                         \
  InterleavedGemmKernel GemmQ4_0x8, GemmQ4_Kx8;                                              \
  QuantizeKernel QuantizeQ8_K;                                                               \
  VecDotKernel VecDotQ2_K, VecDotQ3_K, VecDotQ4_K, VecDotQ5_K, VecDotQ6_K;                   \
  TileKernel VecDotTileQ3_K, VecDotTileQ5_K, VecDotTileQ6_K;

// AVX2 + FMA + F16C (x86-64 only; SHARDLM_HAVE_AVX2_KERNELS is defined when
// they are compiled in). Call only when the CPU has all three.
namespace avx2 {
SHARDLM_SIMD_KERNEL_LIST
}  // namespace avx2

// The AVX2 kernels compiled again with AVX-512F/BW/DQ/VL + VNNI (the
// *_avx512.cc files; SHARDLM_HAVE_AVX512_KERNELS): their integer dot products
// use vpdpbusd / vpdpwssd (simd_avx2.h), the compiler gets 32 vector
// registers. Same results to the bit. Call only when the CPU has all of it.
namespace avx512 {
SHARDLM_SIMD_KERNEL_LIST
// Its own: 16 interleaved q4_0 rows (two groups) per zmm register.
InterleavedGemm16Kernel GemmQ4_0x16;
}  // namespace avx512

// bf16 with AVX-512 BF16's vdpbf16ps (bf16_avx512.cc, built with
// -mavx512bf16): the same results as the reference; the avx512 set calls
// these where the CPU has the instruction, else its FMA emulation.
namespace avx512bf16 {
VecDotKernel VecDotBF16, VecDotBatchBF16;
}  // namespace avx512bf16

}  // namespace shardlm::quant

#endif  // SHARDLM_COMMON_KERNELS_QUANT_KERNELS_H_
