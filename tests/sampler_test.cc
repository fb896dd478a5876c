#include "coordinator/sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "coordinator/stop_matcher.h"

namespace shardlm {
namespace {

std::vector<float> SomeLogits() { return {1.0f, 3.0f, 2.5f, -1.0f, 0.0f, 2.9f}; }

TEST(SamplerTest, GreedyPicksTheArgmax) {
  Sampler s(SamplingParams::Greedy());
  EXPECT_EQ(s.Sample(SomeLogits()).token, 1);
}

// With seeds 0..49, `p` samples SomeLogits()'s argmax every time.
void ExpectGreedyWhateverTheSeed(SamplingParams p) {
  for (uint64_t seed = 0; seed < 50; ++seed) {
    p.seed = seed;
    Sampler s(p);
    EXPECT_EQ(s.Sample(SomeLogits()).token, 1) << "seed " << seed;
  }
}

TEST(SamplerTest, TopK1IsGreedyWhateverTheSeed) {
  SamplingParams p;
  p.temperature = 1.5f;
  p.top_k = 1;
  ExpectGreedyWhateverTheSeed(p);
}

TEST(SamplerTest, TinyTemperatureIsGreedy) {
  SamplingParams p;
  p.temperature = 1e-3f;
  p.top_k = 0;
  p.top_p = 1;
  p.min_p = 0;
  ExpectGreedyWhateverTheSeed(p);
}

// How often each token is drawn from `logits` with seeds 0..n_seeds-1.
std::map<int, int> DrawsBySeed(SamplingParams p, const std::vector<float>& logits, int n_seeds) {
  std::map<int, int> seen;
  for (uint64_t seed = 0; seed < static_cast<uint64_t>(n_seeds); ++seed) {
    p.seed = seed;
    Sampler s(p);
    ++seen[s.Sample(logits).token];
  }
  return seen;
}

TEST(SamplerTest, TopPKeepsTheSmallestSetWithThatMass) {
  // Probabilities 0.5, 0.3, 0.2: top_p 0.75 keeps the first two only.
  std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  SamplingParams p;
  p.temperature = 1;
  p.top_k = 0;
  p.min_p = 0;
  p.top_p = 0.75f;
  std::map<int, int> seen = DrawsBySeed(p, logits, 2000);
  EXPECT_EQ(seen.count(2), 0u);
  // Renormalised 0.5/0.8 = 62.5% for token 0.
  EXPECT_NEAR(seen[0] / 2000.0, 0.625, 0.04);
}

TEST(SamplerTest, MinPDropsUnlikelyTokens) {
  std::vector<float> logits = {std::log(0.6f), std::log(0.35f), std::log(0.05f)};
  SamplingParams p;
  p.temperature = 1;
  p.top_k = 0;
  p.top_p = 1;
  p.min_p = 0.1f;  // 0.05 < 0.1 * 0.6
  EXPECT_EQ(DrawsBySeed(p, logits, 500).count(2), 0u);
}

TEST(SamplerTest, SameSeedSameSequenceDifferentSeedDiffers) {
  std::vector<float> flat(100, 0.0f);
  SamplingParams p;
  p.temperature = 1;
  p.top_k = 0;
  p.top_p = 1;
  p.min_p = 0;
  auto draw = [&](uint64_t seed) {
    p.seed = seed;
    Sampler s(p);
    std::vector<int> out;
    for (int i = 0; i < 20; ++i) out.push_back(s.Sample(flat).token);
    return out;
  };
  EXPECT_EQ(draw(7), draw(7));
  EXPECT_NE(draw(7), draw(8));
}

TEST(SamplerTest, PenaltiesFollowLlamaCppRules) {
  SamplingParams p = SamplingParams::Greedy();
  p.repetition_penalty = 2.0f;
  Sampler s(p);
  s.Accept(1);  // token 1 (logit 3.0) seen: 3.0 / 2 = 1.5 < 2.9
  EXPECT_EQ(s.Sample(SomeLogits()).token, 5);

  SamplingParams q = SamplingParams::Greedy();
  q.frequency_penalty = 0.3f;
  Sampler f(q);
  f.Accept(1);
  EXPECT_EQ(f.Sample(SomeLogits()).token, 5);  // 3.0 - 0.3 = 2.7 < 2.9
  SamplingParams r = SamplingParams::Greedy();
  r.presence_penalty = 0.05f;
  Sampler pr(r);
  pr.Accept(1);
  EXPECT_EQ(pr.Sample(SomeLogits()).token, 1);  // 2.95 > 2.9
  pr.Accept(1);
  pr.Accept(1);
  EXPECT_EQ(pr.Sample(SomeLogits()).token, 1);  // presence counts once
}

TEST(SamplerTest, PenaltyWindowForgetsOldTokens) {
  SamplingParams p = SamplingParams::Greedy();
  p.repetition_penalty = 2.0f;
  p.penalty_window = 2;
  Sampler s(p);
  s.Accept(1);
  s.Accept(3);
  s.Accept(4);  // token 1 left the window
  EXPECT_EQ(s.Sample(SomeLogits()).token, 1);
}

TEST(SamplerTest, LogitBiasAndLogprobs) {
  SamplingParams p = SamplingParams::Greedy();
  p.logit_bias = {{3, 10.0f}};
  p.top_logprobs = 2;
  Sampler s(p);
  SampledToken t = s.Sample(SomeLogits());
  EXPECT_EQ(t.token, 3);
  ASSERT_EQ(t.top_logprobs.size(), 2u);
  EXPECT_EQ(t.top_logprobs[0].token, 1);  // logprobs are of the model's own distribution
  double z = 0;
  for (float l : SomeLogits()) z += std::exp(l);
  EXPECT_NEAR(t.top_logprobs[0].logprob, 3.0 - std::log(z), 1e-5);
  EXPECT_NEAR(t.logprob, -1.0 - std::log(z), 1e-5);
}

TEST(SamplingParamsTest, ValidationNamesTheField) {
  SamplingParams p;
  p.top_p = 0;
  EXPECT_NE(p.Validate(10).message().find("top_p"), std::string::npos);
  p = SamplingParams();
  p.temperature = -1;
  EXPECT_NE(p.Validate(10).message().find("temperature"), std::string::npos);
  p = SamplingParams();
  p.logit_bias = {{10, 1.0f}};
  EXPECT_NE(p.Validate(10).message().find("logit_bias"), std::string::npos);
  p = SamplingParams();
  p.max_tokens = 0;
  EXPECT_NE(p.Validate(10).message().find("max_tokens"), std::string::npos);
  EXPECT_TRUE(SamplingParams().Validate(10).ok());
}

TEST(StopMatcherTest, StopSpanningPiecesIsFoundAndNeverEmitted) {
  StopMatcher m({"<end>", "\n\n"});
  std::string out = m.Push("Hello <e");
  EXPECT_EQ(out, "Hello ");
  out += m.Push("n");
  out += m.Push("d> more");
  EXPECT_TRUE(m.stopped());
  EXPECT_EQ(out, "Hello ");
  EXPECT_EQ(m.Push("x"), "");
}

TEST(StopMatcherTest, FalseStartIsReleased) {
  StopMatcher m({"<end>"});
  std::string out = m.Push("a <en");
  out += m.Push("try");
  EXPECT_FALSE(m.stopped());
  EXPECT_EQ(out + m.Flush(), "a <entry");
}

}  // namespace
}  // namespace shardlm
