// The tensor formats on the real files of shared/models: every tensor of
// every GGUF (v2/v3) dequantizes to finite values with both kernel sets
// alike; every matrix of each quantized nano-*.gguf (written by llama.cpp's
// quantizer from nano-f32.gguf) is within its type's error of the f32
// original; our reference quantizers reproduce llama.cpp's bytes; the fast
// kernels equal the reference ones bit for bit on the models' rows. Also the
// f16 / bf16 conversions and the forward pass's float kernels (llama.cpp's
// exp, softmax sums, SwiGLU, attention's weighted sums), and the nibble /
// bit layouts of q4_0 and q5_0.
#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/base/fp16.h"
#include "common/model/gguf.h"
#include "common/kernels/quant/blocks.h"
#include "common/kernels/tensor_format.h"
#include "tests/test_data.h"

namespace shardlm {
namespace {

using quant::BlockQ4_0;
using quant::BlockQ5_0;
using testing::TestDataPath;

std::unique_ptr<GgufFile> OpenOrFail(const std::string& path) {
  auto file = GgufFile::Open(path);
  EXPECT_TRUE(file.ok()) << file.status();
  return file.ok() ? std::move(file).value() : nullptr;
}

uint32_t GgufVersion(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char header[8] = {};
  in.read(header, sizeof(header));
  uint32_t version;
  std::memcpy(&version, header + 4, sizeof(version));
  return version;
}

// All rows of a tensor, dequantized with `set`.
std::vector<float> DequantizeTensor(const GgufFile& file, const GgufTensorInfo& t, KernelSet set) {
  const int64_t cols = t.ne[0];
  const size_t row_bytes = *RowBytes(t.type, cols);
  std::vector<float> out(static_cast<size_t>(t.n_elements()));
  const uint8_t* data = file.TensorData(t);
  for (int64_t r = 0; r < t.n_rows(); ++r) {
    Format(t.type, set).dequantize(data + r * row_bytes, out.data() + r * cols, cols);
  }
  return out;
}

TEST(QuantModelsTest, EveryTensorOfEveryModelDequantizesToFiniteValues) {
  int files = 0, tensors = 0;
  for (const auto& entry : std::filesystem::directory_iterator(TestDataPath("models"))) {
    const std::string path = entry.path().string();
    if (entry.path().extension() != ".gguf") continue;
    if (GgufVersion(path) == 1) continue;  // GGUF v1: refused by the reader (and by llama.cpp)
    SCOPED_TRACE(path);
    auto file = OpenOrFail(path);
    ASSERT_NE(file, nullptr);
    ++files;
    for (const GgufTensorInfo& t : file->tensors()) {
      SCOPED_TRACE(t.name);
      ASSERT_TRUE(RowBytes(t.type, t.ne[0]).has_value());
      const std::vector<float> ref = DequantizeTensor(*file, t, KernelSet::kReference);
      const std::vector<float> best = DequantizeTensor(*file, t, KernelSet::kBest);
      for (size_t i = 0; i < ref.size(); ++i) {
        ASSERT_TRUE(std::isfinite(ref[i])) << "element " << i;
        ASSERT_EQ(std::bit_cast<uint32_t>(ref[i]), std::bit_cast<uint32_t>(best[i]))
            << "element " << i;
      }
      ++tensors;
    }
  }
  EXPECT_GE(files, 13);
  std::printf("dequantized %d tensors of %d files\n", tensors, files);
}

// Largest relative RMS error, rms(dequantized - f32) / rms(f32), of one
// matrix quantized by llama.cpp from nano-f32.gguf (Gaussian-like weights).
// A uniform quantizer with step D has RMS error D / sqrt(12); a block of
// Gaussian values spans about +-2.2 sigma, so with L levels D ~ 4.4 sigma /
// (L - 1) and the relative error is ~1.27 / (L - 1): q8_0 0.5%, q6_K 2.0%,
// 5-bit 4.1%, 4-bit 8.5%, q3_K 18%, q2_K 42% (the K-quants' fitted scales and
// mins on 16/32-element sub-blocks do a little better). Measured worst
// matrices over the 9 files: q8_0 0.51%, q6_K 1.71%, q5_K 3.50%, q5_0 4.08%,
// q4_K 6.93%, q4_1 7.61%, q4_0 8.24%, q3_K 14.6%, q2_K 29.0%. Bounds: measured
// + ~20%, so a wrong layout, nibble order or scale (errors of 30-100%+ of the
// signal) fails while llama.cpp's own rounding passes.
double RelRmsBound(GgmlType t) {
  static const std::map<GgmlType, double> kBounds = {
      {GgmlType::kQ8_0, 0.006}, {GgmlType::kQ6_K, 0.02}, {GgmlType::kQ5_K, 0.042},
      {GgmlType::kQ5_0, 0.05},  {GgmlType::kQ4_K, 0.085}, {GgmlType::kQ4_1, 0.09},
      {GgmlType::kQ4_0, 0.10},  {GgmlType::kQ3_K, 0.18},  {GgmlType::kQ2_K, 0.35},
  };
  auto it = kBounds.find(t);
  return it == kBounds.end() ? 0 : it->second;  // f32 tensors must match exactly
}

constexpr const char* kQuantizedNanos[] = {"nano-q8_0", "nano-q6_k",   "nano-q5_k_m",
                                           "nano-q5_0", "nano-q4_1",   "nano-q4_k_m",
                                           "nano-q4_0", "nano-q3_k_m", "nano-q2_k"};

// Calls fn(file, tensor) for every quantized tensor of those files, under a
// trace naming both (an ASSERT in fn ends that tensor's check).
template <class Fn>
void ForEachQuantizedTensor(Fn fn) {
  for (const char* name : kQuantizedNanos) {
    auto file = OpenOrFail(TestDataPath(std::string("models/") + name + ".gguf"));
    ASSERT_NE(file, nullptr);
    for (const GgufTensorInfo& t : file->tensors()) {
      if (t.type == GgmlType::kF32) continue;
      SCOPED_TRACE(std::string(name) + " " + t.name);
      fn(*file, t);
    }
  }
}

TEST(QuantModelsTest, NanoMatricesAreWithinTheirTypeErrorOfF32) {
  auto f32 = OpenOrFail(TestDataPath("models/nano-f32.gguf"));
  ASSERT_NE(f32, nullptr);
  std::map<std::string, double> worst;  // per type name
  for (const char* name : kQuantizedNanos) {
    auto file = OpenOrFail(TestDataPath(std::string("models/") + name + ".gguf"));
    ASSERT_NE(file, nullptr);
    int matrices = 0;
    for (const GgufTensorInfo& t : file->tensors()) {
      SCOPED_TRACE(std::string(name) + " " + t.name);
      const GgufTensorInfo* orig = f32->FindTensor(t.name);  // by name: the order differs
      ASSERT_NE(orig, nullptr);
      ASSERT_EQ(orig->ne, t.ne);
      const std::vector<float> x = DequantizeTensor(*f32, *orig, KernelSet::kReference);
      const std::vector<float> y = DequantizeTensor(*file, t, KernelSet::kReference);
      double err2 = 0, ref2 = 0;
      for (size_t i = 0; i < x.size(); ++i) {
        err2 += (static_cast<double>(y[i]) - x[i]) * (static_cast<double>(y[i]) - x[i]);
        ref2 += static_cast<double>(x[i]) * x[i];
      }
      const double rel = std::sqrt(err2 / ref2);
      EXPECT_LE(rel, RelRmsBound(t.type)) << TypeInfo(t.type).name;
      if (t.type != GgmlType::kF32) ++matrices;
      double& w = worst[std::string(TypeInfo(t.type).name)];
      w = std::max(w, rel);
    }
    EXPECT_EQ(matrices, 30) << name;
  }
  for (const auto& [type, rel] : worst)
    std::printf("worst relative rms error %-5s %.4f\n", type.c_str(), rel);
}

// llama-quantize without an importance matrix runs ggml's quantize_row_*_ref,
// which our reference quantizers port operation for operation: quantizing the
// f32 originals must give llama.cpp's bytes, every block of every type (the
// K-quant scale searches included).
TEST(QuantModelsTest, ReferenceQuantizersReproduceLlamaCppBytes) {
  auto f32 = OpenOrFail(TestDataPath("models/nano-f32.gguf"));
  ASSERT_NE(f32, nullptr);
  std::map<std::string, std::pair<int64_t, int64_t>> diff;  // type -> (differing, total) blocks
  ForEachQuantizedTensor([&](const GgufFile& file, const GgufTensorInfo& t) {
      const GgufTensorInfo* orig = f32->FindTensor(t.name);
      ASSERT_NE(orig, nullptr);
      const std::vector<float> x = DequantizeTensor(*f32, *orig, KernelSet::kReference);
      std::vector<uint8_t> q(t.n_bytes);
      ASSERT_EQ(q.size(), *RowBytes(t.type, t.n_elements()));
      Format(t.type, KernelSet::kReference).quantize(x.data(), q.data(), t.n_elements());
      const uint8_t* expected = file.TensorData(t);
      const size_t bb = TypeInfo(t.type).block_bytes;
      auto& [bad, total] = diff[std::string(TypeInfo(t.type).name)];
      for (size_t off = 0; off < q.size(); off += bb, ++total) {
        if (std::memcmp(&q[off], expected + off, bb) != 0) ++bad;
      }
  });
  for (const auto& [type, counts] : diff) {
    std::printf("quantize vs llama.cpp %-5s %lld of %lld blocks differ\n", type.c_str(),
                static_cast<long long>(counts.first), static_cast<long long>(counts.second));
    EXPECT_EQ(counts.first, 0) << type;
  }
}

// The fast kernels against the reference on real weight rows, bit for bit:
// vec_dot, and vec_dot_x8 (both kernel shapes) on every group of 8 rows.
TEST(QuantModelsTest, FastVecDotMatchesReferenceOnModelRows) {
  std::mt19937 rng(3);
  std::normal_distribution<float> gauss;
  ForEachQuantizedTensor([&](const GgufFile& file, const GgufTensorInfo& t) {
      const TensorFormat& ref = Format(t.type, KernelSet::kReference);
      const TensorFormat& best = Format(t.type, KernelSet::kBest);
      const int64_t cols = t.ne[0];
      std::vector<float> x(cols);
      for (float& v : x) v = gauss(rng);
      std::vector<uint8_t> a(*RowBytes(ref.vec_dot_type, cols));
      Format(ref.vec_dot_type).quantize_activation(x.data(), a.data(), cols);
      const size_t row_bytes = *RowBytes(t.type, cols);
      for (int64_t r = 0; r < t.n_rows(); r += 7) {
        const uint8_t* row = file.TensorData(t) + r * row_bytes;
        ASSERT_EQ(std::bit_cast<uint32_t>(best.vec_dot(cols, row, a.data())),
                  std::bit_cast<uint32_t>(ref.vec_dot(cols, row, a.data())))
            << "row " << r;
      }
      if (ref.vec_dot_x8 == nullptr || t.n_rows() % 8 != 0) return;
      for (int64_t r = 0; r < t.n_rows(); r += 8) {
        const uint8_t* rows = file.TensorData(t) + r * row_bytes;
        for (bool gemm : {false, true}) {
          float want[8], got[8];
          ref.vec_dot_x8(cols, rows, row_bytes, a.data(), 0, 1, want, gemm);
          best.vec_dot_x8(cols, rows, row_bytes, a.data(), 0, 1, got, gemm);
          for (int i = 0; i < 8; ++i) {
            ASSERT_EQ(std::bit_cast<uint32_t>(got[i]), std::bit_cast<uint32_t>(want[i]))
                << "row " << r + i << " gemm " << gemm;
          }
        }
      }
  });
}

uint32_t Bits(float f) { return std::bit_cast<uint32_t>(f); }

std::vector<float> Gauss(int64_t n, uint32_t seed, float sigma = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> gauss(0.f, sigma);
  std::vector<float> x(n);
  for (float& v : x) v = gauss(rng);
  return x;
}

std::vector<uint8_t> QuantizeF16(KernelSet set, const std::vector<float>& x) {
  std::vector<uint8_t> q(2 * x.size());
  Format(GgmlType::kF16, set).quantize(x.data(), q.data(), static_cast<int64_t>(x.size()));
  return q;
}

TEST(Fp16Test, EveryHalfRoundTripsAndMatchesTheBestRowKernel) {
  std::vector<uint16_t> all(1 << 16);
  for (int i = 0; i < (1 << 16); ++i) all[i] = static_cast<uint16_t>(i);
  std::vector<float> best(all.size());
  Format(GgmlType::kF16).dequantize(all.data(), best.data(), static_cast<int64_t>(all.size()));
  for (int i = 0; i < (1 << 16); ++i) {
    const float f = Fp16ToFp32(all[i]);
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(best[i]));
      EXPECT_TRUE(std::isnan(Fp16ToFp32(Fp32ToFp16(f))));
      continue;
    }
    ASSERT_EQ(Fp32ToFp16(f), all[i]) << i;
    ASSERT_EQ(std::bit_cast<uint32_t>(best[i]), std::bit_cast<uint32_t>(f)) << i;
  }
}

TEST(Fp16Test, RoundsToNearestEvenLikeTheHardware) {
  EXPECT_EQ(Fp32ToFp16(1.0f), 0x3C00);
  EXPECT_EQ(Fp32ToFp16(-2.0f), 0xC000);
  EXPECT_EQ(Fp32ToFp16(65504.f), 0x7BFF);
  EXPECT_EQ(Fp32ToFp16(65519.f), 0x7BFF);
  EXPECT_EQ(Fp32ToFp16(65520.f), 0x7C00);               // the tie rounds to even: inf
  EXPECT_EQ(Fp32ToFp16(std::ldexp(1.f, -24)), 0x0001);  // smallest subnormal
  EXPECT_EQ(Fp32ToFp16(std::ldexp(1.f, -25)), 0x0000);  // tie to even: 0
  EXPECT_EQ(Fp32ToFp16(std::ldexp(3.f, -26)), 0x0001);
  EXPECT_EQ(Fp32ToFp16(std::ldexp(3.f, -25)), 0x0002);         // 1.5 ulp: tie to even 2
  EXPECT_EQ(Fp32ToFp16(1.0f + std::ldexp(1.f, -11)), 0x3C00);  // tie, even stays
  EXPECT_EQ(Fp32ToFp16(1.0f + std::ldexp(3.f, -11)), 0x3C02);  // tie, odd rounds up
  // Random bit patterns: the reference row kernel and the best one agree.
  std::mt19937 rng(7);
  std::vector<float> x(4099);
  for (float& v : x) {
    do v = std::bit_cast<float>(static_cast<uint32_t>(rng()) >> (rng() % 4));
    while (std::isnan(v));
  }
  EXPECT_EQ(QuantizeF16(KernelSet::kBest, x), QuantizeF16(KernelSet::kReference, x));
}

TEST(Fp16Test, Bf16RoundsToNearestEvenAndKeepsNanQuiet) {
  EXPECT_EQ(Fp32ToBf16(1.0f), 0x3F80);
  EXPECT_EQ(Fp32ToBf16(std::bit_cast<float>(0x3F808000u)), 0x3F80);  // tie, even kept
  EXPECT_EQ(Fp32ToBf16(std::bit_cast<float>(0x3F818000u)), 0x3F82);  // tie, odd rounds up
  EXPECT_EQ(Fp32ToBf16(std::bit_cast<float>(0x3F808001u)), 0x3F81);
  EXPECT_EQ(Fp32ToBf16(std::bit_cast<float>(0x7F800001u)) & 0x7FC0, 0x7FC0);  // quiet NaN
  EXPECT_EQ(Bf16ToFp32(0xC040), -3.0f);
}

// The forward pass's float kernels (llama.cpp's exp, softmax sums, SwiGLU,
// attention's weighted row sums): fast equals reference bit for bit, and
// ggml's exp is within 2 ulp of libm's, 0 below its range, inf above.
TEST(TensorFormatTest, ForwardKernelsMatchReference) {
  const ForwardKernels& ref = Forward(KernelSet::kReference);
  const ForwardKernels& best = Forward(KernelSet::kBest);
  for (int64_t n : {1, 7, 16, 33, 172, 768}) {
    std::vector<float> g = Gauss(n, 11), u = Gauss(n, 12);
    for (int64_t i = 0; i < n; i += 5) g[i] *= 40;  // far into exp's tails
    std::vector<float> want(n), got(n);
    ref.swiglu(n, g.data(), u.data(), want.data());
    best.swiglu(n, g.data(), u.data(), got.data());
    for (int64_t i = 0; i < n; ++i) ASSERT_EQ(Bits(got[i]), Bits(want[i])) << "swiglu " << i;
    const float max = *std::max_element(g.begin(), g.end());
    const double sum_want = ref.softmax_exp(n, g.data(), max, want.data());
    ASSERT_EQ(best.softmax_exp(n, g.data(), max, got.data()), sum_want) << n;
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_EQ(Bits(got[i]), Bits(want[i])) << "exp " << i;
      const double e = std::exp(static_cast<double>(g[i] - max));  // of the float difference
      ASSERT_NEAR(want[i], e, e * 2.4e-7 + 1e-45) << "exp of " << g[i] - max;
    }
    const int64_t dim = 40;  // a head of 40: five registers
    const std::vector<float> rows = Gauss(n * dim, 13);
    std::vector<float> p = Gauss(n, 14, 0.3f), scratch(64 * dim);
    std::vector<uint16_t> rows16(rows.size());
    for (size_t i = 0; i < rows.size(); ++i) rows16[i] = Fp32ToFp16(rows[i]);
    // Row j at rows[j * dim]; read backwards from the end so the kernels
    // follow the addresses, not an assumed stride.
    std::vector<const void*> at(n), at16(n);
    for (int64_t j = 0; j < n; ++j) {
      at[j] = &rows[(n - 1 - j) * dim];
      at16[j] = &rows16[(n - 1 - j) * dim];
    }
    for (int slots : {16, 64}) {
      std::vector<float> mw(dim), mg(dim);
      ref.mix_rows_f32(n, p.data(), at.data(), 0, dim, slots, scratch.data(), mw.data());
      best.mix_rows_f32(n, p.data(), at.data(), 0, dim, slots, scratch.data(), mg.data());
      for (int64_t i = 0; i < dim; ++i) ASSERT_EQ(Bits(mg[i]), Bits(mw[i])) << slots << " " << i;
      ref.mix_rows_f16(n, p.data(), at16.data(), 0, dim, slots, scratch.data(), mw.data());
      best.mix_rows_f16(n, p.data(), at16.data(), 0, dim, slots, scratch.data(), mg.data());
      for (int64_t i = 0; i < dim; ++i) ASSERT_EQ(Bits(mg[i]), Bits(mw[i])) << slots << " " << i;
    }
  }
  const float edges[] = {-INFINITY, -200.f, -110.f, -100.f, -87.5f, 0.f, 88.f, 88.8f, 200.f};
  for (float x : edges) {
    float want, got;
    ref.softmax_exp(1, &x, 0.0f, &want);
    best.softmax_exp(1, &x, 0.0f, &got);
    EXPECT_EQ(Bits(got), Bits(want)) << x;
    const double e = std::exp(static_cast<double>(x));
    if (e > 3.4028234663852886e38) {
      EXPECT_EQ(want, INFINITY) << x;
    } else {
      EXPECT_NEAR(want, e, e * 2.4e-7 + std::ldexp(1.0, -149)) << x;  // subnormals: 1 unit
    }
  }
}

// The classic bug: q4_0 stores element j in the low nibble of qs[j] and
// element j + 16 in the high nibble, not two consecutive elements per byte.
TEST(TensorFormatTest, Q4_0NibbleOrder) {
  BlockQ4_0 b;
  b.d = Fp32ToFp16(0.5f);
  for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  for (KernelSet set : {KernelSet::kReference, KernelSet::kBest}) {
    float y[32];
    Format(GgmlType::kQ4_0, set).dequantize(&b, y, 32);
    for (int j = 0; j < 16; ++j) {
      EXPECT_EQ(y[j], 0.5f * (j - 8)) << j;
      EXPECT_EQ(y[j + 16], 0.5f * (7 - j)) << j;
    }
  }
}

// q5_0: bit 4 of element j is bit j of qh (little-endian uint32).
TEST(TensorFormatTest, Q5_0HighBitOrder) {
  BlockQ5_0 b;
  b.d = Fp32ToFp16(1.0f);
  std::memset(b.qs, 0, sizeof(b.qs));
  const uint32_t qh = (1u << 3) | (1u << 20);
  std::memcpy(b.qh, &qh, 4);
  float y[32];
  Format(GgmlType::kQ5_0).dequantize(&b, y, 32);
  for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], (j == 3 || j == 20) ? 0.f : -16.f) << j;
}

}  // namespace
}  // namespace shardlm
