// The request the end-to-end tests send to shardlm.v1.ShardLM/Generate.
#ifndef SHARDLM_TESTS_GREEDY_REQUEST_H_
#define SHARDLM_TESTS_GREEDY_REQUEST_H_

#include <cstdint>

#include "shardlm/v1/shardlm.pb.h"

namespace shardlm::testing {

// Greedy decoding of exactly `max_tokens` tokens (EOS ignored); the caller
// sets the prompt.
inline v1::GenerateRequest GreedyRequest(int32_t max_tokens) {
  v1::GenerateRequest req;
  req.mutable_sampling()->set_temperature(0);
  req.mutable_sampling()->set_max_tokens(max_tokens);
  req.mutable_sampling()->set_ignore_eos(true);
  return req;
}

}  // namespace shardlm::testing

#endif  // SHARDLM_TESTS_GREEDY_REQUEST_H_
