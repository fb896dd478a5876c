// RoPE (worker/rope.h) against its float64 formula for both pairings, with
// frequency factors and linear scaling; the per-architecture ops of
// worker/ops.h (per-head RMSNorm rows, bias rows) against plain loops.
// Bit-exactness with llama.cpp is golden_test's job (golden/families).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "worker/ops.h"
#include "worker/rope.h"

namespace shardlm {
namespace {

std::vector<float> Values(int n, uint32_t seed) {
  std::vector<float> v(n);
  for (int i = 0; i < n; ++i) {
    seed = seed * 1664525u + 1013904223u;
    v[i] = static_cast<float>(seed >> 8) / static_cast<float>(1u << 24) * 4.0f - 2.0f;
  }
  return v;
}

// The definition, in float64: pair i of each head turns by
// freq_scale * pos * base^(-2i / n_rot) / ff_i.
std::vector<double> ReferenceRope(const RopeParams& p, int pos, const std::vector<float>& x,
                                  int n_heads, int head_dim) {
  std::vector<double> out(x.begin(), x.end());
  for (int h = 0; h < n_heads; ++h) {
    for (int i = 0; i < p.n_rot / 2; ++i) {
      const double ff = p.freq_factors.empty() ? 1.0 : p.freq_factors[i];
      const double angle =
          p.freq_scale * pos * std::pow(double{p.freq_base}, -2.0 * i / p.n_rot) / ff;
      const int a = h * head_dim + (p.type == RopeType::kNeox ? i : 2 * i);
      const int b = a + (p.type == RopeType::kNeox ? p.n_rot / 2 : 1);
      out[a] = x[a] * std::cos(angle) - x[b] * std::sin(angle);
      out[b] = x[a] * std::sin(angle) + x[b] * std::cos(angle);
    }
  }
  return out;
}

TEST(RopeTest, MatchesFloat64Definition) {
  const int n_heads = 3, head_dim = 64;
  const std::vector<float> factors = Values(16, 7);  // pairs of n_rot 32
  std::vector<float> positive(factors.size());
  for (size_t i = 0; i < factors.size(); ++i) positive[i] = 1.0f + std::fabs(factors[i]) * 3.5f;
  for (RopeType type : {RopeType::kNorm, RopeType::kNeox}) {
    for (int n_rot : {32, 64}) {
      for (bool with_factors : {false, true}) {
        for (float scale : {1.0f, 0.25f}) {
          RopeParams p{type, n_rot, 500000.0f, scale, {}};
          if (with_factors && n_rot == 32) p.freq_factors = positive;
          for (int pos : {0, 1, 7, 100, 1000}) {
            SCOPED_TRACE(::testing::Message()
                         << RopeTypeName(type) << " n_rot " << n_rot << " factors " << with_factors
                         << " scale " << scale << " pos " << pos);
            const std::vector<float> x = Values(n_heads * head_dim, pos + 1);
            std::vector<float> y = x;
            Rope(p, pos, y.data(), n_heads, head_dim);
            const std::vector<double> ref = ReferenceRope(p, pos, x, n_heads, head_dim);
            // The angles are float products (ggml's rope cache): their error
            // grows with the position.
            const double tol = 1e-6 * (4 + pos);
            for (size_t i = 0; i < y.size(); ++i) ASSERT_NEAR(y[i], ref[i], tol) << "value " << i;
          }
        }
      }
    }
  }
}

// NEOX is NORM on a permuted head: value i pairs with i + n_rot / 2 instead
// of adjacent values, the angles being the same. Bit for bit.
TEST(RopeTest, NeoxIsNormWithHalvesInterleaved) {
  const int head_dim = 64, n_rot = 48, n_heads = 2;
  const std::vector<float> x = Values(n_heads * head_dim, 3);
  std::vector<float> neox = x, norm(x.size());
  for (int h = 0; h < n_heads; ++h) {
    const float* src = &x[h * head_dim];
    float* dst = &norm[h * head_dim];
    for (int i = 0; i < n_rot / 2; ++i) {
      dst[2 * i] = src[i];
      dst[2 * i + 1] = src[i + n_rot / 2];
    }
    for (int i = n_rot; i < head_dim; ++i) dst[i] = src[i];
  }
  Rope({RopeType::kNeox, n_rot, 1e6f, 1.0f, {}}, 123, neox.data(), n_heads, head_dim);
  Rope({RopeType::kNorm, n_rot, 1e6f, 1.0f, {}}, 123, norm.data(), n_heads, head_dim);
  for (int h = 0; h < n_heads; ++h) {
    for (int i = 0; i < n_rot / 2; ++i) {
      EXPECT_EQ(neox[h * head_dim + i], norm[h * head_dim + 2 * i]);
      EXPECT_EQ(neox[h * head_dim + i + n_rot / 2], norm[h * head_dim + 2 * i + 1]);
    }
    for (int i = n_rot; i < head_dim; ++i) {
      EXPECT_EQ(neox[h * head_dim + i], x[h * head_dim + i]) << "past n_rot";
      EXPECT_EQ(norm[h * head_dim + i], x[h * head_dim + i]) << "past n_rot";
    }
  }
}

// Factors of 1 (and scale 1) are exact no-ops on the angles, so llama files
// without rope_freqs.weight keep their numbers.
TEST(RopeTest, UnitFactorsChangeNothing) {
  const std::vector<float> ones(16, 1.0f);
  std::vector<float> a(32 * 4), b(32 * 4);
  for (int pos : {0, 5, 4000}) {
    RopeAngles({RopeType::kNorm, 32, 500000.0f, 1.0f, {}}, pos, a.data());
    RopeAngles({RopeType::kNorm, 32, 500000.0f, 1.0f, ones}, pos, b.data());
    EXPECT_EQ(std::memcmp(a.data(), b.data(), 32 * sizeof(float)), 0) << "pos " << pos;
  }
}

TEST(OpsTest, RmsNormRowsNormalizesEachRowAlone) {
  const int rows = 5, n = 64;
  const float eps = 1e-6f;
  const std::vector<float> weight = Values(n, 11);
  std::vector<float> x = Values(rows * n, 12), expected(x.size());
  for (int r = 0; r < rows; ++r) RmsNorm(&x[r * n], weight.data(), n, eps, &expected[r * n]);
  RmsNormRows(x.data(), weight.data(), rows, n, eps);
  EXPECT_EQ(std::memcmp(x.data(), expected.data(), x.size() * sizeof(float)), 0);
  // And RmsNorm is what it says: mean square 1 before the weight.
  std::vector<float> ones(n, 1.0f), y(n);
  RmsNorm(&x[0], ones.data(), n, 0.0f, y.data());
  double ms = 0;
  for (float v : y) ms += double{v} * v;
  EXPECT_NEAR(ms / n, 1.0, 1e-5);
}

TEST(OpsTest, AddRowBiasAddsTheSameRowToEveryRow) {
  const int rows = 3, n = 5;
  std::vector<float> y = Values(rows * n, 21);
  const std::vector<float> before = y, bias = Values(n, 22);
  AddRowBias(y.data(), bias.data(), rows, n);
  for (int r = 0; r < rows; ++r) {
    for (int i = 0; i < n; ++i) EXPECT_EQ(y[r * n + i], before[r * n + i] + bias[i]);
  }
}

}  // namespace
}  // namespace shardlm
