// The tensor-format registry: one row per type with its reference kernels
// and, per kernel set (AVX2, AVX-512, ...), the faster kernels that replace
// them. This file is the single dispatch point: the set is chosen once, and
// everything else calls through Format(type).
#include "common/kernels/tensor_format.h"

#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "common/kernels/cpu_features.h"
#include "common/kernels/quant/blocks.h"
#include "common/kernels/quant/kernels.h"
#if defined(SHARDLM_HAVE_NEON_KERNELS)
#include "common/kernels/quant/kernels_neon.h"
#endif

namespace shardlm {
namespace {

namespace ref = quant::ref;

// A kernel of a set, or null where the set is not compiled into this binary.
#if defined(SHARDLM_HAVE_AVX2_KERNELS)
#define SHARDLM_AVX2(fn) &quant::avx2::fn
#else
#define SHARDLM_AVX2(fn) nullptr
#endif
#if defined(SHARDLM_HAVE_AVX512_KERNELS)
#define SHARDLM_AVX512(fn) &quant::avx512::fn
#else
#define SHARDLM_AVX512(fn) nullptr
#endif
#if defined(SHARDLM_HAVE_NEON_KERNELS)
#define SHARDLM_NEON(fn) &quant::neon::fn
#else
#define SHARDLM_NEON(fn) nullptr
#endif

// One kernel set's functions for a type (TensorFormat documents each). In
// the reference set null means the type has no such kernel; in the others
// it means "keep the next lower set's one" (FallbackOf).
struct Kernels {
  DequantizeRowFn dequantize = nullptr;
  QuantizeRowFn quantize = nullptr;
  QuantizeRowFn quantize_activation = nullptr;
  VecDotFn vec_dot = nullptr;
  VecDotX8Fn vec_dot_x8 = nullptr;
  VecDotFn vec_dot_batch = nullptr;
  VecDotTileFn vec_dot_tile = nullptr;
};

struct KernelRow {
  GgmlType type;
  GgmlType vec_dot_type;  // paired as llama.cpp does (TensorFormat::vec_dot_type)
  Kernels reference = {};
  Kernels avx2 = {};    // AVX2 + FMA + F16C
  Kernels avx512 = {};  // AVX-512F/BW/DQ/VL + VNNI
  Kernels amx = {};     // reserved
  Kernels neon = {};    // aarch64 NEON
};

using T = GgmlType;
constexpr KernelRow kRows[] = {
    {.type = T::kF32,
     .vec_dot_type = T::kF32,
     .reference = {.dequantize = ref::DequantizeF32,
                   .quantize = ref::QuantizeF32,
                   .vec_dot = ref::VecDotF32,
                   .vec_dot_batch = ref::VecDotBatchF32},
     .avx2 = {.vec_dot = SHARDLM_AVX2(VecDotF32), .vec_dot_batch = SHARDLM_AVX2(VecDotBatchF32)},
     .avx512 = {.vec_dot = SHARDLM_AVX512(VecDotF32), .vec_dot_batch = SHARDLM_AVX512(VecDotBatchF32)},
     .neon = {.vec_dot = SHARDLM_NEON(VecDotF32), .vec_dot_batch = SHARDLM_NEON(VecDotBatchF32)}},
    {.type = T::kF16,
     .vec_dot_type = T::kF16,
     .reference = {.dequantize = ref::DequantizeF16,
                   .quantize = ref::QuantizeF16,
                   .quantize_activation = ref::QuantizeF16,
                   .vec_dot = ref::VecDotF16,
                   .vec_dot_batch = ref::VecDotBatchF16},
     .avx2 = {.dequantize = SHARDLM_AVX2(DequantizeF16),
              .quantize = SHARDLM_AVX2(QuantizeF16),
              .quantize_activation = SHARDLM_AVX2(QuantizeF16),
              .vec_dot = SHARDLM_AVX2(VecDotF16),
              .vec_dot_batch = SHARDLM_AVX2(VecDotBatchF16)},
     .avx512 = {.dequantize = SHARDLM_AVX512(DequantizeF16),
                .quantize = SHARDLM_AVX512(QuantizeF16),
                .quantize_activation = SHARDLM_AVX512(QuantizeF16),
                .vec_dot = SHARDLM_AVX512(VecDotF16),
                .vec_dot_batch = SHARDLM_AVX512(VecDotBatchF16)},
     .neon = {.dequantize = SHARDLM_NEON(DequantizeF16),
              .quantize = SHARDLM_NEON(QuantizeF16),
              .quantize_activation = SHARDLM_NEON(QuantizeF16),
              .vec_dot = SHARDLM_NEON(VecDotF16),
              .vec_dot_batch = SHARDLM_NEON(VecDotBatchF16)}},
    {.type = T::kBF16,
     .vec_dot_type = T::kBF16,
     .reference = {.dequantize = ref::DequantizeBF16,
                   .quantize = ref::QuantizeBF16,
                   .quantize_activation = ref::QuantizeBF16,
                   .vec_dot = ref::VecDotBF16,
                   .vec_dot_batch = ref::VecDotBatchBF16},
     .avx2 = {.dequantize = SHARDLM_AVX2(DequantizeBF16),
              .vec_dot = SHARDLM_AVX2(VecDotBF16),
              .vec_dot_batch = SHARDLM_AVX2(VecDotBatchBF16)},
     .avx512 = {.dequantize = SHARDLM_AVX512(DequantizeBF16),
                .vec_dot = SHARDLM_AVX512(VecDotBF16),
                .vec_dot_batch = SHARDLM_AVX512(VecDotBatchBF16)},
     .neon = {.dequantize = SHARDLM_NEON(DequantizeBF16), .vec_dot = SHARDLM_NEON(VecDotBF16)}},
    {.type = T::kQ4_0,
     .vec_dot_type = T::kQ8_0,
     .reference = {.dequantize = ref::DequantizeQ4_0,
                   .quantize = ref::QuantizeQ4_0,
                   .vec_dot = ref::VecDotQ4_0,
                   .vec_dot_x8 = ref::VecDotX8Q4_0,
                   .vec_dot_tile = ref::VecDotTileQ4_0},
     .avx2 = {.dequantize = SHARDLM_AVX2(DequantizeQ4_0),
              .vec_dot = SHARDLM_AVX2(VecDotQ4_0),
              .vec_dot_x8 = SHARDLM_AVX2(VecDotX8Q4_0),
              .vec_dot_tile = SHARDLM_AVX2(VecDotTileQ4_0)},
     .avx512 = {.dequantize = SHARDLM_AVX512(DequantizeQ4_0),
                .vec_dot = SHARDLM_AVX512(VecDotQ4_0),
                .vec_dot_x8 = SHARDLM_AVX512(VecDotX8Q4_0),
                .vec_dot_tile = SHARDLM_AVX512(VecDotTileQ4_0)},
     .neon = {.dequantize = SHARDLM_NEON(DequantizeQ4_0),
              .vec_dot = SHARDLM_NEON(VecDotQ4_0),
              .vec_dot_x8 = SHARDLM_NEON(VecDotX8Q4_0),
              .vec_dot_tile = SHARDLM_NEON(VecDotTileQ4_0)}},
    {.type = T::kQ4_1,
     .vec_dot_type = T::kQ8_1,
     .reference = {.dequantize = ref::DequantizeQ4_1,
                   .quantize = ref::QuantizeQ4_1,
                   .vec_dot = ref::VecDotQ4_1,
                   .vec_dot_tile = ref::VecDotTileQ4_1},
     .avx2 = {.vec_dot = SHARDLM_AVX2(VecDotQ4_1), .vec_dot_tile = SHARDLM_AVX2(VecDotTileQ4_1)},
     .avx512 = {.vec_dot = SHARDLM_AVX512(VecDotQ4_1), .vec_dot_tile = SHARDLM_AVX512(VecDotTileQ4_1)},
     .neon = {.vec_dot = SHARDLM_NEON(VecDotQ4_1), .vec_dot_tile = SHARDLM_NEON(VecDotTileQ4_1)}},
    {.type = T::kQ5_0,
     .vec_dot_type = T::kQ8_0,
     .reference = {.dequantize = ref::DequantizeQ5_0,
                   .quantize = ref::QuantizeQ5_0,
                   .vec_dot = ref::VecDotQ5_0,
                   .vec_dot_tile = ref::VecDotTileQ5_0},
     .avx2 = {.vec_dot = SHARDLM_AVX2(VecDotQ5_0), .vec_dot_tile = SHARDLM_AVX2(VecDotTileQ5_0)},
     .avx512 = {.vec_dot = SHARDLM_AVX512(VecDotQ5_0), .vec_dot_tile = SHARDLM_AVX512(VecDotTileQ5_0)},
     .neon = {.vec_dot = SHARDLM_NEON(VecDotQ5_0), .vec_dot_tile = SHARDLM_NEON(VecDotTileQ5_0)}},
    {.type = T::kQ5_1,
     .vec_dot_type = T::kQ8_1,
     .reference = {.dequantize = ref::DequantizeQ5_1,
                   .quantize = ref::QuantizeQ5_1,
                   .vec_dot = ref::VecDotQ5_1,
                   .vec_dot_tile = ref::VecDotTileQ5_1},
     .avx2 = {.vec_dot = SHARDLM_AVX2(VecDotQ5_1), .vec_dot_tile = SHARDLM_AVX2(VecDotTileQ5_1)},
     .avx512 = {.vec_dot = SHARDLM_AVX512(VecDotQ5_1), .vec_dot_tile = SHARDLM_AVX512(VecDotTileQ5_1)},
     .neon = {.vec_dot = SHARDLM_NEON(VecDotQ5_1), .vec_dot_tile = SHARDLM_NEON(VecDotTileQ5_1)}},
    {.type = T::kQ8_0,
     .vec_dot_type = T::kQ8_0,
     .reference = {.dequantize = ref::DequantizeQ8_0,
                   .quantize = ref::QuantizeQ8_0,
                   .quantize_activation = ref::QuantizeActivationQ8_0,
                   .vec_dot = ref::VecDotQ8_0,
                   .vec_dot_tile = ref::VecDotTileQ8_0},
     .avx2 = {.dequantize = SHARDLM_AVX2(DequantizeQ8_0),
              .quantize = SHARDLM_AVX2(QuantizeQ8_0),
              .quantize_activation = SHARDLM_AVX2(QuantizeActivationQ8_0),
              .vec_dot = SHARDLM_AVX2(VecDotQ8_0),
              .vec_dot_tile = SHARDLM_AVX2(VecDotTileQ8_0)},
     .avx512 = {.dequantize = SHARDLM_AVX512(DequantizeQ8_0),
                .quantize = SHARDLM_AVX512(QuantizeQ8_0),
                .quantize_activation = SHARDLM_AVX512(QuantizeActivationQ8_0),
                .vec_dot = SHARDLM_AVX512(VecDotQ8_0),
                .vec_dot_tile = SHARDLM_AVX512(VecDotTileQ8_0)},
     .neon = {.dequantize = SHARDLM_NEON(DequantizeQ8_0),
              .quantize = SHARDLM_NEON(QuantizeQ8_0),
              .quantize_activation = SHARDLM_NEON(QuantizeActivationQ8_0),
              .vec_dot = SHARDLM_NEON(VecDotQ8_0),
              .vec_dot_tile = SHARDLM_NEON(VecDotTileQ8_0)}},
    {.type = T::kQ8_1,  // activations only: no vec_dot
     .vec_dot_type = T::kQ8_1,
     .reference = {.dequantize = ref::DequantizeQ8_1,
                   .quantize = ref::QuantizeQ8_1,
                   .quantize_activation = ref::QuantizeActivationQ8_1},
     .avx2 = {.quantize = SHARDLM_AVX2(QuantizeQ8_1),
              .quantize_activation = SHARDLM_AVX2(QuantizeActivationQ8_1)},
     .avx512 = {.quantize = SHARDLM_AVX512(QuantizeQ8_1),
                .quantize_activation = SHARDLM_AVX512(QuantizeActivationQ8_1)},
     .neon = {.quantize = SHARDLM_NEON(QuantizeQ8_1),
              .quantize_activation = SHARDLM_NEON(QuantizeActivationQ8_1)}},
    {.type = T::kQ2_K,
     .vec_dot_type = T::kQ8_K,
     .reference = {.dequantize = ref::DequantizeQ2_K,
                   .quantize = ref::QuantizeQ2_K,
                   .vec_dot = ref::VecDotQ2_K,
                   .vec_dot_x8 = ref::VecDotX8Q2_K},
     .avx2 = {.vec_dot = SHARDLM_AVX2(VecDotQ2_K), .vec_dot_x8 = SHARDLM_AVX2(VecDotX8Q2_K)},
     .avx512 = {.vec_dot = SHARDLM_AVX512(VecDotQ2_K), .vec_dot_x8 = SHARDLM_AVX512(VecDotX8Q2_K)},
     .neon = {.vec_dot = SHARDLM_NEON(VecDotQ2_K), .vec_dot_x8 = SHARDLM_NEON(VecDotX8Q2_K)}},
    {.type = T::kQ3_K,
     .vec_dot_type = T::kQ8_K,
     .reference = {.dequantize = ref::DequantizeQ3_K,
                   .quantize = ref::QuantizeQ3_K,
                   .vec_dot = ref::VecDotQ3_K,
                   .vec_dot_tile = ref::VecDotTileQ3_K},
     .avx2 = {.vec_dot = SHARDLM_AVX2(VecDotQ3_K), .vec_dot_tile = SHARDLM_AVX2(VecDotTileQ3_K)},
     .avx512 = {.vec_dot = SHARDLM_AVX512(VecDotQ3_K), .vec_dot_tile = SHARDLM_AVX512(VecDotTileQ3_K)},
     .neon = {.vec_dot = SHARDLM_NEON(VecDotQ3_K), .vec_dot_tile = SHARDLM_NEON(VecDotTileQ3_K)}},
    {.type = T::kQ4_K,
     .vec_dot_type = T::kQ8_K,
     .reference = {.dequantize = ref::DequantizeQ4_K,
                   .quantize = ref::QuantizeQ4_K,
                   .vec_dot = ref::VecDotQ4_K,
                   .vec_dot_x8 = ref::VecDotX8Q4_K},
     .avx2 = {.vec_dot = SHARDLM_AVX2(VecDotQ4_K), .vec_dot_x8 = SHARDLM_AVX2(VecDotX8Q4_K)},
     .avx512 = {.vec_dot = SHARDLM_AVX512(VecDotQ4_K), .vec_dot_x8 = SHARDLM_AVX512(VecDotX8Q4_K)},
     .neon = {.vec_dot = SHARDLM_NEON(VecDotQ4_K), .vec_dot_x8 = SHARDLM_NEON(VecDotX8Q4_K)}},
    {.type = T::kQ5_K,
     .vec_dot_type = T::kQ8_K,
     .reference = {.dequantize = ref::DequantizeQ5_K,
                   .quantize = ref::QuantizeQ5_K,
                   .vec_dot = ref::VecDotQ5_K,
                   .vec_dot_tile = ref::VecDotTileQ5_K},
     .avx2 = {.vec_dot = SHARDLM_AVX2(VecDotQ5_K), .vec_dot_tile = SHARDLM_AVX2(VecDotTileQ5_K)},
     .avx512 = {.vec_dot = SHARDLM_AVX512(VecDotQ5_K), .vec_dot_tile = SHARDLM_AVX512(VecDotTileQ5_K)},
     .neon = {.vec_dot = SHARDLM_NEON(VecDotQ5_K), .vec_dot_tile = SHARDLM_NEON(VecDotTileQ5_K)}},
    {.type = T::kQ6_K,
     .vec_dot_type = T::kQ8_K,
     .reference = {.dequantize = ref::DequantizeQ6_K,
                   .quantize = ref::QuantizeQ6_K,
                   .vec_dot = ref::VecDotQ6_K,
                   .vec_dot_tile = ref::VecDotTileQ6_K},
     .avx2 = {.vec_dot = SHARDLM_AVX2(VecDotQ6_K), .vec_dot_tile = SHARDLM_AVX2(VecDotTileQ6_K)},
     .avx512 = {.vec_dot = SHARDLM_AVX512(VecDotQ6_K), .vec_dot_tile = SHARDLM_AVX512(VecDotTileQ6_K)},
     .neon = {.vec_dot = SHARDLM_NEON(VecDotQ6_K), .vec_dot_tile = SHARDLM_NEON(VecDotTileQ6_K)}},
    {.type = T::kQ8_K,  // activations only: no vec_dot
     .vec_dot_type = T::kQ8_K,
     .reference = {.dequantize = ref::DequantizeQ8_K,
                   .quantize = ref::QuantizeQ8_K,
                   .quantize_activation = ref::QuantizeQ8_K},
     .avx2 = {.quantize = SHARDLM_AVX2(QuantizeQ8_K),
              .quantize_activation = SHARDLM_AVX2(QuantizeQ8_K)},
     .avx512 = {.quantize = SHARDLM_AVX512(QuantizeQ8_K),
                .quantize_activation = SHARDLM_AVX512(QuantizeQ8_K)},
     .neon = {.quantize = SHARDLM_NEON(QuantizeQ8_K),
              .quantize_activation = SHARDLM_NEON(QuantizeQ8_K)}},
};

// Interleaved layouts: the reference kernels, and each set's product (null:
// the next lower set's).
struct InterleavedRow {
  GgmlType type;
  InterleavedX8Kernels reference;
  decltype(InterleavedX8Kernels::gemm) gemm_avx2 = nullptr, gemm_avx512 = nullptr,
                                       gemm_amx = nullptr, gemm_neon = nullptr;
  // The 16-row product: avx512's own (amx takes it; other sets have none).
  decltype(InterleavedX8Kernels::gemm_x16) gemm_x16_avx512 = nullptr;
};
constexpr InterleavedRow kInterleavedRows[] = {
    {.type = T::kQ4_0,
     .reference = {.block_bytes = sizeof(quant::BlockQ4_0x8),
                   .interleave = ref::InterleaveQ4_0x8,
                   .block_terms = ref::BlockTermsQ8_0,
                   .gemm = ref::GemmQ4_0x8},
     .gemm_avx2 = SHARDLM_AVX2(GemmQ4_0x8),
     .gemm_avx512 = SHARDLM_AVX512(GemmQ4_0x8),
     .gemm_neon = SHARDLM_NEON(GemmQ4_0x8),
     .gemm_x16_avx512 = SHARDLM_AVX512(GemmQ4_0x16)},
    {.type = T::kQ4_K,
     .reference = {.block_bytes = sizeof(quant::BlockQ4_Kx8),
                   .interleave = ref::InterleaveQ4_Kx8,
                   .gemm = ref::GemmQ4_Kx8},  // its activation sums come with the q8_K blocks
     .gemm_avx2 = SHARDLM_AVX2(GemmQ4_Kx8),
     .gemm_avx512 = SHARDLM_AVX512(GemmQ4_Kx8),
     .gemm_neon = SHARDLM_NEON(GemmQ4_Kx8)},
};

// The forward pass's float kernels per set (null members: the lower set's).
constexpr ForwardKernels kForwardReference = {ref::SwiGlu, ref::SoftmaxExp, ref::MixRowsF32,
                                              ref::MixRowsF16, ref::MadF32};
#if defined(SHARDLM_HAVE_AVX2_KERNELS)
constexpr ForwardKernels kForwardAvx2 = {quant::avx2::SwiGlu, quant::avx2::SoftmaxExp,
                                         quant::avx2::MixRowsF32, quant::avx2::MixRowsF16,
                                         quant::avx2::MadF32};
#else
constexpr ForwardKernels kForwardAvx2 = {};
#endif
#if defined(SHARDLM_HAVE_AVX512_KERNELS)
constexpr ForwardKernels kForwardAvx512 = {quant::avx512::SwiGlu, quant::avx512::SoftmaxExp,
                                           quant::avx512::MixRowsF32, quant::avx512::MixRowsF16,
                                           quant::avx512::MadF32};
#else
constexpr ForwardKernels kForwardAvx512 = {};
#endif
constexpr ForwardKernels kForwardNeon = {SHARDLM_NEON(SwiGlu), SHARDLM_NEON(SoftmaxExp),
                                         SHARDLM_NEON(MixRowsF32), SHARDLM_NEON(MixRowsF16),
                                         nullptr};  // mad_f32: the reference's
constexpr ForwardKernels kForwardNone = {};
#undef SHARDLM_AVX2
#undef SHARDLM_AVX512
#undef SHARDLM_NEON

constexpr size_t kNumRows = sizeof(kRows) / sizeof(kRows[0]);
constexpr size_t kMaxTypeId = 31;  // GgmlType values are < 31

// The concrete sets (kBest excluded), ascending: the order AvailableKernelSets
// reports and the registry's table index.
constexpr KernelSet kConcreteSets[] = {KernelSet::kReference, KernelSet::kAvx2,
                                       KernelSet::kAvx512, KernelSet::kAmx, KernelSet::kNeon};
constexpr size_t kNumSets = std::size(kConcreteSets);

constexpr size_t SetIndex(KernelSet set) { return static_cast<size_t>(set); }

// Where a set's null slots come from.
KernelSet FallbackOf(KernelSet set) {
  switch (set) {
    case KernelSet::kAmx: return KernelSet::kAvx512;
    case KernelSet::kAvx512: return KernelSet::kAvx2;
    default: return KernelSet::kReference;
  }
}

const Kernels& Column(const KernelRow& r, KernelSet set) {
  switch (set) {
    case KernelSet::kAvx2: return r.avx2;
    case KernelSet::kAvx512: return r.avx512;
    case KernelSet::kAmx: return r.amx;
    case KernelSet::kNeon: return r.neon;
    default: return r.reference;
  }
}

decltype(InterleavedX8Kernels::gemm) GemmColumn(const InterleavedRow& r, KernelSet set) {
  switch (set) {
    case KernelSet::kAvx2: return r.gemm_avx2;
    case KernelSet::kAvx512: return r.gemm_avx512;
    case KernelSet::kAmx: return r.gemm_amx;
    case KernelSet::kNeon: return r.gemm_neon;
    default: return r.reference.gemm;
  }
}

const ForwardKernels& ForwardColumn(KernelSet set) {
  switch (set) {
    case KernelSet::kReference: return kForwardReference;
    case KernelSet::kAvx2: return kForwardAvx2;
    case KernelSet::kAvx512: return kForwardAvx512;
    case KernelSet::kNeon: return kForwardNeon;
    default: return kForwardNone;
  }
}

bool SetBuilt(KernelSet set) {
  switch (set) {
    case KernelSet::kReference: return true;
#if defined(SHARDLM_HAVE_AVX2_KERNELS)
    case KernelSet::kAvx2: return true;
#endif
#if defined(SHARDLM_HAVE_AVX512_KERNELS)
    case KernelSet::kAvx512: return true;
#endif
#if defined(SHARDLM_HAVE_NEON_KERNELS)
    case KernelSet::kNeon: return true;
#endif
    default: return false;
  }
}

// Ok, or what keeps `set` from running here.
absl::Status CheckSupported(KernelSet set) {
  const CpuFeatures& cpu = HostCpu();
  const std::string name(KernelSetName(set));
  if (set == KernelSet::kAmx) {
    return absl::FailedPreconditionError(absl::StrCat(
        "kernel set amx is not implemented yet",
        cpu.amx_int8 ? "" : " (and this CPU has no AMX-INT8 tiles)", "; use avx512 or avx2"));
  }
  if (!SetBuilt(set)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "kernel set ", name, " is not built into this binary (",
        set == KernelSet::kNeon ? "aarch64 builds only" : "x86-64 builds only", ")"));
  }
  std::string missing;
  auto need = [&missing](bool has, const char* feature) {
    if (!has) absl::StrAppend(&missing, missing.empty() ? "" : ", ", feature);
  };
  switch (set) {
    case KernelSet::kAvx2:
      need(cpu.avx2, "avx2");
      need(cpu.fma, "fma");
      need(cpu.f16c, "f16c");
      break;
    case KernelSet::kAvx512:
      need(cpu.avx2 && cpu.fma && cpu.f16c, "avx2+fma+f16c");
      need(cpu.avx512f, "avx512f");
      need(cpu.avx512bw, "avx512bw");
      need(cpu.avx512dq, "avx512dq");
      need(cpu.avx512vl, "avx512vl");
      need(cpu.avx512vnni, "avx512vnni");
      break;
    case KernelSet::kNeon:
      need(cpu.neon, "neon");
      break;
    default:
      break;
  }
  if (missing.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "kernel set ", name, " needs CPU features this machine (or its OS) lacks: ", missing,
      "; available: ", [] {
        std::string sets;
        for (KernelSet s : AvailableKernelSets())
          absl::StrAppend(&sets, sets.empty() ? "" : " ", std::string(KernelSetName(s)));
        return sets;
      }()));
}

// `fast` with each null slot taken from `lower`.
Kernels Prefer(Kernels fast, const Kernels& lower) {
  auto fill = [](auto& slot, auto fallback) {
    if (slot == nullptr) slot = fallback;
  };
  fill(fast.dequantize, lower.dequantize);
  fill(fast.quantize, lower.quantize);
  fill(fast.quantize_activation, lower.quantize_activation);
  fill(fast.vec_dot, lower.vec_dot);
  fill(fast.vec_dot_x8, lower.vec_dot_x8);
  fill(fast.vec_dot_batch, lower.vec_dot_batch);
  fill(fast.vec_dot_tile, lower.vec_dot_tile);
  return fast;
}

ForwardKernels PreferForward(ForwardKernels fast, const ForwardKernels& lower) {
  if (fast.swiglu == nullptr) fast.swiglu = lower.swiglu;
  if (fast.softmax_exp == nullptr) fast.softmax_exp = lower.softmax_exp;
  if (fast.mix_rows_f32 == nullptr) fast.mix_rows_f32 = lower.mix_rows_f32;
  if (fast.mix_rows_f16 == nullptr) fast.mix_rows_f16 = lower.mix_rows_f16;
  if (fast.mad_f32 == nullptr) fast.mad_f32 = lower.mad_f32;
  return fast;
}

TensorFormat MakeFormat(const KernelRow& r, const Kernels& k) {
  return {.info = TypeInfo(r.type),
          .dequantize = k.dequantize,
          .quantize = k.quantize,
          .quantize_activation = k.quantize_activation,
          .vec_dot = k.vec_dot,
          .vec_dot_x8 = k.vec_dot_x8,
          .vec_dot_batch = k.vec_dot_batch,
          .vec_dot_tile = k.vec_dot_tile,
          .interleaved_x8 = nullptr,  // set from kInterleavedRows
          .vec_dot_type = r.vec_dot_type};
}

// Every set's full table (a set this CPU cannot run is built too, never
// handed out), and the set kBest stands for.
class Registry {
 public:
  Registry() {
    index_.fill(-1);
    for (size_t i = 0; i < kNumRows; ++i) {
      const auto id = static_cast<size_t>(kRows[i].type);
      SHARDLM_CHECK(id < kMaxTypeId && index_[id] == -1);
      index_[id] = static_cast<int>(i);
    }
    // Ascending, so each set's fallback is complete before the set.
    for (KernelSet set : kConcreteSets) {
      const size_t s = SetIndex(set), lower = SetIndex(FallbackOf(set));
      for (size_t i = 0; i < kNumRows; ++i) {
        const Kernels& column = Column(kRows[i], set);
        kernels_[s][i] = set == KernelSet::kReference ? column : Prefer(column, kernels_[lower][i]);
        formats_[s][i] = MakeFormat(kRows[i], kernels_[s][i]);
      }
      for (size_t j = 0; j < std::size(kInterleavedRows); ++j) {
        const InterleavedRow& r = kInterleavedRows[j];
        interleaved_[s][j] = r.reference;
        if (set != KernelSet::kReference) {
          auto gemm = GemmColumn(r, set);
          interleaved_[s][j].gemm = gemm != nullptr ? gemm : interleaved_[lower][j].gemm;
          interleaved_[s][j].gemm_x16 = set == KernelSet::kAvx512 && r.gemm_x16_avx512 != nullptr
                                            ? r.gemm_x16_avx512
                                            : interleaved_[lower][j].gemm_x16;
        }
        const int i = index_[static_cast<size_t>(r.type)];
        SHARDLM_CHECK(i >= 0);
        formats_[s][i].interleaved_x8 = &interleaved_[s][j];
      }
      forward_[s] = set == KernelSet::kReference
                        ? kForwardReference
                        : PreferForward(ForwardColumn(set), forward_[lower]);
      supported_[s] = CheckSupported(set).ok();
    }
  }

  const TensorFormat& Get(GgmlType type, KernelSet set) const {
    const auto id = static_cast<size_t>(type);
    SHARDLM_CHECK(id < kMaxTypeId && index_[id] >= 0);  // an impossible enum value is our bug
    return formats_[Resolve(set)][index_[id]];
  }

  const ForwardKernels& forward(KernelSet set) const { return forward_[Resolve(set)]; }

  bool supported(KernelSet set) const { return supported_[SetIndex(set)]; }

  KernelSet active() const { return active_.load(std::memory_order_acquire); }
  void set_active(KernelSet set) { active_.store(set, std::memory_order_release); }

 private:
  size_t Resolve(KernelSet set) const {
    if (set == KernelSet::kBest) set = active();
    const size_t s = SetIndex(set);
    SHARDLM_CHECK(s < kNumSets && supported_[s]);  // tests ask AvailableKernelSets first
    return s;
  }

  std::array<int, kMaxTypeId> index_;
  std::array<std::array<Kernels, kNumRows>, kNumSets> kernels_;
  std::array<std::array<TensorFormat, kNumRows>, kNumSets> formats_;
  std::array<std::array<InterleavedX8Kernels, std::size(kInterleavedRows)>, kNumSets> interleaved_;
  std::array<ForwardKernels, kNumSets> forward_;
  std::array<bool, kNumSets> supported_{};
  std::atomic<KernelSet> active_{KernelSet::kReference};
};

// The registry, with kBest at the best set this CPU runs.
Registry& GetRegistry() {
  static Registry* const registry = [] {
    auto* r = new Registry();
    KernelSet best = KernelSet::kReference;
    for (KernelSet set : {KernelSet::kAvx2, KernelSet::kAvx512, KernelSet::kNeon}) {
      if (r->supported(set)) best = set;  // amx is never chosen by itself
    }
    r->set_active(best);
    return r;
  }();
  return *registry;
}

// $SHARDLM_CPU is applied once, at the first use of kBest, unless
// UseKernelSet was given a name (the --cpu flag) before.
std::once_flag g_env_once;

void ApplyEnvironment() {
  const char* env = std::getenv("SHARDLM_CPU");
  if (env == nullptr || *env == '\0') return;
  absl::StatusOr<KernelSet> chosen = ParseKernelSet(env);
  absl::Status st = chosen.ok() ? CheckSupported(*chosen) : chosen.status();
  if (!st.ok()) {
    // No Status to return from here (first use of kBest, deep inside a
    // caller): a clear message and a clean exit, not a SIGILL later.
    std::fprintf(stderr, "shardlm: SHARDLM_CPU=%s: %s\n", env, std::string(st.message()).c_str());
    std::exit(2);
  }
  GetRegistry().set_active(*chosen);
}

Registry& RegistryWithEnvironment() {
  std::call_once(g_env_once, ApplyEnvironment);
  return GetRegistry();
}

}  // namespace

const TensorFormat& Format(GgmlType type, KernelSet set) {
  return RegistryWithEnvironment().Get(type, set);
}

const ForwardKernels& Forward(KernelSet set) { return RegistryWithEnvironment().forward(set); }

std::string_view KernelSetName(KernelSet set) {
  switch (set) {
    case KernelSet::kReference: return "scalar";
    case KernelSet::kAvx2: return "avx2";
    case KernelSet::kAvx512: return "avx512";
    case KernelSet::kAmx: return "amx";
    case KernelSet::kNeon: return "neon";
    case KernelSet::kBest: return BestKernelName();
  }
  return "?";
}

absl::StatusOr<KernelSet> ParseKernelSet(std::string_view name) {
  for (KernelSet set : kConcreteSets) {
    if (name == KernelSetName(set)) return set;
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown kernel set '", std::string(name),
                                                 "': expected scalar, avx2, avx512, amx or neon"));
}

absl::Status KernelSetSupported(KernelSet set) {
  if (set == KernelSet::kBest) return absl::OkStatus();
  return CheckSupported(set);
}

std::vector<KernelSet> AvailableKernelSets() {
  std::vector<KernelSet> sets;
  for (KernelSet set : kConcreteSets) {
    if (CheckSupported(set).ok()) sets.push_back(set);
  }
  return sets;
}

absl::Status UseKernelSet(std::string_view name) {
  if (name.empty()) {
    // $SHARDLM_CPU, checked now rather than at the first matmul.
    const char* env = std::getenv("SHARDLM_CPU");
    if (env != nullptr && *env != '\0') {
      absl::StatusOr<KernelSet> set = ParseKernelSet(env);
      absl::Status st = set.ok() ? CheckSupported(*set) : set.status();
      if (!st.ok()) return absl::Status(st.code(), absl::StrCat("SHARDLM_CPU=", env, ": ", st.message()));
    }
    RegistryWithEnvironment();
    return absl::OkStatus();
  }
  absl::StatusOr<KernelSet> set = ParseKernelSet(name);
  if (!set.ok()) return set.status();
  if (absl::Status st = CheckSupported(*set); !st.ok()) return st;
  std::call_once(g_env_once, [] {});  // the flag overrides $SHARDLM_CPU
  GetRegistry().set_active(*set);
  return absl::OkStatus();
}

std::string_view BestKernelName() { return KernelSetName(RegistryWithEnvironment().active()); }

}  // namespace shardlm
