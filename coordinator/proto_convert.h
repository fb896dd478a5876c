// Conversions between the public API's messages (shardlm.v1) and engine
// types, in one place: the gRPC service, the CLI's --server client and the
// benches all map sampling parameters, tokens, finish reasons and stats the
// same way.
#ifndef SHARDLM_COORDINATOR_PROTO_CONVERT_H_
#define SHARDLM_COORDINATOR_PROTO_CONVERT_H_

#include "common/tokenizer/tokenizer.h"
#include "coordinator/engine.h"
#include "coordinator/request_builder.h"
#include "coordinator/sampling_params.h"
#include "shardlm/v1/shardlm.pb.h"

namespace shardlm {

// The API's sampling message onto SamplingParams, applying defaults for
// unset optional fields (validation happens in Engine::Submit).
SamplingParams SamplingFromProto(const v1::SamplingParams& p);
// The structured-output fields (json_schema, grammar, json_object); compiled
// by BuildGenerationRequest, which refuses more than one.
OutputFormat OutputFormatFromProto(const v1::SamplingParams& p);
// Every field set explicitly (a client sends exactly what it was given).
v1::SamplingParams SamplingToProto(const SamplingParams& s);

// kError and kDeadline end a stream with an error status, not a summary:
// they map to CANCELLED here only so that the mapping is total.
v1::FinishReason FinishReasonToProto(FinishReason reason);
// Unknown values (a newer server) -> kError.
FinishReason FinishReasonFromProto(v1::FinishReason reason);

// `tokenizer` gives the text of the alternatives (top logprobs).
v1::GeneratedChunk ChunkToProto(const GeneratedToken& token, const Tokenizer& tokenizer);
GeneratedToken TokenFromProto(const v1::GeneratedChunk& chunk);

// What the front door takes from a Generate or Chat request (the deadline
// is the call's, set by the caller).
ClientRequest ClientRequestFromProto(const v1::GenerateRequest& request);
ClientRequest ClientRequestFromProto(const v1::ChatRequest& request);

v1::GenerationSummary SummaryToProto(FinishReason reason, const GenerationStats& stats);
GenerationStats StatsFromProto(const v1::GenerationSummary& summary);

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_PROTO_CONVERT_H_
