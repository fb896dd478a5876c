// The public `shardlm.v1.ShardLM` gRPC service (callback API): Generate
// streams an Engine request's tokens to the client, Chat does the same for a
// conversation rendered with a chat template; Tokenize, Detokenize
// and GetModelInfo answer from the tokenizer and the pipeline. Handlers
// validate and return at once; generation runs on the Engine's thread.
#ifndef SHARDLM_COORDINATOR_SHARDLM_SERVICE_H_
#define SHARDLM_COORDINATOR_SHARDLM_SERVICE_H_

#include <string>

#include "common/model/model_config.h"
#include "common/rpc/credentials.h"
#include "common/tokenizer/tokenizer.h"
#include "coordinator/engine.h"
#include "coordinator/pipeline.h"
#include "shardlm/v1/shardlm.grpc.pb.h"

namespace shardlm {

// Maps the API's sampling message onto SamplingParams, applying defaults for
// unset optional fields (validation happens in Engine::Submit).
SamplingParams SamplingFromProto(const v1::SamplingParams& p);

class ShardLmService final : public v1::ShardLM::CallbackService {
 public:
  // All pointers must outlive the service. `chat_template` is the model's
  // tokenizer.chat_template (empty if it has none).
  ShardLmService(Engine* engine, const Tokenizer* tokenizer, const Pipeline* pipeline,
                 const ModelConfig* config, std::string fingerprint,
                 std::string chat_template = "",
                 BearerAuthenticator authenticator = BearerAuthenticator());

  grpc::ServerWriteReactor<v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* context, const v1::GenerateRequest* request) override;
  grpc::ServerWriteReactor<v1::GenerateResponse>* Chat(
      grpc::CallbackServerContext* context, const v1::ChatRequest* request) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context,
                                     const v1::TokenizeRequest* request,
                                     v1::TokenizeResponse* response) override;
  grpc::ServerUnaryReactor* Detokenize(grpc::CallbackServerContext* context,
                                       const v1::DetokenizeRequest* request,
                                       v1::DetokenizeResponse* response) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* context,
                                         const v1::GetModelInfoRequest* request,
                                         v1::ModelInfo* response) override;

  // Bounds on what a client controls.
  static constexpr size_t kMaxPromptBytes = 1 << 20;
  static constexpr int kMaxPromptTokens = 1 << 16;

 private:
  Engine* engine_;
  const Tokenizer* tokenizer_;
  const Pipeline* pipeline_;
  const ModelConfig* config_;
  std::string fingerprint_;
  std::string chat_template_;
  const BearerAuthenticator authenticator_;  // checked first by every RPC
};

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_SHARDLM_SERVICE_H_
