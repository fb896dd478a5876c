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

struct KernelRow {
  GgmlType type;
  GgmlType vec_dot_type;
  DequantizeRowFn dequantize;
  QuantizeRowFn quantize;
  QuantizeRowFn quantize_activation;
  VecDotFn vec_dot;
  VecDotX8Fn vec_dot_x8;
  VecDotFn vec_dot_batch;
  // AVX2 + FMA + F16C replacements; null keeps the reference kernel.
  DequantizeRowFn dequantize_avx2;
  QuantizeRowFn quantize_avx2;
  QuantizeRowFn quantize_activation_avx2;
  VecDotFn vec_dot_avx2;
  VecDotX8Fn vec_dot_x8_avx2;
  VecDotFn vec_dot_batch_avx2;
};

using T = GgmlType;
// vec_dot_type pairs as llama.cpp does (see TensorFormat::vec_dot_type).
// Columns: type, vec_dot_type; reference dequantize, quantize,
// quantize_activation, vec_dot, vec_dot_x8, vec_dot_batch; then the AVX2 ones.
constexpr KernelRow kRows[] = {
    {T::kF32, T::kF32, ref::DequantizeF32, ref::QuantizeF32, nullptr, ref::VecDotF32, nullptr,
     ref::VecDotBatchF32, nullptr, nullptr, nullptr, SHARDLM_AVX2(VecDotF32), nullptr,
     SHARDLM_AVX2(VecDotBatchF32)},
    {T::kF16, T::kF16, ref::DequantizeF16, ref::QuantizeF16, ref::QuantizeF16, ref::VecDotF16,
     nullptr, ref::VecDotBatchF16, SHARDLM_AVX2(DequantizeF16), SHARDLM_AVX2(QuantizeF16),
     SHARDLM_AVX2(QuantizeF16), SHARDLM_AVX2(VecDotF16), nullptr, SHARDLM_AVX2(VecDotBatchF16)},
    {T::kBF16, T::kBF16, ref::DequantizeBF16, ref::QuantizeBF16, ref::QuantizeBF16, ref::VecDotBF16,
     nullptr, nullptr, SHARDLM_AVX2(DequantizeBF16), nullptr, nullptr, SHARDLM_AVX2(VecDotBF16),
     nullptr, nullptr},
    {T::kQ4_0, T::kQ8_0, ref::DequantizeQ4_0, ref::QuantizeQ4_0, nullptr, ref::VecDotQ4_0,
     ref::VecDotX8Q4_0, nullptr, SHARDLM_AVX2(DequantizeQ4_0), nullptr, nullptr,
     SHARDLM_AVX2(VecDotQ4_0), SHARDLM_AVX2(VecDotX8Q4_0), nullptr},
    {T::kQ4_1, T::kQ8_1, ref::DequantizeQ4_1, ref::QuantizeQ4_1, nullptr, ref::VecDotQ4_1, nullptr,
     nullptr, nullptr, nullptr, nullptr, SHARDLM_AVX2(VecDotQ4_1), nullptr, nullptr},
    {T::kQ5_0, T::kQ8_0, ref::DequantizeQ5_0, ref::QuantizeQ5_0, nullptr, ref::VecDotQ5_0, nullptr,
     nullptr, nullptr, nullptr, nullptr, SHARDLM_AVX2(VecDotQ5_0), nullptr, nullptr},
    {T::kQ5_1, T::kQ8_1, ref::DequantizeQ5_1, ref::QuantizeQ5_1, nullptr, ref::VecDotQ5_1, nullptr,
     nullptr, nullptr, nullptr, nullptr, SHARDLM_AVX2(VecDotQ5_1), nullptr, nullptr},
    {T::kQ8_0, T::kQ8_0, ref::DequantizeQ8_0, ref::QuantizeQ8_0, ref::QuantizeActivationQ8_0,
     ref::VecDotQ8_0, nullptr, nullptr, SHARDLM_AVX2(DequantizeQ8_0), SHARDLM_AVX2(QuantizeQ8_0),
     SHARDLM_AVX2(QuantizeActivationQ8_0), SHARDLM_AVX2(VecDotQ8_0), nullptr, nullptr},
    {T::kQ8_1, T::kQ8_1, ref::DequantizeQ8_1, ref::QuantizeQ8_1, ref::QuantizeActivationQ8_1,
     nullptr, nullptr, nullptr, nullptr, SHARDLM_AVX2(QuantizeQ8_1),
     SHARDLM_AVX2(QuantizeActivationQ8_1), nullptr, nullptr, nullptr},
    {T::kQ2_K, T::kQ8_K, ref::DequantizeQ2_K, ref::QuantizeQ2_K, nullptr, ref::VecDotQ2_K,
     ref::VecDotX8Q2_K, nullptr, nullptr, nullptr, nullptr, SHARDLM_AVX2(VecDotQ2_K),
     SHARDLM_AVX2(VecDotX8Q2_K), nullptr},
    {T::kQ3_K, T::kQ8_K, ref::DequantizeQ3_K, ref::QuantizeQ3_K, nullptr, ref::VecDotQ3_K, nullptr,
     nullptr, nullptr, nullptr, nullptr, SHARDLM_AVX2(VecDotQ3_K), nullptr, nullptr},
    {T::kQ4_K, T::kQ8_K, ref::DequantizeQ4_K, ref::QuantizeQ4_K, nullptr, ref::VecDotQ4_K,
     ref::VecDotX8Q4_K, nullptr, nullptr, nullptr, nullptr, SHARDLM_AVX2(VecDotQ4_K),
     SHARDLM_AVX2(VecDotX8Q4_K), nullptr},
    {T::kQ5_K, T::kQ8_K, ref::DequantizeQ5_K, ref::QuantizeQ5_K, nullptr, ref::VecDotQ5_K, nullptr,
     nullptr, nullptr, nullptr, nullptr, SHARDLM_AVX2(VecDotQ5_K), nullptr, nullptr},
    {T::kQ6_K, T::kQ8_K, ref::DequantizeQ6_K, ref::QuantizeQ6_K, nullptr, ref::VecDotQ6_K, nullptr,
     nullptr, nullptr, nullptr, nullptr, SHARDLM_AVX2(VecDotQ6_K), nullptr, nullptr},
    {T::kQ8_K, T::kQ8_K, ref::DequantizeQ8_K, ref::QuantizeQ8_K, ref::QuantizeQ8_K, nullptr,
     nullptr, nullptr, nullptr, SHARDLM_AVX2(QuantizeQ8_K), SHARDLM_AVX2(QuantizeQ8_K), nullptr,
     nullptr, nullptr},
};
// vec_dot over tiles: the reference (vec_dot per output) and the AVX2 one.
struct TileRow {
  GgmlType type;
  VecDotTileFn reference, avx2;
};
constexpr TileRow kTileKernels[] = {
    {T::kQ4_0, ref::VecDotTileQ4_0, SHARDLM_AVX2(VecDotTileQ4_0)},
    {T::kQ4_1, ref::VecDotTileQ4_1, SHARDLM_AVX2(VecDotTileQ4_1)},
    {T::kQ5_0, ref::VecDotTileQ5_0, SHARDLM_AVX2(VecDotTileQ5_0)},
    {T::kQ5_1, ref::VecDotTileQ5_1, SHARDLM_AVX2(VecDotTileQ5_1)},
    {T::kQ8_0, ref::VecDotTileQ8_0, SHARDLM_AVX2(VecDotTileQ8_0)},
    {T::kQ3_K, ref::VecDotTileQ3_K, SHARDLM_AVX2(VecDotTileQ3_K)},
    {T::kQ5_K, ref::VecDotTileQ5_K, SHARDLM_AVX2(VecDotTileQ5_K)},
    {T::kQ6_K, ref::VecDotTileQ6_K, SHARDLM_AVX2(VecDotTileQ6_K)},
};

// Interleaved layouts: the reference kernels, and the AVX2 product.
struct InterleavedRow {
  GgmlType type;
  InterleavedX8Kernels reference;
  decltype(InterleavedX8Kernels::gemm) gemm_avx2;
};
constexpr InterleavedRow kInterleavedRows[] = {
    {T::kQ4_0,
     {sizeof(quant::BlockQ4_0x8), ref::InterleaveQ4_0x8, ref::BlockTermsQ8_0, ref::GemmQ4_0x8},
     SHARDLM_AVX2(GemmQ4_0x8)},
    {T::kQ4_K, {sizeof(quant::BlockQ4_Kx8), ref::InterleaveQ4_Kx8, nullptr, ref::GemmQ4_Kx8},
     SHARDLM_AVX2(GemmQ4_Kx8)},
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

class Registry {
 public:
  Registry() : use_avx2_(CpuHasAvx2()) {
    index_.fill(-1);
    for (size_t i = 0; i < kNumRows; ++i) {
      const KernelRow& r = kRows[i];
      const auto id = static_cast<size_t>(r.type);
      SHARDLM_CHECK(id < kMaxTypeId && index_[id] == -1);
      index_[id] = static_cast<int>(i);
      reference_[i] = {TypeInfo(r.type), r.dequantize,    r.quantize, r.quantize_activation,
                       r.vec_dot,        r.vec_dot_x8,    r.vec_dot_batch,
                       /*vec_dot_tile=*/nullptr,          /*interleaved_x8=*/nullptr,
                       r.vec_dot_type};
      best_[i] = reference_[i];
      if (use_avx2_) {
        auto pick = [](auto fast, auto& slot) {
          if (fast != nullptr) slot = fast;
        };
        pick(r.dequantize_avx2, best_[i].dequantize);
        pick(r.quantize_avx2, best_[i].quantize);
        pick(r.quantize_activation_avx2, best_[i].quantize_activation);
        pick(r.vec_dot_avx2, best_[i].vec_dot);
        pick(r.vec_dot_x8_avx2, best_[i].vec_dot_x8);
        pick(r.vec_dot_batch_avx2, best_[i].vec_dot_batch);
      }
    }
    for (const TileRow& r : kTileKernels) {
      const int i = index_[static_cast<size_t>(r.type)];
      SHARDLM_CHECK(i >= 0);
      reference_[i].vec_dot_tile = best_[i].vec_dot_tile = r.reference;
      if (use_avx2_ && r.avx2 != nullptr) best_[i].vec_dot_tile = r.avx2;
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
