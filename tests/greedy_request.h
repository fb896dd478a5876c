// The request the end-to-end tests send to shardlm.v1.ShardLM/Generate, and
// the tokens such a greedy request streams back.
#ifndef SHARDLM_TESTS_GREEDY_REQUEST_H_
#define SHARDLM_TESTS_GREEDY_REQUEST_H_

#include <gtest/gtest.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <vector>

#include "shardlm/v1/shardlm.grpc.pb.h"

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

// The token ids `stub` streams for a GreedyRequest(n) after `prompt` (one
// minute at most; a failed call is a test failure).
inline std::vector<int32_t> GreedyOverGrpc(v1::ShardLM::Stub* stub,
                                           const std::vector<int32_t>& prompt, int n) {
  v1::GenerateRequest req = GreedyRequest(n);
  for (int32_t t : prompt) req.add_prompt_tokens(t);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  auto reader = stub->Generate(&ctx, req);
  v1::GenerateResponse r;
  std::vector<int32_t> out;
  while (reader->Read(&r)) {
    if (r.has_chunk() && r.chunk().token_id() >= 0) out.push_back(r.chunk().token_id());
  }
  grpc::Status st = reader->Finish();
  EXPECT_TRUE(st.ok()) << st.error_message();
  return out;
}

}  // namespace shardlm::testing

#endif  // SHARDLM_TESTS_GREEDY_REQUEST_H_
