// Our forward pass against llama.cpp's own outputs (../shared/golden) for
// every model and prompt there: logits at every prompt position, greedy
// continuations teacher-forced and free-running.
#include <gtest/gtest.h>

#include <cmath>

#include "tests/golden.h"

namespace shardlm::testing {
namespace {

// A greedy decision whose top-1/top-2 margin is below this may legitimately
// flip under a tiny numeric difference (goldens record every margin).
constexpr double kNearTie = 0.02;

// Allowed max |logit difference| against llama.cpp, per model family.
// - F32 weights with an f32 KV cache: both sides compute exact float32
//   arithmetic and differ only in summation order: the 1e-3.
// - Quantized weights: we quantize activations exactly as llama.cpp does
//   (q8_0 / q8_1 / q8_K) and the integer block dot products are exact, so
//   what remains is float rounding in the per-block scale products and sums
//   (ggml accumulates in a different order with FMA) — amplified through
//   four layers of random weights whose logits have std ~3.
// - mini-shape goldens use llama.cpp's f16 KV cache; we store f16 too and
//   round the query and attention weights to f16 as ggml's mul_mat does.
float Tolerance(const Golden& g) {
  if (g.name.find("-f32.") != std::string::npos || g.name.rfind("stories260K", 0) == 0) {
    return 1e-3f;
  }
  return 5e-2f;
}

class GoldenTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    golden_ = LoadGolden(GetParam());
    stage_ = OpenStage(golden_.model_path, golden_.kv_cache == "f32" ? KvType::kF32 : KvType::kF16);
    ASSERT_NE(stage_, nullptr);
    ASSERT_EQ(stage_->info().n_vocab, golden_.n_vocab);
  }
  Golden golden_;
  std::unique_ptr<LlamaStage> stage_;
};

TEST_P(GoldenTest, PromptLogitsMatchLlamaCpp) {
  const int v = golden_.n_vocab;
  const int n = static_cast<int>(golden_.prompt_tokens.size());
  std::vector<float> logits = BatchLogits(stage_.get(), 1, golden_.prompt_tokens);
  ASSERT_EQ(logits.size(), static_cast<size_t>(n) * v);
  const float tol = Tolerance(golden_);
  EXPECT_LE(MaxAbsDiff(&logits[(n - 1) * v], golden_.last_logits.data(), v), tol)
      << "last prompt position";
  if (!golden_.prompt_logits.empty()) {
    ASSERT_EQ(golden_.prompt_logits.size(), logits.size());
    for (int p = 0; p < n; ++p) {
      EXPECT_LE(MaxAbsDiff(&logits[p * v], &golden_.prompt_logits[p * v], v), tol)
          << "prompt position " << p;
    }
  }
}

// Feeds llama.cpp's own greedy tokens back (teacher forcing) so every step
// stays comparable: our argmax must equal its token wherever the decision was
// not a near-tie. Also checks incremental decoding through the KV cache.
TEST_P(GoldenTest, GreedyTeacherForcedMatchesLlamaCpp) {
  const int v = golden_.n_vocab;
  std::vector<int32_t> tokens = golden_.prompt_tokens;
  tokens.insert(tokens.end(), golden_.greedy_tokens.begin(), golden_.greedy_tokens.end() - 1);
  std::vector<float> logits = ChunkedLogits(stage_.get(), 2, tokens, 1);
  ASSERT_EQ(logits.size(), tokens.size() * v);
  const size_t n_prompt = golden_.prompt_tokens.size();
  int checked = 0;
  for (size_t i = 0; i < golden_.greedy_tokens.size(); ++i) {
    if (golden_.greedy_margins[i] < kNearTie) continue;
    EXPECT_EQ(Argmax(&logits[(n_prompt - 1 + i) * v], v), golden_.greedy_tokens[i])
        << "greedy step " << i << " (margin " << golden_.greedy_margins[i] << ")";
    ++checked;
  }
  EXPECT_GT(checked, static_cast<int>(golden_.greedy_tokens.size()) / 2);
}

// Our own greedy loop: equal to llama.cpp's continuation token for token,
// up to a divergence right after a recorded near-tie.
TEST_P(GoldenTest, FreeRunningGreedyMatchesLlamaCpp) {
  const int v = golden_.n_vocab;
  std::vector<float> logits = BatchLogits(stage_.get(), 3, golden_.prompt_tokens);
  ASSERT_FALSE(logits.empty());
  int next = Argmax(&logits[(golden_.prompt_tokens.size() - 1) * v], v);
  for (size_t i = 0; i < golden_.greedy_tokens.size(); ++i) {
    if (next != golden_.greedy_tokens[i]) {
      EXPECT_LT(golden_.greedy_margins[i], kNearTie)
          << "diverged at step " << i << ": ours " << next << ", llama.cpp "
          << golden_.greedy_tokens[i];
      return;
    }
    ForwardRequest r;
    r.seq_ids = {3};
    r.positions = {static_cast<int32_t>(golden_.prompt_tokens.size() + i)};
    r.tokens = {next};
    ForwardResult res;
    ASSERT_TRUE(stage_->Forward(r, &res).ok());
    next = Argmax(res.logits.data(), v);
  }
}

INSTANTIATE_TEST_SUITE_P(AllGoldens, GoldenTest, ::testing::ValuesIn(GoldenNames()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string n = info.param;
                           for (char& c : n) {
                             if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
                           }
                           return n;
                         });

}  // namespace
}  // namespace shardlm::testing
