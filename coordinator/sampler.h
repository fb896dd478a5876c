// Turns one row of logits into the next token: logit bias and penalties,
// then (unless greedy) top-k, top-p, min-p, temperature and a draw from a
// seeded generator — llama.cpp's default order.
#ifndef SHARDLM_COORDINATOR_SAMPLER_H_
#define SHARDLM_COORDINATOR_SAMPLER_H_

#include <cstdint>
#include <deque>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"
#include "coordinator/sampling_params.h"

namespace shardlm {

class TokenMask;  // coordinator/grammar/token_constraint.h

struct TokenLogprob {
  int32_t token = 0;
  float logprob = 0.0f;
};

// The distribution a Sampler draws from after every transform (bias,
// penalties, mask, top-k, top-p, min-p, temperature): the kept tokens, most
// likely first, with unnormalized weights. Greedy params give a point mass.
struct TokenDistribution {
  std::vector<int32_t> tokens;
  std::vector<double> weights;
  double total = 0;
  double Prob(int32_t token) const;  // 0 for a token not kept
};

struct SampledToken {
  int32_t token = 0;
  float logprob = 0.0f;                    // of the model's distribution (raw logits)
  std::vector<TokenLogprob> top_logprobs;  // params.top_logprobs best alternatives
};

class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);

  // Records tokens the penalties see (the prompt, then each sampled token).
  void Accept(int32_t token);
  // Samples from `logits` (n_vocab values; not modified). With `allowed`
  // (constrained sampling), only tokens it holds can be chosen; it must hold
  // at least one. Log-probabilities stay those of the raw logits.
  SampledToken Sample(absl::Span<const float> logits, const TokenMask* allowed = nullptr);
  // The distribution Sample draws from (speculative sampling needs it whole).
  TokenDistribution Distribution(absl::Span<const float> logits,
                                 const TokenMask* allowed = nullptr);
  // `token` with its log-probability (and top alternatives) under the raw logits.
  SampledToken WithLogprobs(absl::Span<const float> logits, int32_t token) const;
  const SamplingParams& params() const { return params_; }

 private:
  struct Candidate {
    int32_t token;
    float logit;
  };
  void ApplyPenalties(std::vector<Candidate>* c) const;
  double NextUniform();  // [0, 1), 53 random bits

  SamplingParams params_;
  uint64_t rng_state_;
  std::deque<int32_t> window_;
  absl::flat_hash_map<int32_t, int> counts_;  // occurrences within window_
  std::vector<Candidate> candidates_;         // reused across calls
};

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_SAMPLER_H_
