// Balanced pipeline splits: the largest stage cost is minimal (checked
// against brute force), ties go to the most even split, and the output head
// counts towards the last stage.
#include "common/model/layer_split.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

#include "tests/test_data.h"

namespace shardlm {
namespace {

std::vector<int> Sizes(const std::vector<LayerRange>& ranges) {
  std::vector<int> sizes;
  for (const auto& [a, b] : ranges) sizes.push_back(b - a);
  return sizes;
}

uint64_t LargestCost(const std::vector<LayerRange>& ranges, const std::vector<uint64_t>& cost,
                     uint64_t head) {
  uint64_t worst = 0;
  for (size_t k = 0; k < ranges.size(); ++k) {
    uint64_t c = k + 1 == ranges.size() ? head : 0;
    for (int i = ranges[k].first; i < ranges[k].second; ++i) c += cost[i];
    worst = std::max(worst, c);
  }
  return worst;
}

// Every way of cutting n layers into `stages` non-empty ranges.
void AllSplits(int n, int stages, int first, std::vector<LayerRange>* partial,
               std::vector<std::vector<LayerRange>>* out) {
  if (stages == 1) {
    partial->push_back({first, n});
    out->push_back(*partial);
    partial->pop_back();
    return;
  }
  for (int end = first + 1; end <= n - (stages - 1); ++end) {
    partial->push_back({first, end});
    AllSplits(n, stages - 1, end, partial, out);
    partial->pop_back();
  }
}

TEST(LayerSplitTest, EqualLayersSplitEvenly) {
  const std::vector<uint64_t> cost(22, 100);
  EXPECT_EQ(SplitByCost(cost, 0, 2), (std::vector<LayerRange>{{0, 11}, {11, 22}}));
  std::vector<int> sizes = Sizes(SplitByCost(cost, 0, 4));
  std::sort(sizes.begin(), sizes.end());
  EXPECT_EQ(sizes, (std::vector<int>{5, 5, 6, 6}));  // not 4, 6, 6, 6: same maximum, less even
  EXPECT_EQ(SplitByCost(cost, 0, 1), (std::vector<LayerRange>{{0, 22}}));
  EXPECT_EQ(Sizes(SplitByCost(cost, 0, 22)), std::vector<int>(22, 1));
}

TEST(LayerSplitTest, TheHeadWeighsOnTheLastStage) {
  // TinyLlama-shaped Q4_0: 22 layers of ~24.5 MB, a 53.8 MB Q6_K head.
  const std::vector<uint64_t> cost(22, 24'500'000);
  EXPECT_EQ(SplitByCost(cost, 53'760'000, 2), (std::vector<LayerRange>{{0, 12}, {12, 22}}));
}

TEST(LayerSplitTest, LargestStageIsMinimalAgainstBruteForce) {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    const int n = 1 + static_cast<int>(rng() % 8);
    const int stages = 1 + static_cast<int>(rng() % n);
    std::vector<uint64_t> cost(n);
    for (uint64_t& c : cost) c = 1 + rng() % 50;
    const uint64_t head = rng() % 80;
    const std::vector<LayerRange> got = SplitByCost(cost, head, stages);
    ASSERT_EQ(got.size(), static_cast<size_t>(stages));
    for (int k = 0; k < stages; ++k) {
      EXPECT_LT(got[k].first, got[k].second);
      EXPECT_EQ(got[k].first, k == 0 ? 0 : got[k - 1].second);
    }
    EXPECT_EQ(got.back().second, n);
    std::vector<std::vector<LayerRange>> all;
    std::vector<LayerRange> partial;
    AllSplits(n, stages, 0, &partial, &all);
    uint64_t best = UINT64_MAX;
    for (const auto& split : all) best = std::min(best, LargestCost(split, cost, head));
    EXPECT_EQ(LargestCost(got, cost, head), best) << "trial " << trial;
  }
}

TEST(LayerSplitTest, FromAModelFile) {
  // mini-shape-q4_0: 4 small Q4_0 layers and a 32000-row Q6_K head heavier
  // than all of them: the last stage gets one layer.
  auto mini = GgufFile::Open(testing::TestDataPath("models/mini-shape-q4_0.gguf"));
  ASSERT_TRUE(mini.ok()) << mini.status();
  auto ranges = BalancedLayerRanges(**mini, 4, 2);
  ASSERT_TRUE(ranges.ok()) << ranges.status();
  EXPECT_EQ(*ranges, (std::vector<LayerRange>{{0, 3}, {3, 4}}));
  // nano-f32: a 512-row head, lighter than a layer: even.
  auto nano = GgufFile::Open(testing::TestDataPath("models/nano-f32.gguf"));
  ASSERT_TRUE(nano.ok()) << nano.status();
  ranges = BalancedLayerRanges(**nano, 4, 2);
  ASSERT_TRUE(ranges.ok()) << ranges.status();
  EXPECT_EQ(*ranges, (std::vector<LayerRange>{{0, 2}, {2, 4}}));

  for (int stages : {0, 5}) {
    auto bad = BalancedLayerRanges(**nano, 4, stages);
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument) << stages;
    EXPECT_NE(bad.status().message().find("at least one layer"), std::string::npos);
  }
}

}  // namespace
}  // namespace shardlm
