// The tensor formats on the real files of shared/models: every tensor of
// every GGUF (v2/v3) dequantizes to finite values with both kernel sets
// alike; every matrix of each quantized nano-*.gguf (written by llama.cpp's
// quantizer from nano-f32.gguf) is within its type's error of the f32
// original; and our reference quantizers reproduce llama.cpp's bytes.
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

#include "common/gguf.h"
#include "common/tensor_format.h"
#include "tests/test_data.h"

namespace shardlm {
namespace {

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
  switch (t) {
    case GgmlType::kQ8_0:
      return 0.006;
    case GgmlType::kQ6_K:
      return 0.02;
    case GgmlType::kQ5_K:
      return 0.042;
    case GgmlType::kQ5_0:
      return 0.05;
    case GgmlType::kQ4_K:
      return 0.085;
    case GgmlType::kQ4_1:
      return 0.09;
    case GgmlType::kQ4_0:
      return 0.10;
    case GgmlType::kQ3_K:
      return 0.18;
    case GgmlType::kQ2_K:
      return 0.35;
    default:
      return 0;  // f32 tensors must match exactly
  }
}

constexpr const char* kQuantizedNanos[] = {"nano-q8_0", "nano-q6_k",   "nano-q5_k_m",
                                           "nano-q5_0", "nano-q4_1",   "nano-q4_k_m",
                                           "nano-q4_0", "nano-q3_k_m", "nano-q2_k"};

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
  for (const char* name : kQuantizedNanos) {
    auto file = OpenOrFail(TestDataPath(std::string("models/") + name + ".gguf"));
    ASSERT_NE(file, nullptr);
    for (const GgufTensorInfo& t : file->tensors()) {
      if (t.type == GgmlType::kF32) continue;
      SCOPED_TRACE(std::string(name) + " " + t.name);
      const GgufTensorInfo* orig = f32->FindTensor(t.name);
      ASSERT_NE(orig, nullptr);
      const std::vector<float> x = DequantizeTensor(*f32, *orig, KernelSet::kReference);
      std::vector<uint8_t> q(t.n_bytes);
      ASSERT_EQ(q.size(), *RowBytes(t.type, t.n_elements()));
      Format(t.type, KernelSet::kReference).quantize(x.data(), q.data(), t.n_elements());
      const uint8_t* expected = file->TensorData(t);
      const size_t bb = TypeInfo(t.type).block_bytes;
      auto& [bad, total] = diff[std::string(TypeInfo(t.type).name)];
      for (size_t off = 0; off < q.size(); off += bb, ++total) {
        if (std::memcmp(&q[off], expected + off, bb) != 0) ++bad;
      }
    }
  }
  for (const auto& [type, counts] : diff) {
    std::printf("quantize vs llama.cpp %-5s %lld of %lld blocks differ\n", type.c_str(),
                static_cast<long long>(counts.first), static_cast<long long>(counts.second));
    EXPECT_EQ(counts.first, 0) << type;
  }
}

// The fast vec_dot against the reference on real weight rows.
TEST(QuantModelsTest, FastVecDotMatchesReferenceOnModelRows) {
  std::mt19937 rng(3);
  std::normal_distribution<float> gauss;
  for (const char* name : kQuantizedNanos) {
    auto file = OpenOrFail(TestDataPath(std::string("models/") + name + ".gguf"));
    ASSERT_NE(file, nullptr);
    for (const GgufTensorInfo& t : file->tensors()) {
      if (t.type == GgmlType::kF32) continue;
      SCOPED_TRACE(std::string(name) + " " + t.name);
      const TensorFormat& ref = Format(t.type, KernelSet::kReference);
      const TensorFormat& best = Format(t.type, KernelSet::kBest);
      const int64_t cols = t.ne[0];
      std::vector<float> x(cols);
      for (float& v : x) v = gauss(rng);
      std::vector<uint8_t> a(*RowBytes(ref.vec_dot_type, cols));
      Format(ref.vec_dot_type, KernelSet::kReference).quantize(x.data(), a.data(), cols);
      const size_t row_bytes = *RowBytes(t.type, cols);
      std::vector<float> w(cols);
      for (int64_t r = 0; r < t.n_rows(); r += 7) {
        const uint8_t* row = file->TensorData(t) + r * row_bytes;
        ref.dequantize(row, w.data(), cols);
        double magnitude = 0;  // sum |w_i x_i|, with 4x headroom for the min/offset split
        for (int64_t i = 0; i < cols; ++i) magnitude += std::fabs(w[i] * x[i]);
        const float want = ref.vec_dot(cols, row, a.data());
        const float got = best.vec_dot(cols, row, a.data());
        ASSERT_NEAR(got, want, 4e-5 * magnitude) << "row " << r;
      }
    }
  }
}

}  // namespace
}  // namespace shardlm
