// Tensor-format registry and kernels: layouts, round-trip error bounds per
// type, vec_dot against the float dot of the dequantized rows, and every fast
// kernel against its scalar reference: bit for bit, since both compute what
// llama.cpp computes (NEON's bf16 dot products, within a tolerance, excepted).
#include "common/kernels/tensor_format.h"
#include "common/kernels/cpu_features.h"
#if defined(SHARDLM_EXPECT_NEON_KERNELS)
#include "common/kernels/quant/kernels_neon.h"
#endif

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/base/fp16.h"
#include "common/kernels/quant/blocks.h"

namespace shardlm {
namespace {

using quant::BlockQ2_K;
using quant::BlockQ3_K;
using quant::BlockQ4_0;
using quant::BlockQ4_1;
using quant::BlockQ4_K;
using quant::BlockQ5_0;
using quant::BlockQ5_1;
using quant::BlockQ5_K;
using quant::BlockQ6_K;
using quant::BlockQ8_0;
using quant::BlockQ8_1;

constexpr GgmlType kAllTypes[] = {
    GgmlType::kF32,  GgmlType::kF16,  GgmlType::kBF16, GgmlType::kQ4_0, GgmlType::kQ4_1,
    GgmlType::kQ5_0, GgmlType::kQ5_1, GgmlType::kQ8_0, GgmlType::kQ8_1, GgmlType::kQ2_K,
    GgmlType::kQ3_K, GgmlType::kQ4_K, GgmlType::kQ5_K, GgmlType::kQ6_K, GgmlType::kQ8_K,
};

// Every kernel set this machine runs (scalar first), and those but scalar:
// each is tested against the reference. A set that cannot run here is named
// once on stderr with the reason (the CPU feature it lacks), not tested.
std::vector<KernelSet> AllSets() { return AvailableKernelSets(); }
std::vector<KernelSet> FastSets() {
  static const bool noted = [] {
    for (KernelSet set : {KernelSet::kAvx2, KernelSet::kAvx512, KernelSet::kAmx, KernelSet::kNeon}) {
      if (absl::Status st = KernelSetSupported(set); !st.ok())
        std::fprintf(stderr, "note: not tested here: %s\n", std::string(st.message()).c_str());
    }
    return true;
  }();
  (void)noted;
  std::vector<KernelSet> sets = AvailableKernelSets();
  sets.erase(sets.begin());  // the reference itself
  return sets;
}

bool IsActivationOnly(GgmlType t) { return t == GgmlType::kQ8_1 || t == GgmlType::kQ8_K; }
std::string Name(GgmlType t) { return std::string(TypeInfo(t).name); }
int BlockSize(GgmlType t) { return TypeInfo(t).block_size; }

// Rows of different character: the kernels must hold on all of them.
enum class Dist {
  kGauss,
  kUniform,
  kOutliers,
  kShifted,
  kZeros,
  kConstant,
  kTiny,
  kHuge,
  kMixedScale
};
constexpr Dist kDists[] = {Dist::kGauss,   Dist::kUniform, Dist::kOutliers,
                           Dist::kShifted, Dist::kZeros,   Dist::kConstant,
                           Dist::kTiny,    Dist::kHuge,    Dist::kMixedScale};

std::vector<float> RandomRow(int64_t n, Dist dist, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> gauss(0.f, 1.f);
  std::uniform_real_distribution<float> uni(-1.f, 1.f);
  std::vector<float> x(n);
  for (int64_t i = 0; i < n; ++i) {
    switch (dist) {
      case Dist::kGauss:
        x[i] = gauss(rng);
        break;
      case Dist::kUniform:
        x[i] = uni(rng);
        break;
      case Dist::kOutliers:
        x[i] = gauss(rng) * (i % 37 == 5 ? 40.f : 1.f);
        break;
      case Dist::kShifted:
        x[i] = 3.f + 0.5f * gauss(rng);
        break;
      case Dist::kZeros:
        x[i] = 0.f;
        break;
      case Dist::kConstant:
        x[i] = -0.75f;
        break;
      case Dist::kTiny:
        x[i] = 1e-4f * gauss(rng);
        break;
      case Dist::kHuge:
        x[i] = 1e4f * gauss(rng);
        break;
      case Dist::kMixedScale:
        x[i] = gauss(rng) * ((i / 32) % 2 ? 1e3f : 1e-3f);
        break;
    }
  }
  return x;
}

std::vector<uint8_t> Quantize(GgmlType t, KernelSet set, const std::vector<float>& x) {
  std::vector<uint8_t> q(*RowBytes(t, static_cast<int64_t>(x.size())));
  Format(t, set).quantize(x.data(), q.data(), static_cast<int64_t>(x.size()));
  return q;
}

std::vector<float> Dequantize(GgmlType t, KernelSet set, const std::vector<uint8_t>& q, int64_t n) {
  std::vector<float> y(n);
  Format(t, set).dequantize(q.data(), y.data(), n);
  return y;
}

// Byte ranges holding the integer levels of one block, and the f16 fields.
struct Layout {
  size_t level_offset, level_bytes;
  std::vector<size_t> f16_fields;
};

Layout LayoutOf(GgmlType t) {
  switch (t) {
    case GgmlType::kQ4_0:
      return {offsetof(BlockQ4_0, qs), 16, {offsetof(BlockQ4_0, d)}};
    case GgmlType::kQ4_1:
      return {offsetof(BlockQ4_1, qs), 16, {offsetof(BlockQ4_1, d), offsetof(BlockQ4_1, m)}};
    case GgmlType::kQ5_0:
      return {offsetof(BlockQ5_0, qh), 20, {offsetof(BlockQ5_0, d)}};
    case GgmlType::kQ5_1:
      return {offsetof(BlockQ5_1, qh), 20, {offsetof(BlockQ5_1, d), offsetof(BlockQ5_1, m)}};
    case GgmlType::kQ8_0:
      return {offsetof(BlockQ8_0, qs), 32, {offsetof(BlockQ8_0, d)}};
    case GgmlType::kQ2_K:
      return {offsetof(BlockQ2_K, qs), 64, {offsetof(BlockQ2_K, d), offsetof(BlockQ2_K, dmin)}};
    case GgmlType::kQ3_K:
      return {offsetof(BlockQ3_K, hmask), 96, {offsetof(BlockQ3_K, d)}};
    case GgmlType::kQ4_K:
      return {offsetof(BlockQ4_K, qs), 128, {offsetof(BlockQ4_K, d), offsetof(BlockQ4_K, dmin)}};
    case GgmlType::kQ5_K:
      return {offsetof(BlockQ5_K, qh), 160, {offsetof(BlockQ5_K, d), offsetof(BlockQ5_K, dmin)}};
    case GgmlType::kQ6_K:
      return {offsetof(BlockQ6_K, ql), 192, {offsetof(BlockQ6_K, d)}};
    default:
      return {0, TypeInfo(t).block_bytes, {}};  // float formats: the value is the level
  }
}

// Random bytes for a weight row, with every f16 scale replaced by a finite
// value in [-2, 2] (random bits would give inf / NaN scales). Float formats
// get random finite values.
std::vector<uint8_t> RandomWeightBytes(GgmlType t, int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uni(-2.f, 2.f);
  if (t == GgmlType::kF32 || t == GgmlType::kF16 || t == GgmlType::kBF16) {
    std::vector<float> x(n);
    for (float& v : x) v = uni(rng);
    return Quantize(t, KernelSet::kReference, x);
  }
  std::vector<uint8_t> q(*RowBytes(t, n));
  for (uint8_t& b : q) b = static_cast<uint8_t>(rng());
  const Layout layout = LayoutOf(t);
  for (size_t off = 0; off < q.size(); off += TypeInfo(t).block_bytes) {
    for (size_t f : layout.f16_fields) {
      const uint16_t h = Fp32ToFp16(uni(rng));
      std::memcpy(&q[off + f], &h, sizeof(h));
    }
  }
  return q;
}

// Magnitude against which a dot product's rounding is judged: sum over i of
// |a_i| (|w_i - c_i| + |c_i|), where c_i is what w_i decodes to with its
// levels zeroed (the min / offset part of x = d s u - dmin m). The kernels
// add those two parts separately, so their rounding scales with both.
double DotMagnitude(GgmlType wt, const std::vector<uint8_t>& w, const std::vector<float>& a) {
  const int64_t n = static_cast<int64_t>(a.size());
  std::vector<uint8_t> zeroed = w;
  const Layout layout = LayoutOf(wt);
  for (size_t off = 0; off < w.size(); off += TypeInfo(wt).block_bytes) {
    std::memset(&zeroed[off + layout.level_offset], 0, layout.level_bytes);
  }
  const std::vector<float> wf = Dequantize(wt, KernelSet::kReference, w, n);
  const std::vector<float> cf = Dequantize(wt, KernelSet::kReference, zeroed, n);
  double m = 0;
  for (int64_t i = 0; i < n; ++i)
    m += std::fabs(a[i]) * (std::fabs(wf[i] - cf[i]) + std::fabs(cf[i]));
  return m;
}

TEST(TensorFormatTest, RegistryHasOneConsistentRowPerType) {
  for (GgmlType t : kAllTypes) {
    for (KernelSet set : AllSets()) {
      const TensorFormat& f = Format(t, set);
      SCOPED_TRACE(Name(t) + " " + std::string(KernelSetName(set)));
      EXPECT_EQ(f.info.type, t);
      EXPECT_EQ(f.info.block_bytes, TypeInfo(t).block_bytes);
      EXPECT_NE(f.dequantize, nullptr);
      EXPECT_NE(f.quantize, nullptr);  // every type, q2_K/q3_K included
      EXPECT_EQ(f.vec_dot == nullptr, IsActivationOnly(t));
    }
  }
  const std::pair<GgmlType, GgmlType> pairs[] = {
      {GgmlType::kF32, GgmlType::kF32},   {GgmlType::kF16, GgmlType::kF16},
      {GgmlType::kBF16, GgmlType::kBF16}, {GgmlType::kQ4_0, GgmlType::kQ8_0},
      {GgmlType::kQ5_0, GgmlType::kQ8_0}, {GgmlType::kQ8_0, GgmlType::kQ8_0},
      {GgmlType::kQ4_1, GgmlType::kQ8_1}, {GgmlType::kQ5_1, GgmlType::kQ8_1},
      {GgmlType::kQ2_K, GgmlType::kQ8_K}, {GgmlType::kQ3_K, GgmlType::kQ8_K},
      {GgmlType::kQ4_K, GgmlType::kQ8_K}, {GgmlType::kQ5_K, GgmlType::kQ8_K},
      {GgmlType::kQ6_K, GgmlType::kQ8_K},
  };
  for (auto [w, a] : pairs) EXPECT_EQ(Format(w).vec_dot_type, a) << Name(w);
}

// kBest never picks kernels the CPU cannot run; on x86-64 builds (where the
// AVX2 kernels are compiled in) it picks them whenever the CPU can, AVX-512
// over AVX2 where both are built and runnable ($SHARDLM_CPU may pin another).
TEST(TensorFormatTest, BestKernelSetMatchesCpu) {
  const std::string_view name = BestKernelName();
  const std::vector<KernelSet> sets = AvailableKernelSets();
  ASSERT_FALSE(sets.empty());
  EXPECT_EQ(sets.front(), KernelSet::kReference);
  ASSERT_TRUE(ParseKernelSet(name).ok()) << name;
  EXPECT_TRUE(KernelSetSupported(*ParseKernelSet(name)).ok()) << name;
  const char* env = std::getenv("SHARDLM_CPU");
  if (env != nullptr && *env != '\0') {
    EXPECT_EQ(name, env);
    return;
  }
  EXPECT_EQ(name, KernelSetName(sets.back() == KernelSet::kAmx ? sets[sets.size() - 2]
                                                                : sets.back()));
#if defined(__x86_64__)
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("f16c");
#if defined(SHARDLM_EXPECT_AVX2_KERNELS)
  if (avx2) {
    EXPECT_TRUE(name == "avx2" || name == "avx512") << name;
  } else {
    EXPECT_EQ(name, "scalar");
  }
#else
  if (!avx2) {
    EXPECT_EQ(name, "scalar");
  }
#endif
#endif
#if defined(SHARDLM_EXPECT_NEON_KERNELS)
  EXPECT_EQ(name, "neon");
#endif
}

#if defined(SHARDLM_EXPECT_NEON_KERNELS)
// The neon set runs its dot-product (sdot) builds exactly where the CPU has
// HWCAP_ASIMDDP; SHARDLM_EXPECT_DOTPROD=0|1 (scripts/test.sh's qemu stage,
// which picks the emulated CPU) makes sure both paths ran.
TEST(TensorFormatTest, NeonDotProductPathFollowsHwcap) {
  EXPECT_EQ(quant::neon::UsesDotProd(), HostCpu().neon_dotprod);
  const char* expect = std::getenv("SHARDLM_EXPECT_DOTPROD");
  if (expect != nullptr && *expect != '\0') {
    EXPECT_EQ(quant::neon::UsesDotProd(), std::string_view(expect) == "1");
  }
}
#endif

// Names parse both ways; a set this CPU or build lacks is refused with a
// message naming why, never handed out.
TEST(TensorFormatTest, KernelSetNamesAndRefusals) {
  for (KernelSet set : {KernelSet::kReference, KernelSet::kAvx2, KernelSet::kAvx512,
                        KernelSet::kAmx, KernelSet::kNeon}) {
    absl::StatusOr<KernelSet> parsed = ParseKernelSet(KernelSetName(set));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, set);
    const absl::Status st = KernelSetSupported(set);
    const std::vector<KernelSet> sets = AvailableKernelSets();
    EXPECT_EQ(st.ok(), std::find(sets.begin(), sets.end(), set) != sets.end());
    if (!st.ok()) {
      EXPECT_EQ(st.code(), absl::StatusCode::kFailedPrecondition);
      EXPECT_NE(st.message().find(std::string(KernelSetName(set))), absl::string_view::npos)
          << st.message();
      EXPECT_FALSE(UseKernelSet(KernelSetName(set)).ok());
    }
  }
  EXPECT_TRUE(KernelSetSupported(KernelSet::kReference).ok());
  EXPECT_FALSE(KernelSetSupported(KernelSet::kAmx).ok());  // reserved: not implemented
  EXPECT_EQ(ParseKernelSet("avx-512").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ParseKernelSet("").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(UseKernelSet("sse").code(), absl::StatusCode::kInvalidArgument);
  // Selecting a runnable set works and is what kBest then reports.
  const std::string before(BestKernelName());
  ASSERT_TRUE(UseKernelSet("scalar").ok());
  EXPECT_EQ(BestKernelName(), "scalar");
  EXPECT_EQ(Format(GgmlType::kQ4_0).vec_dot, Format(GgmlType::kQ4_0, KernelSet::kReference).vec_dot);
  ASSERT_TRUE(UseKernelSet(before).ok());
  EXPECT_EQ(BestKernelName(), before);
}

// Largest allowed |x - dequantize(quantize(x))| for the elements of one
// block (x: that block), with why. F16Err(v) is the rounding of a scale or
// min v stored as f16: half an ulp, relative 2^-11, but absolute 2^-25 in
// the subnormal range (tiny blocks).
double F16Err(double v) {
  return std::max(std::fabs(v) * std::ldexp(1.0, -11), std::ldexp(1.0, -25));
}

double RoundTripBound(GgmlType t, const float* x, int n) {
  double amax = 0, lo = x[0], hi = x[0];
  for (int i = 0; i < n; ++i) {
    amax = std::max<double>(amax, std::fabs(x[i]));
    lo = std::min<double>(lo, x[i]);
    hi = std::max<double>(hi, x[i]);
  }
  const double range = hi - lo, slack = 1e-6 * amax;
  if (amax == 0) return 0;  // zeros must come back exactly
  switch (t) {
    case GgmlType::kF32:
      return 0;
    case GgmlType::kF16:
      return F16Err(amax);  // half an ulp
    case GgmlType::kBF16:
      return amax * std::ldexp(1.0, -8);  // half an ulp of 8 bits
    // d = amax / 127: rounding costs d/2 (amax / 254), plus |q| <= 127 times
    // f16(d)'s error.
    case GgmlType::kQ8_0:
    case GgmlType::kQ8_1:
      return amax / 254 + 127 * F16Err(amax / 127) + slack;
    case GgmlType::kQ8_K:
      return amax / 254 * (1 + 1e-5);  // float d (1e-5: float rounding)
    // d = max / -8 maps max (the signed value of largest magnitude) to level
    // 0; the levels reach only 7|d| on the other side, so a value of opposite
    // sign near amax loses up to |d| = amax / 8 (|d| / 2 elsewhere), plus
    // |level - 8| <= 8 times f16(d)'s error. q5_0 likewise with 16.
    case GgmlType::kQ4_0:
      return amax / 8 + 8 * F16Err(amax / 8) + slack;
    case GgmlType::kQ5_0:
      return amax / 16 + 16 * F16Err(amax / 16) + slack;
    // d = range / 15 (31), m = min: d/2 from rounding, plus the f16 errors of
    // m and of d times at most 15 (31) levels.
    case GgmlType::kQ4_1:
      return range / 30 + 15 * F16Err(range / 15) + F16Err(lo) + slack;
    case GgmlType::kQ5_1:
      return range / 62 + 31 * F16Err(range / 31) + F16Err(lo) + slack;
    // K-quants: per-sub-block scales (and mins) quantized to 4-8 bits of the
    // super-block's largest, found by a least-squares search that may trade a
    // few clamped elements for a better fit. Bounds: a fraction of the
    // super-block's amax, about one level step (amax / levels) with margin
    // for the scale quantization (measured worst cases over the test rows:
    // 75-85% of it), plus, for tiny blocks whose f16 d / dmin are subnormal
    // (absolute error 2^-25), that error times the largest scale * level and
    // min they multiply.
    case GgmlType::kQ2_K:
      return amax * 0.45 + (15 * 3 + 15) * F16Err(0);  // 2-bit levels, 4-bit scales
    case GgmlType::kQ3_K:
      return amax * 0.30 + 32 * 4 * F16Err(0);  // 3-bit levels, 6-bit scales
    case GgmlType::kQ4_K:
      return amax * 0.12 + (63 * 15 + 63) * F16Err(0);  // 4-bit levels, 6-bit scales, mins
    case GgmlType::kQ5_K:
      return amax * 0.06 + (63 * 31 + 63) * F16Err(0);
    case GgmlType::kQ6_K:
      return amax * 0.03 + 128 * 32 * F16Err(0);  // 6-bit levels, 8-bit scales
    default:
      return 0;
  }
}

TEST(TensorFormatTest, RoundTripWithinTypeBound) {
  for (GgmlType t : kAllTypes) {
    const int bs =
        t == GgmlType::kF32 || t == GgmlType::kF16 || t == GgmlType::kBF16 ? 32 : BlockSize(t);
    // Bounds are per block of 32 for the float formats (any grouping works).
    double worst_of_type = 0;
    for (Dist dist : kDists) {
      const int64_t n = 8 * std::max(bs, BlockSize(t));
      const std::vector<float> x = RandomRow(n, dist, 100 + static_cast<int>(dist));
      const std::vector<float> y =
          Dequantize(t, KernelSet::kReference, Quantize(t, KernelSet::kReference, x), n);
      double worst = 0;  // error / bound over the row
      for (int64_t b = 0; b < n; b += bs) {
        const double bound = RoundTripBound(t, &x[b], bs);
        for (int64_t i = b; i < b + bs; ++i) {
          const double err = std::fabs(static_cast<double>(x[i]) - y[i]);
          ASSERT_LE(err, bound) << Name(t) << " dist " << static_cast<int>(dist) << " i " << i
                                << " x " << x[i];
          if (bound > 0) worst = std::max(worst, err / bound);
        }
      }
      worst_of_type = std::max(worst_of_type, worst);
    }
    // Shows how tight each bound is (error / bound, worst element).
    RecordProperty("worst_" + Name(t), std::to_string(worst_of_type));
    std::printf("round trip %-5s worst error / bound = %.3f\n", Name(t).c_str(), worst_of_type);
  }
}

// Relative rounding allowed between two evaluations of one dot product, of
// DotMagnitude: float sums of up to ~100 block terms in a different order.
constexpr double kDotRelTol = 1e-5;

TEST(TensorFormatTest, VecDotEqualsFloatDotOfDequantizedRows) {
  for (GgmlType wt : kAllTypes) {
    if (IsActivationOnly(wt)) continue;
    const GgmlType at = Format(wt).vec_dot_type;
    const int bs = std::max(BlockSize(wt), BlockSize(at));
    for (int nb : {1, 3, 8}) {
      for (Dist dist : {Dist::kGauss, Dist::kOutliers, Dist::kShifted, Dist::kMixedScale}) {
        const int64_t n = static_cast<int64_t>(nb) * bs;
        const std::vector<uint8_t> w =
            Quantize(wt, KernelSet::kReference, RandomRow(n, dist, 1 + nb));
        const std::vector<uint8_t> a =
            Quantize(at, KernelSet::kReference, RandomRow(n, Dist::kGauss, 2 + nb));
        const std::vector<float> wf = Dequantize(wt, KernelSet::kReference, w, n);
        const std::vector<float> af = Dequantize(at, KernelSet::kReference, a, n);
        double exact = 0;
        for (int64_t i = 0; i < n; ++i) exact += static_cast<double>(wf[i]) * af[i];
        double tol = kDotRelTol * DotMagnitude(wt, w, af) + 1e-30;
        if (at == GgmlType::kQ8_1) {
          // The kernel uses q8_1's stored s = f16(d_a sum q_a) for the min
          // term m_w sum a: off by up to |m_w| |s| 2^-11 per block.
          for (int64_t b = 0; b < n / 32; ++b) {
            const auto& ab = reinterpret_cast<const BlockQ8_1*>(a.data())[b];
            const uint16_t m_bits = wt == GgmlType::kQ4_1
                                        ? reinterpret_cast<const BlockQ4_1*>(w.data())[b].m
                                        : reinterpret_cast<const BlockQ5_1*>(w.data())[b].m;
            tol += std::fabs(Fp16ToFp32(m_bits) * Fp16ToFp32(ab.s)) * std::ldexp(1.0, -10);
          }
        }
        EXPECT_NEAR(Format(wt, KernelSet::kReference).vec_dot(n, w.data(), a.data()), exact, tol)
            << Name(wt) << " n " << n << " dist " << static_cast<int>(dist);
      }
    }
  }
}

std::vector<int64_t> TestSizes(GgmlType t) {
  if (BlockSize(t) == 1)
    return {1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 257, 1000, 2048};
  std::vector<int64_t> sizes;
  for (int nb : {1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33, 64})
    sizes.push_back(static_cast<int64_t>(nb) * BlockSize(t));
  return sizes;
}

uint32_t Bits(float f) { return std::bit_cast<uint32_t>(f); }

// vec_dot_tile on the first kTileRows of `w` against 1..kTileActs
// activation rows (`a`, then others): reference and best tiles equal
// vec_dot per output to the bit.
void CheckTile(KernelSet set, GgmlType wt, int64_t n, const std::vector<uint8_t>& w,
               const std::vector<uint8_t>& a, uint64_t seed) {
  const TensorFormat& ref = Format(wt, KernelSet::kReference);
  const TensorFormat& best = Format(wt, set);
  ASSERT_NE(best.vec_dot_tile, nullptr);
  const size_t row_bytes = w.size() / 8;
  const TensorFormat& af = Format(ref.vec_dot_type, KernelSet::kReference);
  std::vector<uint8_t> acts(kTileActs * a.size());
  std::copy(a.begin(), a.end(), acts.begin());
  for (int t = 1; t < kTileActs; ++t) {
    af.quantize_activation(RandomRow(n, t == 1 ? Dist::kOutliers : Dist::kGauss, seed + 5 * t).data(),
                           acts.data() + t * a.size(), n);
  }
  for (int n_act = 1; n_act <= kTileActs; ++n_act) {
    for (const TensorFormat* f : {&ref, &best}) {
      float got[kTileRows * kTileActs];
      f->vec_dot_tile(n, w.data(), row_bytes, acts.data(), a.size(), n_act, got);
      for (int t = 0; t < n_act; ++t) {
        for (int r = 0; r < kTileRows; ++r) {
          const float want = ref.vec_dot(n, w.data() + r * row_bytes, acts.data() + t * a.size());
          ASSERT_EQ(Bits(got[kTileRows * t + r]), Bits(want))
              << (f == &ref ? "reference" : "best") << " n_act " << n_act << " act " << t
              << " row " << r;
        }
      }
    }
  }
}

// The interleaved layout of 8 rows `w` against 1..4 activation rows (`a`,
// zeros, two more): reference and best kernels equal the plain rows'
// vec_dot_x8 to the bit.
void CheckInterleaved(KernelSet set, GgmlType wt, int64_t n, const std::vector<uint8_t>& w,
                      const std::vector<uint8_t>& a, uint64_t seed) {
  const TensorFormat& ref = Format(wt, KernelSet::kReference);
  const TensorFormat& best = Format(wt, set);
  ASSERT_NE(best.interleaved_x8, nullptr);
  const size_t row_bytes = w.size() / 8;
  const int64_t n_blocks = n / ref.info.block_size;
  std::vector<uint8_t> group(n_blocks * ref.interleaved_x8->block_bytes);
  ref.interleaved_x8->interleave(w.data(), row_bytes, n, group.data());
  ASSERT_NE(group, w);  // another layout of the same values
  const TensorFormat& af = Format(ref.vec_dot_type, KernelSet::kReference);
  std::vector<uint8_t> acts(4 * a.size());
  std::copy(a.begin(), a.end(), acts.begin());
  af.quantize_activation(std::vector<float>(n, 0.0f).data(), acts.data() + a.size(), n);
  for (int t = 2; t < 4; ++t) {
    af.quantize_activation(RandomRow(n, t == 2 ? Dist::kOutliers : Dist::kGauss, seed + 7 * t).data(),
                           acts.data() + t * a.size(), n);
  }
  std::vector<quant::ActivationBlockTerms> terms(4 * n_blocks);
  if (ref.interleaved_x8->block_terms != nullptr) {
    for (int t = 0; t < 4; ++t) {
      ref.interleaved_x8->block_terms(acts.data() + t * a.size(), n, terms.data() + t * n_blocks);
    }
  }
  for (bool gemm : {false, true}) {
    float want[4 * 8];
    for (int t = 0; t < 4; ++t) {
      ref.vec_dot_x8(n, w.data(), row_bytes, acts.data() + t * a.size(), 0, 1, want + 8 * t, gemm);
    }
    for (int n_act = 1; n_act <= 4; ++n_act) {
      for (const TensorFormat* f : {&ref, &best}) {
        float got[4 * 8];
        f->interleaved_x8->gemm(n, group.data(), acts.data(), a.size(), terms.data(), n_blocks, n_act,
                                got, gemm);
        for (int i = 0; i < 8 * n_act; ++i) {
          ASSERT_EQ(Bits(got[i]), Bits(want[i]))
              << (f == &ref ? "reference" : "best") << " gemm " << gemm << " n_act " << n_act
              << " act " << i / 8 << " row " << i % 8;
        }
      }
    }
  }
  // The 16-row product (two groups side by side), where the set has one:
  // each group's outputs equal the 8-row reference's.
  const auto gemm_x16 = best.interleaved_x8->gemm_x16;
  if (set == KernelSet::kAvx512 && wt == GgmlType::kQ4_0) {
    ASSERT_NE(gemm_x16, nullptr);
  }
  if (gemm_x16 == nullptr) return;
  std::vector<uint8_t> reversed;  // group 1: the same rows in reverse order
  for (int r = 7; r >= 0; --r) {
    reversed.insert(reversed.end(), w.begin() + r * row_bytes, w.begin() + (r + 1) * row_bytes);
  }
  std::vector<uint8_t> pair(2 * group.size());
  std::copy(group.begin(), group.end(), pair.begin());
  ref.interleaved_x8->interleave(reversed.data(), row_bytes, n, pair.data() + group.size());
  for (bool gemm : {false, true}) {
    for (int n_act = 1; n_act <= 4; ++n_act) {
      float want[2][4 * 8], got[4 * 16];
      for (int g = 0; g < 2; ++g) {
        ref.interleaved_x8->gemm(n, pair.data() + g * group.size(), acts.data(), a.size(),
                                 terms.data(), n_blocks, n_act, want[g], gemm);
      }
      gemm_x16(n, pair.data(), group.size(), acts.data(), a.size(), terms.data(), n_blocks, n_act,
               got, gemm);
      for (int t = 0; t < n_act; ++t) {
        for (int r = 0; r < 16; ++r) {
          ASSERT_EQ(Bits(got[16 * t + r]), Bits(want[r / 8][8 * t + r % 8]))
              << "x16 gemm " << gemm << " n_act " << n_act << " act " << t << " row " << r;
        }
      }
    }
  }
}

TEST(TensorFormatTest, FastVecDotMatchesReference) {
  for (KernelSet set : FastSets())
  for (GgmlType wt : kAllTypes) {
    if (IsActivationOnly(wt)) continue;
    SCOPED_TRACE(KernelSetName(set));
    const TensorFormat& ref = Format(wt, KernelSet::kReference);
    const TensorFormat& best = Format(wt, set);
    const GgmlType at = ref.vec_dot_type;
    for (int64_t n : TestSizes(wt)) {
      if (n % BlockSize(at) != 0) continue;
      const size_t row_bytes = *RowBytes(wt, n);
      for (int source = 0; source < 4; ++source) {
        const uint32_t seed = static_cast<uint32_t>(n * 10 + source);
        // 0, 1: random bytes (every bit pattern of levels and sub-scales);
        // 2: quantized outliers; 3: zeros against random activations. 8 rows.
        std::vector<uint8_t> w;
        for (int r = 0; r < 8; ++r) {
          const std::vector<uint8_t> row =
              source < 2 ? RandomWeightBytes(wt, n, seed + 1000 * r)
                         : Quantize(wt, KernelSet::kReference,
                                    RandomRow(n, source == 2 ? Dist::kOutliers : Dist::kZeros,
                                              seed + 1000 * r));
          w.insert(w.end(), row.begin(), row.end());
        }
        std::vector<uint8_t> a(*RowBytes(at, n));
        const std::vector<float> x =
            RandomRow(n, source == 1 ? Dist::kMixedScale : Dist::kGauss, seed + 1);
        const TensorFormat& af = Format(at, KernelSet::kReference);  // f32: used as is
        (af.quantize_activation ? af.quantize_activation : af.quantize)(x.data(), a.data(), n);
        SCOPED_TRACE(Name(wt) + " n " + std::to_string(n) + " source " + std::to_string(source));
        const std::vector<float> a_f = Dequantize(at, KernelSet::kReference, a, n);
        const float want = ref.vec_dot(n, w.data(), a.data());
        const float got = best.vec_dot(n, w.data(), a.data());
        if (wt == GgmlType::kBF16 && set == KernelSet::kNeon) {
          ASSERT_NEAR(got, want, kDotRelTol * DotMagnitude(wt, w, a_f) + 1e-30);
        } else {
          ASSERT_EQ(Bits(got), Bits(want)) << got << " vs " << want;
        }
        if (source == 3) {
          EXPECT_EQ(got, 0.0f);
        }
        if (ref.vec_dot_batch != nullptr) {
          ASSERT_EQ(Bits(best.vec_dot_batch(n, w.data(), a.data())),
                    Bits(ref.vec_dot_batch(n, w.data(), a.data())));
        }
        if (ref.vec_dot_tile != nullptr) CheckTile(set, wt, n, w, a, seed);
        if (ref.vec_dot_x8 == nullptr) continue;
        std::vector<uint8_t> a3(a);  // three activation rows at once: a, zeros, a
        a3.resize(3 * a.size());
        std::copy(a.begin(), a.end(), a3.begin() + 2 * a.size());
        for (bool gemm : {false, true}) {
          float want8[8], got8[3 * 8];
          ref.vec_dot_x8(n, w.data(), row_bytes, a.data(), 0, 1, want8, gemm);
          best.vec_dot_x8(n, w.data(), row_bytes, a3.data(), a.size(), 3, got8, gemm);
          for (int r = 0; r < 8; ++r) {
            ASSERT_TRUE(Bits(got8[r]) == Bits(want8[r]) && Bits(got8[16 + r]) == Bits(want8[r]))
                << "row " << r << " gemm " << gemm;
            const std::vector<uint8_t> row(w.begin() + r * row_bytes,
                                           w.begin() + (r + 1) * row_bytes);
            ASSERT_NEAR(got8[r], ref.vec_dot(n, row.data(), a.data()),  // other order
                        kDotRelTol * DotMagnitude(wt, row, a_f) + 1e-30);
          }
        }
        if (ref.interleaved_x8 != nullptr) CheckInterleaved(set, wt, n, w, a, seed);
      }
    }
  }
}

// bf16 as llama.cpp's AVX512_BF16 build computes it (vdpbf16ps; the
// reference spells out the order): x86 sets equal the reference to the bit
// (on CPUs with AVX512_BF16 the avx512 set runs the instruction itself, the
// avx2 set always emulates it), including denormal inputs (read as zero),
// denormal sums (flushed), tiny but exact products, and the per-lane order.
TEST(TensorFormatTest, Bf16DotIsVdpbf16psOrder) {
  const TensorFormat& ref = Format(GgmlType::kBF16, KernelSet::kReference);
  // The order, from Intel's pseudo-code: lane 0 holds 1 after the first
  // 64-element step; then its odd element adds 2^-24 (a tie: stays 1), its
  // even one 1.5 * 2^-24 (-> 1 + 2^-23). Even first would give 1 + 2^-22,
  // one rounding for both 1 + 2^-23 as well, so only this order gives it.
  {
    std::vector<uint16_t> x(128, 0), y(128, 0);
    x[0] = y[0] = Fp32ToBf16(1.0f);
    x[65] = Fp32ToBf16(std::ldexp(1.0f, -24));
    x[64] = Fp32ToBf16(1.5f * std::ldexp(1.0f, -24));
    y[64] = y[65] = Fp32ToBf16(1.0f);
    EXPECT_EQ(ref.vec_dot(128, x.data(), y.data()), 1.0f + std::ldexp(1.0f, -23));
    for (KernelSet set : FastSets()) {
      if (set == KernelSet::kNeon) continue;
      EXPECT_EQ(Format(GgmlType::kBF16, set).vec_dot(128, x.data(), y.data()),
                1.0f + std::ldexp(1.0f, -23))
          << KernelSetName(set);
    }
  }
  std::mt19937 rng(5);
  for (int kind = 0; kind < 4; ++kind) {
    for (int64_t n : {32, 64, 96, 130, 256, 2048}) {
      std::vector<uint16_t> x(n), y(n);
      std::normal_distribution<float> g;
      for (int64_t i = 0; i < n; ++i) {
        float a = g(rng), b = g(rng);
        if (kind == 1 && i % 3 == 0) a = std::ldexp(a, -128);         // denormal inputs
        if (kind == 2) { a = std::ldexp(a, -60); b = std::ldexp(b, -66); }  // tiny products
        if (kind == 3 && i % 2) { a = std::ldexp(1.0f, -126); b = i % 4 == 1 ? 1.0f : -1.0f; }
        x[i] = Fp32ToBf16(a);
        y[i] = Fp32ToBf16(b);
      }
      const float want = ref.vec_dot(n, x.data(), y.data());
      const float want_batch = ref.vec_dot_batch(n, x.data(), y.data());
      for (KernelSet set : FastSets()) {
        if (set == KernelSet::kNeon) continue;
        SCOPED_TRACE(std::string(KernelSetName(set)) + " kind " + std::to_string(kind) + " n " +
                     std::to_string(n));
        const TensorFormat& f = Format(GgmlType::kBF16, set);
        EXPECT_EQ(Bits(f.vec_dot(n, x.data(), y.data())), Bits(want));
        EXPECT_EQ(Bits(f.vec_dot_batch(n, x.data(), y.data())), Bits(want_batch));
      }
    }
  }
}

// Extreme blocks, where integer shortcuts would overflow or saturate (AVX2
// maddubs saturates int16 pair sums, VNNI's vpdpbusd does not): every level
// at its largest magnitude, of one sign or alternating, against activations
// all +-127; and q8_0 weights of -128 (the sign trick's |w| = 128). Every
// set's vec_dot, tile, x8 and interleaved kernels equal the reference.
TEST(TensorFormatTest, FastKernelsMatchReferenceOnExtremeBlocks) {
  constexpr int64_t n = 512;
  const auto pattern = [](int kind) {
    std::vector<float> x(n);
    for (int64_t i = 0; i < n; ++i) {
      x[i] = kind == 0 ? 1.f : kind == 1 ? -1.f : (i % 2 ? 1.f : -1.f);
    }
    return x;
  };
  for (KernelSet set : FastSets())
  for (GgmlType wt : kAllTypes) {
    if (IsActivationOnly(wt)) continue;
    const TensorFormat& ref = Format(wt, KernelSet::kReference);
    const TensorFormat& best = Format(wt, set);
    const GgmlType at = ref.vec_dot_type;
    const TensorFormat& af = Format(at, KernelSet::kReference);
    const size_t row_bytes = *RowBytes(wt, n);
    for (int wk = 0; wk < 4; ++wk) {
      std::vector<uint8_t> w;
      for (int r = 0; r < 8; ++r) {
        std::vector<uint8_t> row = Quantize(wt, KernelSet::kReference, pattern(wk % 3));
        if (wk == 3 && wt == GgmlType::kQ8_0) {  // qs all -128, d = 1
          for (auto* b = reinterpret_cast<BlockQ8_0*>(row.data()); b < reinterpret_cast<BlockQ8_0*>(row.data() + row.size()); ++b) {
            b->d = 0x3C00;
            std::memset(b->qs, 0x80, sizeof(b->qs));
          }
        }
        w.insert(w.end(), row.begin(), row.end());
      }
      for (int ak = 0; ak < 3; ++ak) {
        SCOPED_TRACE(Name(wt) + " " + std::string(KernelSetName(set)) + " weights " +
                     std::to_string(wk) + " acts " + std::to_string(ak));
        std::vector<uint8_t> a(*RowBytes(at, n));
        (af.quantize_activation ? af.quantize_activation : af.quantize)(pattern(ak).data(),
                                                                        a.data(), n);
        for (int r = 0; r < 8; ++r) {
          const uint8_t* row = w.data() + r * row_bytes;
          ASSERT_EQ(Bits(best.vec_dot(n, row, a.data())), Bits(ref.vec_dot(n, row, a.data())));
        }
        if (ref.vec_dot_tile != nullptr) CheckTile(set, wt, n, w, a, 77);
        if (ref.vec_dot_x8 != nullptr) {
          for (bool gemm : {false, true}) {
            float want8[8], got8[8];
            ref.vec_dot_x8(n, w.data(), row_bytes, a.data(), 0, 1, want8, gemm);
            best.vec_dot_x8(n, w.data(), row_bytes, a.data(), 0, 1, got8, gemm);
            for (int r = 0; r < 8; ++r) ASSERT_EQ(Bits(got8[r]), Bits(want8[r])) << "row " << r;
          }
        }
        if (ref.interleaved_x8 != nullptr) CheckInterleaved(set, wt, n, w, a, 78);
      }
    }
  }
}

TEST(TensorFormatTest, FastQuantizeIsBitExact) {
  for (KernelSet set : FastSets())
  for (GgmlType t : kAllTypes) {
    SCOPED_TRACE(KernelSetName(set));
    const TensorFormat& ref = Format(t, KernelSet::kReference);
    const TensorFormat& best = Format(t, set);
    for (int64_t n : TestSizes(t)) {
      for (Dist dist : kDists) {
        const std::vector<float> x =
            RandomRow(n, dist, static_cast<uint32_t>(n + 31 * static_cast<int>(dist)));
        ASSERT_EQ(Quantize(t, set, x), Quantize(t, KernelSet::kReference, x))
            << Name(t) << " n " << n << " dist " << static_cast<int>(dist);
        if (ref.quantize_activation == nullptr) continue;
        std::vector<uint8_t> want(*RowBytes(t, n)), got(want.size());
        ref.quantize_activation(x.data(), want.data(), n);
        best.quantize_activation(x.data(), got.data(), n);
        ASSERT_EQ(got, want) << Name(t) << " activation n " << n;
      }
    }
  }
  // Exact ties: amax 127 makes d = 1; k + 0.5 rounds away from zero in the q8 weight quantizers,
  // to even in the activation ones (x86 _mm256_round_ps) and q8_K; +-amax: the first decides.
  std::vector<float> ties(256);
  for (int i = 0; i < 256; ++i)
    ties[i] = (i % 32 == 0) ? (i % 64 ? -127.f : 127.f) : (i % 7 - 3) + 0.5f;
  ties[100] = -127.f;
  for (KernelSet set : FastSets()) {
    for (GgmlType t : {GgmlType::kQ8_0, GgmlType::kQ8_1, GgmlType::kQ8_K}) {
      EXPECT_EQ(Quantize(t, set, ties), Quantize(t, KernelSet::kReference, ties))
          << Name(t) << " " << KernelSetName(set);
    }
  }
  const std::vector<uint8_t> q = Quantize(GgmlType::kQ8_0, KernelSet::kReference, ties);
  EXPECT_EQ(reinterpret_cast<const BlockQ8_0*>(q.data())->qs[3], 1);   // 0.5 -> 1
  EXPECT_EQ(reinterpret_cast<const BlockQ8_0*>(q.data())->qs[1], -2);  // -1.5 -> -2
  BlockQ8_0 act[8];
  Format(GgmlType::kQ8_0).quantize_activation(ties.data(), act, 256);
  EXPECT_EQ(act[0].qs[3], 0);   // 0.5 -> 0
  EXPECT_EQ(act[0].qs[1], -2);  // -1.5 -> -2
  EXPECT_EQ(act[0].qs[5], 2);   // 2.5 -> 2
}

TEST(TensorFormatTest, FastDequantizeIsBitExact) {
  for (KernelSet set : FastSets())
  for (GgmlType t : kAllTypes) {
    for (int64_t n : TestSizes(t)) {
      const std::vector<uint8_t> q =
          IsActivationOnly(t) ? Quantize(t, KernelSet::kReference, RandomRow(n, Dist::kGauss, 5))
                              : RandomWeightBytes(t, n, static_cast<uint32_t>(n));
      const std::vector<float> best = Dequantize(t, set, q, n);
      const std::vector<float> ref = Dequantize(t, KernelSet::kReference, q, n);
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(std::bit_cast<uint32_t>(best[i]), std::bit_cast<uint32_t>(ref[i]))
            << Name(t) << " n " << n << " i " << i << " " << KernelSetName(set);
      }
    }
  }
}

}  // namespace
}  // namespace shardlm
