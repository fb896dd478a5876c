// Per-request sampling parameters, kept apart from load-time options.
#ifndef SHARDLM_COORDINATOR_SAMPLING_PARAMS_H_
#define SHARDLM_COORDINATOR_SAMPLING_PARAMS_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "coordinator/grammar/grammar.h"

namespace shardlm {

struct SamplingParams {
  float temperature = 0.8f;         // <= 0: greedy (argmax)
  int top_k = 40;                   // <= 0: off
  float top_p = 0.95f;              // 1: off
  float min_p = 0.05f;              // 0: off
  float repetition_penalty = 1.0f;  // 1: off (llama.cpp: divide positive logits, multiply negative)
  float presence_penalty = 0.0f;    // subtracted once from every token seen in the window
  float frequency_penalty = 0.0f;   // subtracted per occurrence in the window
  int penalty_window = 64;          // last N tokens (prompt included) the penalties look at
  uint64_t seed = 0;                // same seed and parameters -> same output
  int max_tokens = 128;             // generated tokens at most
  std::vector<std::string> stop;    // stop strings (may span tokens), not emitted
  bool ignore_eos = false;          // keep going past end-of-generation tokens
  std::vector<std::pair<int32_t, float>> logit_bias;  // added to the raw logit
  int top_logprobs = 0;             // alternatives reported per token (0..20)
  // Speculative decoding, where the engine has it on (--spec-ngram): false
  // turns it off for this request.
  bool speculation = true;
  // Constrained sampling (coordinator/grammar/): only tokens that keep the
  // output a prefix of a sentence of this grammar are sampled, end-of-text
  // only where the grammar may end, and generation stops once it is
  // complete. Built by ParseGbnf / CompileJsonSchema / JsonObjectGrammar;
  // nullptr: unconstrained.
  GrammarPtr grammar;

  // Greedy decoding: argmax, no randomness.
  static SamplingParams Greedy() {
    SamplingParams p;
    p.temperature = 0.0f;
    return p;
  }

  // INVALID_ARGUMENT naming the first field out of range.
  absl::Status Validate(int n_vocab) const;
};

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_SAMPLING_PARAMS_H_
