#include "coordinator/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "coordinator/grammar/token_constraint.h"

namespace shardlm {
namespace {

// The logit constrained sampling gives a forbidden token (it sorts last).
constexpr float kMasked = -std::numeric_limits<float>::infinity();

}  // namespace

Sampler::Sampler(const SamplingParams& params)
    : params_(params), rng_state_(params.seed ^ 0x9E3779B97F4A7C15ull) {}

void Sampler::Accept(int32_t token) {
  if (params_.penalty_window <= 0) return;
  window_.push_back(token);
  ++counts_[token];
  if (static_cast<int>(window_.size()) > params_.penalty_window) {
    const int32_t old = window_.front();
    window_.pop_front();
    if (--counts_[old] == 0) counts_.erase(old);
  }
}

// splitmix64: tiny, fast, and the same on every platform (std::
// distributions are not), so a seed reproduces a generation anywhere.
double Sampler::NextUniform() {
  uint64_t z = (rng_state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

void Sampler::ApplyPenalties(std::vector<Candidate>* c) const {
  for (const auto& [token, bias] : params_.logit_bias) (*c)[token].logit += bias;
  if (params_.repetition_penalty == 1.0f && params_.presence_penalty == 0.0f &&
      params_.frequency_penalty == 0.0f) {
    return;
  }
  for (const auto& [token, count] : counts_) {
    float& l = (*c)[token].logit;
    // llama.cpp's rule: shrink the logit towards "less likely" whatever its sign.
    l = l > 0 ? l / params_.repetition_penalty : l * params_.repetition_penalty;
    l -= static_cast<float>(count) * params_.frequency_penalty + params_.presence_penalty;
  }
}

double TokenDistribution::Prob(int32_t token) const {
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] == token) return weights[i] / total;
  }
  return 0;
}

TokenDistribution Sampler::Distribution(absl::Span<const float> logits, const TokenMask* allowed) {
  const int n = static_cast<int>(logits.size());
  candidates_.resize(n);
  for (int i = 0; i < n; ++i) candidates_[i] = {i, logits[i]};
  ApplyPenalties(&candidates_);
  // Constrained sampling: forbidden tokens get -inf, so every step below
  // (argmax, sort, top-k/p, min-p, the draw) sees only the allowed ones.
  if (allowed != nullptr) {
    for (int i = 0; i < n; ++i) {
      if (!allowed->Test(i)) candidates_[i].logit = kMasked;
    }
  }
  TokenDistribution d;
  if (params_.temperature <= 0.0f) {
    int32_t chosen = 0;
    for (int i = 1; i < n; ++i) {
      if (candidates_[i].logit > candidates_[chosen].logit) chosen = i;
    }
    d.tokens = {chosen};
    d.weights = {1.0};
    d.total = 1.0;
    return d;
  }
  std::vector<Candidate>& c = candidates_;
  auto by_logit = [](const Candidate& a, const Candidate& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.token < b.token);
  };
  size_t keep = c.size();
  if (params_.top_k > 0 && static_cast<size_t>(params_.top_k) < keep) {
    keep = params_.top_k;
    std::partial_sort(c.begin(), c.begin() + keep, c.end(), by_logit);
  } else {
    std::sort(c.begin(), c.end(), by_logit);
  }
  // Masked tokens (-inf) sort last: never keep them, even as the draw's fallback.
  while (keep > 1 && c[keep - 1].logit == kMasked) --keep;
  // Probabilities of the survivors (untempered), for top-p and min-p.
  std::vector<double>& p = d.weights;
  p.resize(keep);
  double sum = 0;
  for (size_t i = 0; i < keep; ++i) sum += p[i] = std::exp(double{c[i].logit} - c[0].logit);
  if (params_.top_p < 1.0f) {
    double cum = 0;
    for (size_t i = 0; i < keep; ++i) {
      cum += p[i] / sum;
      if (cum >= params_.top_p) {
        keep = i + 1;
        break;
      }
    }
  }
  if (params_.min_p > 0.0f) {
    size_t i = 1;  // p[0] is the maximum, always kept
    while (i < keep && p[i] >= params_.min_p * p[0]) ++i;
    keep = i;
  }
  // Temperature.
  p.resize(keep);
  d.tokens.resize(keep);
  for (size_t i = 0; i < keep; ++i) {
    d.tokens[i] = c[i].token;
    d.total += p[i] = std::exp((double{c[i].logit} - c[0].logit) / params_.temperature);
  }
  return d;
}

SampledToken Sampler::Sample(absl::Span<const float> logits, const TokenMask* allowed) {
  const TokenDistribution d = Distribution(logits, allowed);
  int32_t chosen = d.tokens[0];
  if (params_.temperature > 0.0f) {
    double u = NextUniform() * d.total;
    size_t pick = d.tokens.size() - 1;
    for (size_t i = 0; i < d.tokens.size(); ++i) {
      if (u < d.weights[i]) {
        pick = i;
        break;
      }
      u -= d.weights[i];
    }
    chosen = d.tokens[pick];
  }
  return WithLogprobs(logits, chosen);
}

SampledToken Sampler::WithLogprobs(absl::Span<const float> logits, int32_t chosen) const {
  const int n = static_cast<int>(logits.size());
  // Log-probabilities of the model's own distribution (raw logits).
  SampledToken out;
  out.token = chosen;
  float max = logits[0];
  for (int i = 1; i < n; ++i) max = std::max(max, logits[i]);
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += std::exp(double{logits[i]} - max);
  const double log_z = max + std::log(sum);
  out.logprob = static_cast<float>(logits[chosen] - log_z);
  if (params_.top_logprobs > 0) {
    std::vector<int32_t> idx(n);
    for (int i = 0; i < n; ++i) idx[i] = i;
    const int k = std::min(params_.top_logprobs, n);
    std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
    for (int i = 0; i < k; ++i) {
      out.top_logprobs.push_back({idx[i], static_cast<float>(logits[idx[i]] - log_z)});
    }
  }
  return out;
}

}  // namespace shardlm
