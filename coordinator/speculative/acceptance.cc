#include "coordinator/speculative/acceptance.h"

#include <algorithm>
#include <vector>

namespace shardlm {

double PositionUniform(uint64_t seed, int64_t position, int stream) {
  uint64_t z = seed ^ 0xD1B54A32D192ED03ull;
  z += (static_cast<uint64_t>(position) * 2 + static_cast<uint64_t>(stream) + 1) *
       0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return static_cast<double>(z >> 11) * 0x1.0p-53;
}

int32_t DrawFrom(const TokenDistribution& p, double u) {
  double x = u * p.total;
  for (size_t i = 0; i < p.tokens.size(); ++i) {
    if (x < p.weights[i]) return p.tokens[i];
    x -= p.weights[i];
  }
  return p.tokens.back();  // rounding left x just above the last weight
}

int32_t SpeculativeSample(const TokenDistribution& p, int32_t draft, const TokenDistribution* q,
                          double u_accept, double u_residual) {
  if (draft < 0) return DrawFrom(p, u_accept);
  const double p_d = p.Prob(draft);
  const double q_d = q != nullptr ? q->Prob(draft) : 1.0;
  // Accept with probability min(1, p(d)/q(d)); q(d) = 0 would mean the
  // drafter proposed what it cannot: treat it as certain acceptance of p(d) > 0.
  if (p_d > 0 && (q_d <= 0 || u_accept * q_d < p_d)) return draft;
  // Rejected: draw from normalize(max(0, p - q)).
  TokenDistribution residual;
  for (size_t i = 0; i < p.tokens.size(); ++i) {
    const int32_t t = p.tokens[i];
    const double q_t = q != nullptr ? q->Prob(t) : (t == draft ? 1.0 : 0.0);
    const double r = std::max(0.0, p.weights[i] / p.total - q_t);
    if (r <= 0) continue;
    residual.tokens.push_back(t);
    residual.weights.push_back(r);
    residual.total += r;
  }
  // p == q leaves nothing (and then rejection had probability 0): draw from p.
  if (residual.tokens.empty()) return DrawFrom(p, u_residual);
  return DrawFrom(residual, u_residual);
}

}  // namespace shardlm
