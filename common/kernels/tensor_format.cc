// The tensor-format registry: one row per type with its reference kernels
// and, where one exists, the AVX2 kernel that replaces each of them in the
// kBest set. This file is the single dispatch point: the CPU is checked once,
// and everything else calls through Format(type).
#include "common/kernels/tensor_format.h"

#include <array>
#include <iterator>

#if defined(SHARDLM_HAVE_AVX2_KERNELS)
#include <cpuid.h>
#endif

#include "common/base/logging.h"
#include "common/kernels/quant/blocks.h"
#include "common/kernels/quant/kernels.h"

namespace shardlm {
namespace {

namespace ref = quant::ref;

#if defined(SHARDLM_HAVE_AVX2_KERNELS)
#define SHARDLM_AVX2(fn) &quant::avx2::fn
#else
#define SHARDLM_AVX2(fn) nullptr
#endif

// One kernel set's functions for a type (TensorFormat documents each). In
// the reference set null means the type has no such kernel; in the AVX2 set
// it means "keep the reference one".
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
  Kernels avx2 = {};  // AVX2 + FMA + F16C
};

using T = GgmlType;
constexpr KernelRow kRows[] = {
    {.type = T::kF32,
     .vec_dot_type = T::kF32,
     .reference = {.dequantize = ref::DequantizeF32,
                   .quantize = ref::QuantizeF32,
                   .vec_dot = ref::VecDotF32,
                   .vec_dot_batch = ref::VecDotBatchF32},
     .avx2 = {.vec_dot = SHARDLM_AVX2(VecDotF32), .vec_dot_batch = SHARDLM_AVX2(VecDotBatchF32)}},
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
              .vec_dot_batch = SHARDLM_AVX2(VecDotBatchF16)}},
    {.type = T::kBF16,
     .vec_dot_type = T::kBF16,
     .reference = {.dequantize = ref::DequantizeBF16,
                   .quantize = ref::QuantizeBF16,
                   .quantize_activation = ref::QuantizeBF16,
                   .vec_dot = ref::VecDotBF16},
     .avx2 = {.dequantize = SHARDLM_AVX2(DequantizeBF16), .vec_dot = SHARDLM_AVX2(VecDotBF16)}},
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
              .vec_dot_tile = SHARDLM_AVX2(VecDotTileQ4_0)}},
    {.type = T::kQ4_1,
     .vec_dot_type = T::kQ8_1,
     .reference = {.dequantize = ref::DequantizeQ4_1,
                   .quantize = ref::QuantizeQ4_1,
                   .vec_dot = ref::VecDotQ4_1,
                   .vec_dot_tile = ref::VecDotTileQ4_1},
     .avx2 = {.vec_dot = SHARDLM_AVX2(VecDotQ4_1), .vec_dot_tile = SHARDLM_AVX2(VecDotTileQ4_1)}},
    {.type = T::kQ5_0,
     .vec_dot_type = T::kQ8_0,
     .reference = {.dequantize = ref::DequantizeQ5_0,
                   .quantize = ref::QuantizeQ5_0,
                   .vec_dot = ref::VecDotQ5_0,
                   .vec_dot_tile = ref::VecDotTileQ5_0},
     .avx2 = {.vec_dot = SHARDLM_AVX2(VecDotQ5_0), .vec_dot_tile = SHARDLM_AVX2(VecDotTileQ5_0)}},
    {.type = T::kQ5_1,
     .vec_dot_type = T::kQ8_1,
     .reference = {.dequantize = ref::DequantizeQ5_1,
                   .quantize = ref::QuantizeQ5_1,
                   .vec_dot = ref::VecDotQ5_1,
                   .vec_dot_tile = ref::VecDotTileQ5_1},
     .avx2 = {.vec_dot = SHARDLM_AVX2(VecDotQ5_1), .vec_dot_tile = SHARDLM_AVX2(VecDotTileQ5_1)}},
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
              .vec_dot_tile = SHARDLM_AVX2(VecDotTileQ8_0)}},
    {.type = T::kQ8_1,  // activations only: no vec_dot
     .vec_dot_type = T::kQ8_1,
     .reference = {.dequantize = ref::DequantizeQ8_1,
                   .quantize = ref::QuantizeQ8_1,
                   .quantize_activation = ref::QuantizeActivationQ8_1},
     .avx2 = {.quantize = SHARDLM_AVX2(QuantizeQ8_1),
              .quantize_activation = SHARDLM_AVX2(QuantizeActivationQ8_1)}},
    {.type = T::kQ2_K,
     .vec_dot_type = T::kQ8_K,
     .reference = {.dequantize = ref::DequantizeQ2_K,
                   .quantize = ref::QuantizeQ2_K,
                   .vec_dot = ref::VecDotQ2_K,
                   .vec_dot_x8 = ref::VecDotX8Q2_K},
     .avx2 = {.vec_dot = SHARDLM_AVX2(VecDotQ2_K), .vec_dot_x8 = SHARDLM_AVX2(VecDotX8Q2_K)}},
    {.type = T::kQ3_K,
     .vec_dot_type = T::kQ8_K,
     .reference = {.dequantize = ref::DequantizeQ3_K,
                   .quantize = ref::QuantizeQ3_K,
                   .vec_dot = ref::VecDotQ3_K,
                   .vec_dot_tile = ref::VecDotTileQ3_K},
     .avx2 = {.vec_dot = SHARDLM_AVX2(VecDotQ3_K), .vec_dot_tile = SHARDLM_AVX2(VecDotTileQ3_K)}},
    {.type = T::kQ4_K,
     .vec_dot_type = T::kQ8_K,
     .reference = {.dequantize = ref::DequantizeQ4_K,
                   .quantize = ref::QuantizeQ4_K,
                   .vec_dot = ref::VecDotQ4_K,
                   .vec_dot_x8 = ref::VecDotX8Q4_K},
     .avx2 = {.vec_dot = SHARDLM_AVX2(VecDotQ4_K), .vec_dot_x8 = SHARDLM_AVX2(VecDotX8Q4_K)}},
    {.type = T::kQ5_K,
     .vec_dot_type = T::kQ8_K,
     .reference = {.dequantize = ref::DequantizeQ5_K,
                   .quantize = ref::QuantizeQ5_K,
                   .vec_dot = ref::VecDotQ5_K,
                   .vec_dot_tile = ref::VecDotTileQ5_K},
     .avx2 = {.vec_dot = SHARDLM_AVX2(VecDotQ5_K), .vec_dot_tile = SHARDLM_AVX2(VecDotTileQ5_K)}},
    {.type = T::kQ6_K,
     .vec_dot_type = T::kQ8_K,
     .reference = {.dequantize = ref::DequantizeQ6_K,
                   .quantize = ref::QuantizeQ6_K,
                   .vec_dot = ref::VecDotQ6_K,
                   .vec_dot_tile = ref::VecDotTileQ6_K},
     .avx2 = {.vec_dot = SHARDLM_AVX2(VecDotQ6_K), .vec_dot_tile = SHARDLM_AVX2(VecDotTileQ6_K)}},
    {.type = T::kQ8_K,  // activations only: no vec_dot
     .vec_dot_type = T::kQ8_K,
     .reference = {.dequantize = ref::DequantizeQ8_K,
                   .quantize = ref::QuantizeQ8_K,
                   .quantize_activation = ref::QuantizeQ8_K},
     .avx2 = {.quantize = SHARDLM_AVX2(QuantizeQ8_K),
              .quantize_activation = SHARDLM_AVX2(QuantizeQ8_K)}},
};

// Interleaved layouts: the reference kernels, and the AVX2 product.
struct InterleavedRow {
  GgmlType type;
  InterleavedX8Kernels reference;
  decltype(InterleavedX8Kernels::gemm) gemm_avx2;
};
constexpr InterleavedRow kInterleavedRows[] = {
    {.type = T::kQ4_0,
     .reference = {.block_bytes = sizeof(quant::BlockQ4_0x8),
                   .interleave = ref::InterleaveQ4_0x8,
                   .block_terms = ref::BlockTermsQ8_0,
                   .gemm = ref::GemmQ4_0x8},
     .gemm_avx2 = SHARDLM_AVX2(GemmQ4_0x8)},
    {.type = T::kQ4_K,
     .reference = {.block_bytes = sizeof(quant::BlockQ4_Kx8),
                   .interleave = ref::InterleaveQ4_Kx8,
                   .gemm = ref::GemmQ4_Kx8},  // its activation sums come with the q8_K blocks
     .gemm_avx2 = SHARDLM_AVX2(GemmQ4_Kx8)},
};
#undef SHARDLM_AVX2

constexpr size_t kNumRows = sizeof(kRows) / sizeof(kRows[0]);
constexpr size_t kMaxTypeId = 31;  // GgmlType values are < 31

bool CpuHasAvx2() {
#if defined(SHARDLM_HAVE_AVX2_KERNELS)
  // GCC's cpu model also checks that the OS saves the YMM state (XGETBV).
  // F16C through CPUID leaf 1 (ECX bit 29): clang 14 (the fuzz build) has
  // no "f16c" in __builtin_cpu_supports.
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_F16C) != 0;
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
#else
  return false;
#endif
}

// `fast` with each null slot taken from `reference`.
Kernels Prefer(Kernels fast, const Kernels& reference) {
  auto fill = [](auto& slot, auto fallback) {
    if (slot == nullptr) slot = fallback;
  };
  fill(fast.dequantize, reference.dequantize);
  fill(fast.quantize, reference.quantize);
  fill(fast.quantize_activation, reference.quantize_activation);
  fill(fast.vec_dot, reference.vec_dot);
  fill(fast.vec_dot_x8, reference.vec_dot_x8);
  fill(fast.vec_dot_batch, reference.vec_dot_batch);
  fill(fast.vec_dot_tile, reference.vec_dot_tile);
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

class Registry {
 public:
  Registry() : use_avx2_(CpuHasAvx2()) {
    index_.fill(-1);
    for (size_t i = 0; i < kNumRows; ++i) {
      const KernelRow& r = kRows[i];
      const auto id = static_cast<size_t>(r.type);
      SHARDLM_CHECK(id < kMaxTypeId && index_[id] == -1);
      index_[id] = static_cast<int>(i);
      reference_[i] = MakeFormat(r, r.reference);
      best_[i] = MakeFormat(r, use_avx2_ ? Prefer(r.avx2, r.reference) : r.reference);
    }
    for (size_t j = 0; j < std::size(kInterleavedRows); ++j) {
      const InterleavedRow& r = kInterleavedRows[j];
      const int i = index_[static_cast<size_t>(r.type)];
      SHARDLM_CHECK(i >= 0);
      interleaved_reference_[j] = r.reference;
      interleaved_best_[j] = r.reference;
      if (use_avx2_ && r.gemm_avx2 != nullptr) interleaved_best_[j].gemm = r.gemm_avx2;
      reference_[i].interleaved_x8 = &interleaved_reference_[j];
      best_[i].interleaved_x8 = &interleaved_best_[j];
    }
  }

  const TensorFormat& Get(GgmlType type, KernelSet set) const {
    const auto id = static_cast<size_t>(type);
    SHARDLM_CHECK(id < kMaxTypeId && index_[id] >= 0);  // an impossible enum value is our bug
    return set == KernelSet::kReference ? reference_[index_[id]] : best_[index_[id]];
  }

  std::string_view best_name() const { return use_avx2_ ? "avx2" : "scalar"; }

  const ForwardKernels& forward(KernelSet set) const {
    static constexpr ForwardKernels kReference = {ref::SwiGlu, ref::SoftmaxExp, ref::MixRowsF32,
                                                  ref::MixRowsF16};
#if defined(SHARDLM_HAVE_AVX2_KERNELS)
    static constexpr ForwardKernels kAvx2 = {quant::avx2::SwiGlu, quant::avx2::SoftmaxExp,
                                             quant::avx2::MixRowsF32, quant::avx2::MixRowsF16};
    if (set == KernelSet::kBest && use_avx2_) return kAvx2;
#endif
    return kReference;
  }

 private:
  bool use_avx2_;
  std::array<int, kMaxTypeId> index_;
  std::array<TensorFormat, kNumRows> reference_;
  std::array<TensorFormat, kNumRows> best_;
  std::array<InterleavedX8Kernels, std::size(kInterleavedRows)> interleaved_reference_;
  std::array<InterleavedX8Kernels, std::size(kInterleavedRows)> interleaved_best_;
};

const Registry& GetRegistry() {
  static const Registry* const registry = new Registry();
  return *registry;
}

}  // namespace

const TensorFormat& Format(GgmlType type, KernelSet set) { return GetRegistry().Get(type, set); }

const ForwardKernels& Forward(KernelSet set) { return GetRegistry().forward(set); }

std::string_view BestKernelName() { return GetRegistry().best_name(); }

}  // namespace shardlm
