// The one wire codec of the Stage API (shardlm.v1.Stage), both directions,
// used by the worker's service and by the coordinator's RemoteStage:
//
//   coordinator                              worker
//   EncodeForwardRequest  ── ForwardRequest ──▶ CheckForwardHeader, DecodeForwardRequest
//   DecodeForwardResponse ◀── ForwardResponse ── EncodeForwardResult
//
// The codec checks what it needs to convert safely (protocol version, model
// fingerprint, batch size, the tensors' dtype / shape / byte count /
// finiteness); what the batch means (positions, token ids, runs) is checked
// once, by the stage, with ValidateBatch (batch_validation.h). Plain
// functions, so handler logic is tested and fuzzed without sockets; messages
// are refilled in place so a warm decode step allocates nothing.
#ifndef SHARDLM_COMMON_STAGE_FORWARD_CODEC_H_
#define SHARDLM_COMMON_STAGE_FORWARD_CODEC_H_

#include <cstddef>

#include "absl/status/status.h"
#include "common/rpc/grpc_settings.h"
#include "common/stage/stage.h"
#include "shardlm/v1/stage.pb.h"

namespace shardlm {

// Largest batch (tokens) one Forward call may carry by default.
inline constexpr int kDefaultMaxBatchTokens = kMaxForwardTokens;

// Whether batch entry i gets a logits row from the last stage: its
// want_logits flag, or with no flags the last token of each sequence's run.
bool WantsLogits(const ForwardRequest& request, const ShardInfo& info, size_t i);

// --- Coordinator side ------------------------------------------------------

// Writes entries [begin, end) of `request` into `out`, hidden states in
// `hidden_dtype`. With `explicit_logits` the want_logits flags are written
// out (WantsLogits) — a batch split over several calls must mean "the last
// token of each sequence of the whole batch", not of each call.
// The batch must pass CheckBatchShape.
absl::Status EncodeForwardRequest(const ForwardRequest& request, size_t begin, size_t end,
                                  const ShardInfo& info, v1::DType hidden_dtype,
                                  bool explicit_logits, v1::ForwardRequest* out);

// Appends a response to entries [begin, begin + count) to `result`: hidden
// states into result->hidden at row `begin` (sized by the caller), or logits
// rows with their batch indices (offset by `begin`). INVALID_ARGUMENT for a
// response that does not fit the request.
absl::Status DecodeForwardResponse(const v1::ForwardResponse& response, const ShardInfo& info,
                                   size_t begin, size_t count, ForwardResult* result);

// --- Worker side -----------------------------------------------------------

// The O(1) checks, cheap enough for the gRPC callback thread: protocol
// version, fingerprint, batch size (empty or over `max_batch_tokens`).
absl::Status CheckForwardHeader(const v1::ForwardRequest& request, const ShardInfo& info,
                                int max_batch_tokens);

// Converts a request that passed CheckForwardHeader into `out` (whose vectors
// keep their capacity across calls: hidden states decode straight into
// out->hidden), checking the hidden tensor against [n_tokens, n_embd]. The
// requested response dtype is the caller's to check (ResponseHiddenDType).
absl::Status DecodeForwardRequest(const v1::ForwardRequest& request, const ShardInfo& info,
                                  ForwardRequest* out);

// The dtype the response's hidden states should use (f32 when unspecified);
// INVALID_ARGUMENT for an unknown value.
absl::Status ResponseHiddenDType(const v1::ForwardRequest& request, v1::DType* dtype);

// On the last stage: bytes of the logits a Forward response would carry for
// `request` (rows x n_vocab x f32), so a worker can refuse a request whose
// response exceeds its message limit before computing it.
int64_t ForwardLogitsBytes(const ForwardRequest& request, const ShardInfo& info);

// RESOURCE_EXHAUSTED when the logits of `request` cannot fit in one
// response of at most `max_message_bytes` (headroom kept for the other
// fields); OK on non-last stages.
absl::Status CheckLogitsFitMessage(const ForwardRequest& request, const ShardInfo& info,
                                   int64_t max_message_bytes);

// Writes the stage's result for a batch of `n_tokens`: hidden states
// [n_tokens, n_embd] in `hidden_dtype` from a non-last stage, f32 logits
// [rows, n_vocab] and their batch indices from the last. INTERNAL if the
// result's sizes do not match the stage's shape (a bug of the stage).
absl::Status EncodeForwardResult(const ForwardResult& result, const ShardInfo& info,
                                 size_t n_tokens, v1::DType hidden_dtype,
                                 v1::ForwardResponse* response);

}  // namespace shardlm

#endif  // SHARDLM_COMMON_STAGE_FORWARD_CODEC_H_
