#include "coordinator/shardlm_service.h"

#include <functional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/field_error.h"
#include "common/rpc/grpc_settings.h"
#include "common/tokenizer/utf8.h"
#include "coordinator/generate_call.h"
#include "coordinator/proto_convert.h"

namespace shardlm {
namespace {

// Finishes a unary call with `status`, converted once, here at the edge.
void FinishUnary(grpc::ServerUnaryReactor* reactor, const absl::Status& status) {
  reactor->Finish(ToGrpcStatus(status));
}

}  // namespace

ShardLmService::ShardLmService(FrontDoor* door, const Pipeline* pipeline, const ModelConfig* config,
                               std::string fingerprint, BearerAuthenticator authenticator,
                               StreamLimits stream_limits)
    : door_(door),
      pipeline_(pipeline),
      config_(config),
      fingerprint_(std::move(fingerprint)),
      authenticator_(std::move(authenticator)),
      stream_limits_(stream_limits) {}

bool ShardLmService::Authorized(const grpc::CallbackServerContext& context,
                                grpc::ServerUnaryReactor* reactor) const {
  absl::Status denied = authenticator_.Check(context);
  if (!denied.ok()) FinishUnary(reactor, denied);
  return denied.ok();
}

grpc::ServerWriteReactor<v1::GenerateResponse>* ShardLmService::Stream(
    grpc::CallbackServerContext* context, ClientRequest request) {
  if (absl::Status denied = authenticator_.Check(*context); !denied.ok()) {
    return GenerateCall::Refuse(denied);
  }
  if (context->deadline() != std::chrono::system_clock::time_point::max()) {
    request.deadline = absl::FromChrono(context->deadline());
  }
  return GenerateCall::Start(door_, std::move(request), context, stream_limits_);
}

grpc::ServerWriteReactor<v1::GenerateResponse>* ShardLmService::Generate(
    grpc::CallbackServerContext* context, const v1::GenerateRequest* request) {
  return Stream(context, ClientRequestFromProto(*request));
}

grpc::ServerWriteReactor<v1::GenerateResponse>* ShardLmService::Chat(
    grpc::CallbackServerContext* context, const v1::ChatRequest* request) {
  return Stream(context, ClientRequestFromProto(*request));
}

grpc::ServerUnaryReactor* ShardLmService::RunUnary(grpc::CallbackServerContext* context,
                                                   std::function<absl::Status()> work) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!Authorized(*context, reactor)) return reactor;
  door_->Run([reactor, work = std::move(work)] { FinishUnary(reactor, work()); });
  return reactor;
}

grpc::ServerUnaryReactor* ShardLmService::Tokenize(grpc::CallbackServerContext* context,
                                                   const v1::TokenizeRequest* request,
                                                   v1::TokenizeResponse* response) {
  // A prompt of up to 1 MiB takes milliseconds to encode: not on this thread.
  return RunUnary(context, [this, request, response]() -> absl::Status {
    if (request->text().size() > kMaxPromptBytes) {
      return InvalidFieldError("text", absl::StrCat("more than ", kMaxPromptBytes, " bytes"));
    }
    const Tokenizer& tokenizer = door_->tokenizer();
    const bool add_bos = request->has_add_bos() ? request->add_bos() : true;
    for (int32_t id : tokenizer.Encode(request->text(), add_bos, request->parse_special())) {
      response->add_token_ids(id);
      // Vocabulary pieces come from the GGUF: made valid UTF-8 for proto3.
      response->add_pieces(SanitizeUtf8(tokenizer.TokenText(id)));
    }
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* ShardLmService::Detokenize(grpc::CallbackServerContext* context,
                                                     const v1::DetokenizeRequest* request,
                                                     v1::DetokenizeResponse* response) {
  return RunUnary(context, [this, request, response]() -> absl::Status {
    // Before any work: a 2 M-id request would build a string far beyond the
    // message limit before failing on it.
    if (request->token_ids_size() > kMaxDetokenizeIds) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "token_ids: ", request->token_ids_size(), " ids exceed the limit of ",
          kMaxDetokenizeIds, " per Detokenize call; split the request"));
    }
    const Tokenizer& tokenizer = door_->tokenizer();
    std::vector<int32_t> ids(request->token_ids().begin(), request->token_ids().end());
    if (absl::Status st = tokenizer.CheckIds(ids); !st.ok()) {
      return InvalidFieldError("token_ids", st.message());
    }
    DecodeOptions options;
    options.render_special = request->render_special();
    response->set_text(SanitizeUtf8(tokenizer.Decode(ids, options)));
    return absl::OkStatus();
  });
}

grpc::ServerUnaryReactor* ShardLmService::GetModelInfo(grpc::CallbackServerContext* context,
                                                       const v1::GetModelInfoRequest*,
                                                       v1::ModelInfo* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!Authorized(*context, reactor)) return reactor;
  const Tokenizer& tokenizer = door_->tokenizer();
  // GGUF metadata: any bytes; proto3 strings must be UTF-8.
  response->set_model_name(SanitizeUtf8(config_->name));
  response->set_architecture(SanitizeUtf8(config_->architecture));
  response->set_model_fingerprint(fingerprint_);
  response->set_n_vocab(config_->n_vocab);
  response->set_n_ctx(pipeline_->model().n_ctx);
  response->set_n_layer(config_->n_layer);
  response->set_n_embd(config_->n_embd);
  response->set_bos_token_id(tokenizer.bos_id());
  response->set_eos_token_id(tokenizer.eos_id());
  // One entry per replica, healthy as the engine's probes and calls last
  // saw it (a worker that died is marked down within a probe interval).
  for (int range = 0; range < pipeline_->n_ranges(); ++range) {
    for (int replica = 0; replica < pipeline_->n_replicas(range); ++replica) {
      const Stage& stage = pipeline_->stage(range, replica);
      v1::StageStatus* s = response->add_stages();
      s->set_address(SanitizeUtf8(stage.name()));
      s->set_first_layer(stage.info().first_layer);
      s->set_last_layer(stage.info().last_layer);
      s->set_healthy(pipeline_->healthy(range, replica));
    }
  }
  FinishUnary(reactor, absl::OkStatus());
  return reactor;
}

}  // namespace shardlm
