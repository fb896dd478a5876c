// Speculative decoding's parts without a model: the prompt-lookup drafter
// (what it proposes, that its index is incremental and that a K-token draft
// is K one-token proposals) and the acceptance rule (greedy, and a
// statistical check that speculative sampling's output has distribution p).
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "coordinator/sampler.h"
#include "coordinator/speculative/acceptance.h"
#include "coordinator/speculative/ngram_drafter.h"

namespace shardlm {
namespace {

TEST(NgramDrafterTest, ProposesWhatFollowedTheLastTrigram) {
  NgramDrafter d;
  // "1 2 3 4 5 6 | 9 1 2 3": the suffix 1 2 3 occurred before, followed by 4 5 6 9 1 ...
  const std::vector<int32_t> t = {1, 2, 3, 4, 5, 6, 9, 1, 2, 3};
  d.Sync(t);
  EXPECT_EQ(d.Propose(3), (std::vector<int32_t>{4, 5, 6}));
  EXPECT_EQ(d.ProposeNext(), 4);
  EXPECT_EQ(d.seen(), static_cast<int>(t.size()));  // drafting left the history alone
}

TEST(NgramDrafterTest, PrefersTheLongestSuffixThenTheMostRecentOccurrence) {
  NgramDrafter d;
  // Bigram "7 8" was followed by 1, later by 2; unigram "8" last by 5.
  // Trigram "6 7 8" occurred once, followed by 1.
  d.Sync({6, 7, 8, 1, 0, 7, 8, 2, 0, 8, 5, 0, 6, 7, 8});
  EXPECT_EQ(d.ProposeNext(), 1);  // the trigram wins over the more recent bigram
  NgramDrafter e;
  e.Sync({3, 7, 8, 1, 0, 7, 8, 2, 0, 8, 5, 0, 6, 7, 8});
  EXPECT_EQ(e.ProposeNext(), 2);  // no trigram match: the latest bigram's follower
  NgramDrafter f;
  f.Sync({3, 8, 5, 0, 9, 8});
  EXPECT_EQ(f.ProposeNext(), 5);  // unigram
}

TEST(NgramDrafterTest, NothingToProposeWithoutAnEarlierOccurrence) {
  NgramDrafter d;
  d.Sync({1, 2, 3, 4});
  EXPECT_TRUE(d.Propose(4).empty());
  EXPECT_EQ(d.ProposeNext(), -1);
  NgramDrafter empty;
  EXPECT_TRUE(empty.Propose(4).empty());
}

TEST(NgramDrafterTest, ALoopIsDraftedPastTheEndOfTheHistory) {
  NgramDrafter d;
  d.Sync({5, 1, 2, 1, 2, 1, 2});
  // The period-2 loop continues through the drafted tokens themselves.
  EXPECT_EQ(d.Propose(5), (std::vector<int32_t>{1, 2, 1, 2, 1}));
}

TEST(NgramDrafterTest, EachDraftTokenIsWhatTheDrafterProposesOnceThePreviousOnesAreIn) {
  // Pseudo-random history over a small alphabet (many partial matches).
  std::vector<int32_t> h;
  uint64_t x = 12345;
  for (int i = 0; i < 400; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    h.push_back(static_cast<int32_t>((x >> 33) % 6));
  }
  NgramDrafter inc;
  for (size_t n = 1; n <= h.size(); ++n) {
    inc.Sync(absl::MakeConstSpan(h).first(n));  // one token at a time
    const std::vector<int32_t> draft = inc.Propose(6);
    // Replaying the draft as if accepted gives the same proposals one by one.
    NgramDrafter fresh;  // and a drafter built at once agrees with the incremental one
    std::vector<int32_t> ext(h.begin(), h.begin() + n);
    fresh.Sync(ext);
    for (size_t i = 0; i < draft.size(); ++i) {
      ASSERT_EQ(fresh.ProposeNext(), draft[i]) << "history " << n << ", draft token " << i;
      ext.push_back(draft[i]);
      fresh.Sync(ext);
    }
    if (draft.size() < 6) {
      EXPECT_EQ(fresh.ProposeNext(), -1);
    }
  }
}

TokenDistribution Dist(std::vector<int32_t> tokens, std::vector<double> weights) {
  TokenDistribution d;
  d.tokens = std::move(tokens);
  d.weights = std::move(weights);
  for (double w : d.weights) d.total += w;
  return d;
}

TEST(AcceptanceTest, GreedyAcceptsExactlyTheArgmax) {
  const TokenDistribution p = Dist({7}, {1.0});  // greedy params: a point mass
  for (double u : {0.0, 0.5, 0.999}) {
    EXPECT_EQ(SpeculativeSample(p, 7, nullptr, u, u), 7);
    EXPECT_EQ(SpeculativeSample(p, 3, nullptr, u, u), 7);   // rejected: the argmax instead
    EXPECT_EQ(SpeculativeSample(p, -1, nullptr, u, u), 7);  // nothing drafted
  }
}

TEST(AcceptanceTest, RejectedDraftIsNeverTheReplacementOfAPointMassDraft) {
  const TokenDistribution p = Dist({0, 1, 2}, {0.5, 0.3, 0.2});
  for (int i = 0; i < 1000; ++i) {
    const double u = PositionUniform(9, i, 0), v = PositionUniform(9, i, 1);
    const int32_t t = SpeculativeSample(p, 1, nullptr, u, v);
    if (u >= 0.3) {
      EXPECT_NE(t, 1) << "rejected at u=" << u;  // residual excludes the draft
    } else {
      EXPECT_EQ(t, 1) << "accepted at u=" << u;
    }
  }
}

TEST(AcceptanceTest, PositionUniformIsDeterministicAndSpreadOut) {
  EXPECT_EQ(PositionUniform(1, 2, 0), PositionUniform(1, 2, 0));
  EXPECT_NE(PositionUniform(1, 2, 0), PositionUniform(1, 2, 1));
  EXPECT_NE(PositionUniform(1, 2, 0), PositionUniform(1, 3, 0));
  EXPECT_NE(PositionUniform(1, 2, 0), PositionUniform(2, 2, 0));
  double sum = 0;
  for (int i = 0; i < 10000; ++i) {
    const double u = PositionUniform(5, i, 0);
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    sum += u;
  }
  EXPECT_NEAR(sum / 10000, 0.5, 0.02);  // sd of the mean 0.0029: a 7-sigma margin
}

// Pearson's chi-square of `counts` against p. Under the null hypothesis
// (the output has distribution p) it follows chi-square with
// p.tokens.size() - 1 degrees of freedom.
double ChiSquare(const std::vector<int>& counts, const TokenDistribution& p, int n) {
  double chi2 = 0;
  for (size_t i = 0; i < p.tokens.size(); ++i) {
    const double expected = n * p.weights[i] / p.total;
    chi2 += (counts[i] - expected) * (counts[i] - expected) / expected;
  }
  return chi2;
}

// The draws are fixed (seeded uniforms), so each case either passes or
// fails every run; the threshold is the chi-square quantile for a 1e-6
// false-failure rate with 5 degrees of freedom (35.888), i.e. a correct
// rule passes for all but one seed in a million.
constexpr double kChi2Df5Alpha1e6 = 35.888;
constexpr int kDraws = 200000;

TEST(AcceptanceTest, SpeculativeSamplingWithPointMassDraftsHasDistributionP) {
  const TokenDistribution p = Dist({10, 11, 12, 13, 14, 15}, {0.30, 0.25, 0.2, 0.12, 0.08, 0.05});
  // Drafts: a likely token, an unlikely one, one outside p's support.
  for (int32_t draft : {10, 15, 99}) {
    std::vector<int> counts(6);
    for (int i = 0; i < kDraws; ++i) {
      const int32_t t = SpeculativeSample(p, draft, nullptr, PositionUniform(draft, i, 0),
                                          PositionUniform(draft, i, 1));
      ASSERT_GE(t, 10);
      ASSERT_LE(t, 15);
      ++counts[t - 10];
    }
    EXPECT_LT(ChiSquare(counts, p, kDraws), kChi2Df5Alpha1e6) << "draft " << draft;
  }
}

TEST(AcceptanceTest, SpeculativeSamplingWithADraftDistributionHasDistributionP) {
  const TokenDistribution p = Dist({0, 1, 2, 3, 4, 5}, {0.30, 0.25, 0.2, 0.12, 0.08, 0.05});
  // q far from p: favours what p finds unlikely.
  const TokenDistribution q = Dist({5, 4, 3, 2, 1, 0}, {0.4, 0.3, 0.1, 0.1, 0.05, 0.05});
  std::vector<int> counts(6), accepted(1);
  for (int i = 0; i < kDraws; ++i) {
    const int32_t d = DrawFrom(q, PositionUniform(77, i, 2));  // the drafter samples from q
    const int32_t t =
        SpeculativeSample(p, d, &q, PositionUniform(77, i, 0), PositionUniform(77, i, 1));
    ++counts[t];
    accepted[0] += t == d;
  }
  EXPECT_LT(ChiSquare(counts, p, kDraws), kChi2Df5Alpha1e6);
  // Acceptance rate sum_x min(p, q) = 0.05+0.05+0.1+0.1+0.08+0.05 = 0.43.
  EXPECT_NEAR(static_cast<double>(accepted[0]) / kDraws, 0.43, 0.01);  // sd 0.0011
}

TEST(AcceptanceTest, AWrongRuleFailsTheChiSquareCheck) {
  // The check can fail: "always take the draft when it is in p's support"
  // gives a very different distribution.
  const TokenDistribution p = Dist({0, 1, 2, 3, 4, 5}, {0.30, 0.25, 0.2, 0.12, 0.08, 0.05});
  std::vector<int> counts(6);
  for (int i = 0; i < kDraws; ++i) {
    const int32_t d = static_cast<int32_t>(PositionUniform(3, i, 2) * 6);
    ++counts[PositionUniform(3, i, 0) < 0.5 ? d : DrawFrom(p, PositionUniform(3, i, 1))];
  }
  EXPECT_GT(ChiSquare(counts, p, kDraws), kChi2Df5Alpha1e6);
}

TEST(AcceptanceTest, SamplerDistributionIsWhatSampleDrawsFrom) {
  SamplingParams params;
  params.temperature = 0.9f;
  params.top_k = 4;
  params.top_p = 0.97f;
  params.min_p = 0.0f;
  const std::vector<float> logits = {1.0f, 3.0f, 2.5f, -1.0f, 0.0f, 2.9f};
  Sampler dist_sampler(params);
  const TokenDistribution p = dist_sampler.Distribution(logits);
  ASSERT_LE(p.tokens.size(), 4u);
  std::vector<int> counts(p.tokens.size());
  constexpr int kSamples = 50000;
  for (int i = 0; i < kSamples; ++i) {
    params.seed = i;
    Sampler s(params);
    const int32_t t = s.Sample(logits).token;
    size_t k = 0;
    while (k < p.tokens.size() && p.tokens[k] != t) ++k;
    ASSERT_LT(k, p.tokens.size()) << "sampled token " << t << " is outside the distribution";
    ++counts[k];
  }
  // Degrees of freedom = kept tokens - 1 (at most 3; 35.888 is the df-5
  // quantile, so the false-failure rate is below 1e-6 here too).
  EXPECT_LT(ChiSquare(counts, p, kSamples), kChi2Df5Alpha1e6);
}

}  // namespace
}  // namespace shardlm
