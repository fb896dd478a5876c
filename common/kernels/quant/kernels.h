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

// Function types of the kernel families declared several times below
// (tensor_format.h documents them: VecDotTileFn, InterleavedX8Kernels::gemm).
using TileKernel = void(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
                        int n_act, float* out);
using InterleavedGemmKernel = void(int64_t n, const void* w, const void* a, size_t a_stride,
                                   const ActivationBlockTerms* terms, size_t terms_stride,
                                   int n_act, float* out, bool gemm);

// Plain scalar C++: the definition of correct. Weight quantizers are ggml's
// quantize_row_*_ref; everything else computes what llama.cpp's CPU backend
// computes, in its order of float operations (common/kernels/quant/ggml_order.h),
// so the SIMD kernels below equal these to the bit.
namespace ref {

void DequantizeF32(const void* src, float* dst, int64_t n);
void DequantizeF16(const void* src, float* dst, int64_t n);
void DequantizeBF16(const void* src, float* dst, int64_t n);
void QuantizeF32(const float* src, void* dst, int64_t n);
void QuantizeF16(const float* src, void* dst, int64_t n);
void QuantizeBF16(const float* src, void* dst, int64_t n);
float VecDotF32(int64_t n, const void* w, const void* a);
float VecDotF16(int64_t n, const void* w, const void* a);
float VecDotBF16(int64_t n, const void* w, const void* a);
float VecDotBatchF32(int64_t n, const void* w, const void* a);
float VecDotBatchF16(int64_t n, const void* w, const void* a);
// The forward pass's float operations (tensor_format.h ForwardKernels).
float ExpGgml(float x);
void SwiGlu(int64_t n, const float* gate, const float* up, float* out);
double SoftmaxExp(int64_t n, const float* x, float max, float* y);
void MixRowsF32(int64_t n, const float* p, const void* rows, int64_t stride, int64_t dim, int slots,
                float* scratch, float* out);
void MixRowsF16(int64_t n, const float* p, const void* rows, int64_t stride, int64_t dim, int slots,
                float* scratch, float* out);

void DequantizeQ4_0(const void* src, float* dst, int64_t n);
void DequantizeQ4_1(const void* src, float* dst, int64_t n);
void DequantizeQ5_0(const void* src, float* dst, int64_t n);
void DequantizeQ5_1(const void* src, float* dst, int64_t n);
void DequantizeQ8_0(const void* src, float* dst, int64_t n);
void DequantizeQ8_1(const void* src, float* dst, int64_t n);
void QuantizeQ4_0(const float* src, void* dst, int64_t n);
void QuantizeQ4_1(const float* src, void* dst, int64_t n);
void QuantizeQ5_0(const float* src, void* dst, int64_t n);
void QuantizeQ5_1(const float* src, void* dst, int64_t n);
void QuantizeQ8_0(const float* src, void* dst, int64_t n);
void QuantizeQ8_1(const float* src, void* dst, int64_t n);
float VecDotQ4_0(int64_t n, const void* w, const void* a);  // a: q8_0
float VecDotQ4_1(int64_t n, const void* w, const void* a);  // a: q8_1
float VecDotQ5_0(int64_t n, const void* w, const void* a);  // a: q8_0
float VecDotQ5_1(int64_t n, const void* w, const void* a);  // a: q8_1
float VecDotQ8_0(int64_t n, const void* w, const void* a);  // a: q8_0
// vec_dot over kTileRows x n_act (tensor_format.h VecDotTileFn).
TileKernel VecDotTileQ4_0, VecDotTileQ4_1, VecDotTileQ5_0, VecDotTileQ5_1, VecDotTileQ8_0;
void QuantizeActivationQ8_0(const float* src, void* dst, int64_t n);
void QuantizeActivationQ8_1(const float* src, void* dst, int64_t n);
// Eight rows `row_bytes` apart against one activation row -> out[0..7]
// (TensorFormat::vec_dot_x8).
void VecDotX8Q4_0(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
                  int n_act, float* out, bool gemm);
// The interleaved q4_0 layout (blocks.h BlockQ4_0x8; TensorFormat::
// interleaved_x8): 8 plain rows -> one interleaved group; the per-block
// terms of a q8_0 activation row; the 8-row product over a group.
void InterleaveQ4_0x8(const void* rows, size_t row_bytes, int64_t n, void* dst);
void BlockTermsQ8_0(const void* a, int64_t n, ActivationBlockTerms* terms);
InterleavedGemmKernel GemmQ4_0x8;

void DequantizeQ2_K(const void* src, float* dst, int64_t n);
void DequantizeQ3_K(const void* src, float* dst, int64_t n);
void DequantizeQ4_K(const void* src, float* dst, int64_t n);
void DequantizeQ5_K(const void* src, float* dst, int64_t n);
void DequantizeQ6_K(const void* src, float* dst, int64_t n);
void DequantizeQ8_K(const void* src, float* dst, int64_t n);
void QuantizeQ2_K(const float* src, void* dst, int64_t n);
void QuantizeQ3_K(const float* src, void* dst, int64_t n);
void QuantizeQ4_K(const float* src, void* dst, int64_t n);
void QuantizeQ5_K(const float* src, void* dst, int64_t n);
void QuantizeQ6_K(const float* src, void* dst, int64_t n);
void QuantizeQ8_K(const float* src, void* dst, int64_t n);
float VecDotQ2_K(int64_t n, const void* w, const void* a);  // a: q8_K
float VecDotQ3_K(int64_t n, const void* w, const void* a);
float VecDotQ4_K(int64_t n, const void* w, const void* a);
float VecDotQ5_K(int64_t n, const void* w, const void* a);
float VecDotQ6_K(int64_t n, const void* w, const void* a);
// K-quants without a repacked x8 kernel in llama.cpp: vec_dot over a tile.
TileKernel VecDotTileQ3_K, VecDotTileQ5_K, VecDotTileQ6_K;
void VecDotX8Q2_K(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
                  int n_act, float* out, bool gemm);
void VecDotX8Q4_K(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
                  int n_act, float* out, bool gemm);
// The interleaved q4_K layout (blocks.h BlockQ4_Kx8), as for q4_0 (its
// activation sums come with the q8_K blocks).
void InterleaveQ4_Kx8(const void* rows, size_t row_bytes, int64_t n, void* dst);
InterleavedGemmKernel GemmQ4_Kx8;

}  // namespace ref

// AVX2 + FMA + F16C (x86-64 only; SHARDLM_HAVE_AVX2_KERNELS is defined when
// they are compiled in). Call only when the CPU has all three.
namespace avx2 {

void DequantizeF16(const void* src, float* dst, int64_t n);
void DequantizeBF16(const void* src, float* dst, int64_t n);
void QuantizeF16(const float* src, void* dst, int64_t n);
float VecDotF32(int64_t n, const void* w, const void* a);
float VecDotF16(int64_t n, const void* w, const void* a);
float VecDotBF16(int64_t n, const void* w, const void* a);
float VecDotBatchF32(int64_t n, const void* w, const void* a);
float VecDotBatchF16(int64_t n, const void* w, const void* a);
void SwiGlu(int64_t n, const float* gate, const float* up, float* out);
double SoftmaxExp(int64_t n, const float* x, float max, float* y);
void MixRowsF32(int64_t n, const float* p, const void* rows, int64_t stride, int64_t dim, int slots,
                float* scratch, float* out);
void MixRowsF16(int64_t n, const float* p, const void* rows, int64_t stride, int64_t dim, int slots,
                float* scratch, float* out);

void DequantizeQ4_0(const void* src, float* dst, int64_t n);
void DequantizeQ8_0(const void* src, float* dst, int64_t n);
void QuantizeQ8_0(const float* src, void* dst, int64_t n);
void QuantizeQ8_1(const float* src, void* dst, int64_t n);
float VecDotQ4_0(int64_t n, const void* w, const void* a);
float VecDotQ4_1(int64_t n, const void* w, const void* a);
float VecDotQ5_0(int64_t n, const void* w, const void* a);
float VecDotQ5_1(int64_t n, const void* w, const void* a);
float VecDotQ8_0(int64_t n, const void* w, const void* a);
TileKernel VecDotTileQ4_0, VecDotTileQ4_1, VecDotTileQ5_0, VecDotTileQ5_1, VecDotTileQ8_0;
void QuantizeActivationQ8_0(const float* src, void* dst, int64_t n);
void QuantizeActivationQ8_1(const float* src, void* dst, int64_t n);
void VecDotX8Q4_0(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
                  int n_act, float* out, bool gemm);
InterleavedGemmKernel GemmQ4_0x8;

void QuantizeQ8_K(const float* src, void* dst, int64_t n);
float VecDotQ2_K(int64_t n, const void* w, const void* a);
float VecDotQ3_K(int64_t n, const void* w, const void* a);
float VecDotQ4_K(int64_t n, const void* w, const void* a);
float VecDotQ5_K(int64_t n, const void* w, const void* a);
float VecDotQ6_K(int64_t n, const void* w, const void* a);
TileKernel VecDotTileQ3_K, VecDotTileQ5_K, VecDotTileQ6_K;
void VecDotX8Q2_K(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
                  int n_act, float* out, bool gemm);
void VecDotX8Q4_K(int64_t n, const void* w, size_t row_bytes, const void* a, size_t a_stride,
                  int n_act, float* out, bool gemm);
InterleavedGemmKernel GemmQ4_Kx8;

}  // namespace avx2

}  // namespace shardlm::quant

#endif  // SHARDLM_COMMON_KERNELS_QUANT_KERNELS_H_
