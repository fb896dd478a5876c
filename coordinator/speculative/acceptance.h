// Verifying a draft against the target model: which of the drafted tokens a
// sequence keeps, and the token that follows them.
//
// The rule (Leviathan et al. 2023, Chen et al. 2023): at each verified
// position, with p the target's distribution there (after every transform
// the sampler applies: logit bias, penalties on the history so far, top-k,
// top-p, min-p, temperature) and q the drafter's, accept the draft d with
// probability min(1, p(d)/q(d)); on rejection draw from normalize(max(0,
// p - q)) and stop; after the last draft the bonus token is a draw from p.
// Each token then has distribution p exactly, whatever the drafter
// proposed. Greedy params make p a point mass at the argmax, so the rule
// reduces to "accept while the argmax equals the draft".
//
// Determinism: the uniforms are a function of the request's seed and the
// token's position (PositionUniform), not a stream whose use depends on how
// many drafts a step carried, and the drafter's proposal for a position is a
// function of the history (ngram_drafter.h) — so a seed gives the same text
// whatever else was in the batch and however the token budget cut drafts.
#ifndef SHARDLM_COORDINATOR_SPECULATIVE_ACCEPTANCE_H_
#define SHARDLM_COORDINATOR_SPECULATIVE_ACCEPTANCE_H_

#include <cstdint>

#include "coordinator/sampler.h"

namespace shardlm {

// A uniform in [0, 1) from (seed, position, stream): splitmix64 of a mix of
// them, 53 bits. Streams: 0 the acceptance test / plain draw, 1 the residual draw.
double PositionUniform(uint64_t seed, int64_t position, int stream);

// Draws from `p` by inverse CDF in its order with `u` in [0, 1).
int32_t DrawFrom(const TokenDistribution& p, double u);

// The token at one verified position. `draft` < 0: nothing was drafted
// there (a plain draw from p with u_accept). `q` null: the drafter's
// distribution is a point mass at `draft` (n-gram and greedy drafts).
// The draft was accepted iff the result equals it.
int32_t SpeculativeSample(const TokenDistribution& p, int32_t draft, const TokenDistribution* q,
                          double u_accept, double u_residual);

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_SPECULATIVE_ACCEPTANCE_H_
