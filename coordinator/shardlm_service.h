// The public `shardlm.v1.ShardLM` gRPC service (callback API). Handlers are
// thin: check the bearer token, map the message (proto_convert.h), hand the
// work to the FrontDoor — generation streams from the Engine, building the
// request and Tokenize run on oneTBB tasks — and convert the absl::Status
// to a gRPC status once. No handler blocks or tokenizes on a gRPC thread.
#ifndef SHARDLM_COORDINATOR_SHARDLM_SERVICE_H_
#define SHARDLM_COORDINATOR_SHARDLM_SERVICE_H_

#include <functional>
#include <string>

#include "common/model/model_config.h"
#include "common/rpc/credentials.h"
#include "coordinator/front_door.h"
#include "coordinator/generate_call.h"
#include "coordinator/pipeline.h"
#include "shardlm/v1/shardlm.grpc.pb.h"

namespace shardlm {

// Most ids one Detokenize call may carry: 256 Ki ids decode to a few MiB at
// most (longest pieces are a few dozen bytes), far below the message limit,
// and cover any context window we serve.
inline constexpr int kMaxDetokenizeIds = 1 << 18;

class ShardLmService final : public v1::ShardLM::CallbackService {
 public:
  // All pointers must outlive the service.
  ShardLmService(FrontDoor* door, const Pipeline* pipeline, const ModelConfig* config,
                 std::string fingerprint,
                 BearerAuthenticator authenticator = BearerAuthenticator(),
                 StreamLimits stream_limits = StreamLimits());

  grpc::ServerWriteReactor<v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* context, const v1::GenerateRequest* request) override;
  grpc::ServerWriteReactor<v1::GenerateResponse>* Chat(grpc::CallbackServerContext* context,
                                                       const v1::ChatRequest* request) override;
  grpc::ServerUnaryReactor* Tokenize(grpc::CallbackServerContext* context,
                                     const v1::TokenizeRequest* request,
                                     v1::TokenizeResponse* response) override;
  grpc::ServerUnaryReactor* Detokenize(grpc::CallbackServerContext* context,
                                       const v1::DetokenizeRequest* request,
                                       v1::DetokenizeResponse* response) override;
  grpc::ServerUnaryReactor* GetModelInfo(grpc::CallbackServerContext* context,
                                         const v1::GetModelInfoRequest* request,
                                         v1::ModelInfo* response) override;

 private:
  // Checks the bearer token; false when it fails (the call is finished).
  bool Authorized(const grpc::CallbackServerContext& context,
                  grpc::ServerUnaryReactor* reactor) const;
  // Authorizes, then runs `work` on the front door's threads and finishes the
  // call with the status it returns.
  grpc::ServerUnaryReactor* RunUnary(grpc::CallbackServerContext* context,
                                     std::function<absl::Status()> work);
  // A Generate or Chat request, once mapped: the call's deadline, then the
  // front door.
  grpc::ServerWriteReactor<v1::GenerateResponse>* Stream(grpc::CallbackServerContext* context,
                                                         ClientRequest request);

  FrontDoor* door_;
  const Pipeline* pipeline_;
  const ModelConfig* config_;
  std::string fingerprint_;
  const BearerAuthenticator authenticator_;  // checked first by every RPC
  const StreamLimits stream_limits_;         // of every Generate / Chat stream
};

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_SHARDLM_SERVICE_H_
