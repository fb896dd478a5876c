// Validation and conversion of shardlm.v1.ForwardRequest / ForwardResponse on
// the worker side. Everything a peer controls is checked before the stage
// sees it: protocol version and model fingerprint (FAILED_PRECONDITION, both
// values named), batch size, repeated-field lengths, the hidden tensor's
// dtype / shape / byte count / finiteness, positions and token ids
// (INVALID_ARGUMENT naming the field and batch index). Plain functions, so
// the handler logic is tested and fuzzed without sockets.
#ifndef SHARDLM_COMMON_STAGE_FORWARD_CODEC_H_
#define SHARDLM_COMMON_STAGE_FORWARD_CODEC_H_

#include "absl/status/status.h"
#include "common/rpc/grpc_settings.h"
#include "shardlm/v1/stage.pb.h"
#include "common/stage/stage.h"

namespace shardlm {

// Largest batch (tokens) one Forward call may carry by default.
inline constexpr int kDefaultMaxBatchTokens = kMaxForwardTokens;

// The O(1) checks, cheap enough for the gRPC callback thread: protocol
// version, fingerprint, batch size.
absl::Status CheckForwardHeader(const v1::ForwardRequest& request, const ShardInfo& info,
                                int max_batch_tokens);

// All checks, then fills `out` (whose vectors keep their capacity across
// calls: the hidden states are decoded straight into out->hidden).
absl::Status DecodeForwardRequest(const v1::ForwardRequest& request, const ShardInfo& info,
                                  int max_batch_tokens, ForwardRequest* out);

// The dtype the response's hidden states should use (f32 when unspecified);
// INVALID_ARGUMENT for an unknown value.
absl::Status ResponseHiddenDType(const v1::ForwardRequest& request, v1::DType* dtype);

// Writes the stage's result for a batch of `n_tokens`: hidden states
// [n_tokens, n_embd] in `hidden_dtype` from a non-last stage, f32 logits
// [rows, n_vocab] and their batch indices from the last. INTERNAL if the
// result's sizes do not match the stage's shape (a bug of the stage).
absl::Status EncodeForwardResult(const ForwardResult& result, const ShardInfo& info,
                                 size_t n_tokens, v1::DType hidden_dtype,
                                 v1::ForwardResponse* response);

}  // namespace shardlm

#endif  // SHARDLM_COMMON_STAGE_FORWARD_CODEC_H_
