// MatMul itself (worker/matmul.cc), not a single kernel: the tiling over row
// groups, the split of tokens into kernel calls and the copy-out. The
// interleaved product must give the plain layout's numbers to the bit (both
// follow llama.cpp's repacked 8-row arithmetic) for every row count and
// batch shape, including matrices whose last task unit holds a single
// interleaved group (the 16-row path's one-group tail), and both must stay
// close to a float product of the dequantized weights.
#include "worker/matmul.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <memory>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/kernels/tensor_format.h"

namespace shardlm {
namespace {

struct Matrix {
  std::vector<uint8_t> bytes;
  WeightMatrix w;
};

Matrix RandomQuantized(GgmlType type, int64_t rows, int64_t cols, std::mt19937* rng) {
  std::normal_distribution<float> gauss(0.f, 1.f);
  const size_t row_bytes = *RowBytes(type, cols);
  Matrix m;
  m.bytes.resize(row_bytes * rows);
  std::vector<float> row(cols);
  for (int64_t r = 0; r < rows; ++r) {
    for (float& v : row) v = gauss(*rng);
    Format(type).quantize(row.data(), m.bytes.data() + r * row_bytes, cols);
  }
  m.w = WeightMatrix{.data = m.bytes.data(),
                     .type = type,
                     .cols = cols,
                     .rows = rows,
                     .row_bytes = row_bytes};
  return m;
}

// y = W x in float from the dequantized weights.
std::vector<double> FloatProduct(const WeightMatrix& w, const std::vector<float>& x, int n_tokens) {
  std::vector<float> row(w.cols);
  std::vector<double> y(static_cast<size_t>(n_tokens) * w.rows);
  for (int64_t r = 0; r < w.rows; ++r) {
    DequantizeRow(w, r, row.data());
    for (int t = 0; t < n_tokens; ++t) {
      double sum = 0;
      for (int64_t c = 0; c < w.cols; ++c) sum += double{row[c]} * x[t * w.cols + c];
      y[static_cast<size_t>(t) * w.rows + r] = sum;
    }
  }
  return y;
}

TEST(MatMulTest, InterleavedEqualsPlainForEveryGroupCountAndBatch) {
  std::mt19937 rng(7);
  std::normal_distribution<float> gauss(0.f, 1.f);
  // The types with an interleaved layout (tensor_format.cc's kInterleavedRows).
  for (GgmlType type : {GgmlType::kQ4_0, GgmlType::kQ4_K}) {
    ASSERT_NE(Format(type).interleaved_x8, nullptr) << TypeInfo(type).name;
    // 1, 3 and 5 groups of 8 rows (an odd last unit of the 16-row path),
    // 2 and 4 (even), 33 (an odd count past one task's grain).
    for (int64_t groups : {1, 2, 3, 4, 5, 33}) {
      const int64_t rows = 8 * groups, cols = 512;
      Matrix plain = RandomQuantized(type, rows, cols, &rng);
      WeightMatrix interleaved = plain.w;
      std::unique_ptr<uint8_t[]> storage;
      ASSERT_TRUE(Interleave(&interleaved, &storage));
      for (int n_tokens : {1, 2, 3, 4, 5, 7, 9}) {
        SCOPED_TRACE(absl::StrCat(TypeInfo(type).name, " rows ", rows, " tokens ", n_tokens));
        std::vector<float> x(static_cast<size_t>(n_tokens) * cols);
        for (float& v : x) v = gauss(rng);
        // Also as two sequences of a shared batch when there are >= 2.
        std::vector<int> split;
        if (n_tokens >= 2) split = {n_tokens / 2, n_tokens - n_tokens / 2};
        for (const std::vector<int>& seqs : {std::vector<int>{}, split}) {
          MatMulScratch s1, s2;
          std::vector<float> y_plain(static_cast<size_t>(n_tokens) * rows, NAN);
          std::vector<float> y_inter(y_plain.size(), NAN);
          MatMul(plain.w, x.data(), n_tokens, y_plain.data(), &s1, seqs);
          MatMul(interleaved, x.data(), n_tokens, y_inter.data(), &s2, seqs);
          const std::vector<double> ref = FloatProduct(plain.w, x, n_tokens);
          // The activations are quantized too: a few percent of the sum's scale.
          const double tolerance = 0.05 * std::sqrt(static_cast<double>(cols));
          int mismatches = 0;
          for (size_t i = 0; i < y_plain.size(); ++i) {
            // Bitwise: NAN (an output never written) fails too.
            if (std::memcmp(&y_plain[i], &y_inter[i], sizeof(float)) != 0 && ++mismatches <= 3) {
              ADD_FAILURE() << "output " << i << " (token " << i / rows << ", row " << i % rows
                            << "): plain " << y_plain[i] << ", interleaved " << y_inter[i];
            }
            EXPECT_NEAR(y_plain[i], ref[i], tolerance) << "output " << i;
          }
          EXPECT_EQ(mismatches, 0);
        }
      }
    }
  }
}

}  // namespace
}  // namespace shardlm
