#include "coordinator/shardlm_service.h"

#include "absl/strings/str_cat.h"
#include "common/rpc/grpc_settings.h"
#include "common/tokenizer/utf8.h"
#include "coordinator/chat_template.h"
#include "coordinator/generate_call.h"

namespace shardlm {
namespace {

grpc::ServerUnaryReactor* FinishNow(grpc::CallbackServerContext* context, grpc::Status status) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(std::move(status));
  return reactor;
}

grpc::Status Invalid(const std::string& message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message);
}

}  // namespace

SamplingParams SamplingFromProto(const v1::SamplingParams& p) {
  SamplingParams s;
  if (p.has_temperature()) s.temperature = p.temperature();
  if (p.has_top_k()) s.top_k = p.top_k();
  if (p.has_top_p()) s.top_p = p.top_p();
  if (p.has_min_p()) s.min_p = p.min_p();
  if (p.has_repetition_penalty()) s.repetition_penalty = p.repetition_penalty();
  if (p.has_presence_penalty()) s.presence_penalty = p.presence_penalty();
  if (p.has_frequency_penalty()) s.frequency_penalty = p.frequency_penalty();
  if (p.has_penalty_window()) s.penalty_window = p.penalty_window();
  if (p.has_seed()) s.seed = p.seed();
  if (p.has_max_tokens()) s.max_tokens = p.max_tokens();
  s.stop.assign(p.stop().begin(), p.stop().end());
  s.ignore_eos = p.ignore_eos();
  for (const auto& [token, bias] : p.logit_bias()) s.logit_bias.push_back({token, bias});
  std::sort(s.logit_bias.begin(), s.logit_bias.end());  // map order is unspecified
  s.top_logprobs = p.top_logprobs();
  return s;
}

ShardLmService::ShardLmService(Engine* engine, const Tokenizer* tokenizer,
                               const Pipeline* pipeline, const ModelConfig* config,
                               std::string fingerprint, std::string chat_template,
                               BearerAuthenticator authenticator)
    : engine_(engine),
      tokenizer_(tokenizer),
      pipeline_(pipeline),
      config_(config),
      fingerprint_(std::move(fingerprint)),
      chat_template_(std::move(chat_template)),
      authenticator_(std::move(authenticator)) {}

grpc::ServerWriteReactor<v1::GenerateResponse>* ShardLmService::Generate(
    grpc::CallbackServerContext* context, const v1::GenerateRequest* request) {
  if (absl::Status denied = authenticator_.Check(*context); !denied.ok()) {
    return new GenerateCall(engine_, tokenizer_, GenerationRequest(), ToGrpcStatus(denied));
  }
  GenerationRequest r;
  r.request_id = request->request_id();
  r.params = SamplingFromProto(request->sampling());
  if (context->deadline() != std::chrono::system_clock::time_point::max()) {
    r.deadline = absl::FromChrono(context->deadline());
  }
  grpc::Status invalid;
  if (request->prompt().size() > kMaxPromptBytes) {
    invalid = Invalid(absl::StrCat("prompt: ", request->prompt().size(), " bytes exceed the limit of ",
                                   kMaxPromptBytes));
  } else if (request->prompt_tokens_size() > kMaxPromptTokens) {
    invalid = Invalid(absl::StrCat("prompt_tokens: more than ", kMaxPromptTokens, " tokens"));
  } else if (request->prompt_tokens_size() > 0) {
    r.prompt.assign(request->prompt_tokens().begin(), request->prompt_tokens().end());
  } else {
    const bool add_bos = request->has_add_bos() ? request->add_bos() : true;
    r.prompt = tokenizer_->Encode(request->prompt(), add_bos, /*parse_special=*/false);
  }
  // GenerateCall submits (or finishes with the refusal) and owns itself.
  auto* call = new GenerateCall(engine_, tokenizer_, std::move(r), invalid);
  return call;
}

grpc::ServerWriteReactor<v1::GenerateResponse>* ShardLmService::Chat(
    grpc::CallbackServerContext* context, const v1::ChatRequest* request) {
  if (absl::Status denied = authenticator_.Check(*context); !denied.ok()) {
    return new GenerateCall(engine_, tokenizer_, GenerationRequest(), ToGrpcStatus(denied));
  }
  GenerationRequest r;
  r.request_id = request->request_id();
  r.params = SamplingFromProto(request->sampling());
  if (context->deadline() != std::chrono::system_clock::time_point::max()) {
    r.deadline = absl::FromChrono(context->deadline());
  }
  std::vector<ChatMessage> messages;
  messages.reserve(request->messages_size());
  for (const v1::ChatMessage& m : request->messages()) messages.push_back({m.role(), m.content()});
  grpc::Status invalid;
  absl::StatusOr<ChatPrompt> prompt =
      BuildChatPrompt(*tokenizer_, chat_template_, request->template_(), messages, kMaxPromptBytes);
  if (!prompt.ok()) {
    invalid = ToGrpcStatus(prompt.status());
  } else {
    r.prompt = std::move(prompt->tokens);
    MergeStops(prompt->stop, &r.params.stop);
  }
  // Same streaming path as Generate: GenerateCall submits and owns itself.
  return new GenerateCall(engine_, tokenizer_, std::move(r), invalid);
}

grpc::ServerUnaryReactor* ShardLmService::Tokenize(grpc::CallbackServerContext* context,
                                                   const v1::TokenizeRequest* request,
                                                   v1::TokenizeResponse* response) {
  if (absl::Status denied = authenticator_.Check(*context); !denied.ok()) {
    return FinishNow(context, ToGrpcStatus(denied));
  }
  if (request->text().size() > kMaxPromptBytes) {
    return FinishNow(context, Invalid(absl::StrCat("text: more than ", kMaxPromptBytes, " bytes")));
  }
  const bool add_bos = request->has_add_bos() ? request->add_bos() : true;
  for (int32_t id : tokenizer_->Encode(request->text(), add_bos, request->parse_special())) {
    response->add_token_ids(id);
    response->add_pieces(tokenizer_->TokenText(id));
  }
  return FinishNow(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* ShardLmService::Detokenize(grpc::CallbackServerContext* context,
                                                     const v1::DetokenizeRequest* request,
                                                     v1::DetokenizeResponse* response) {
  if (absl::Status denied = authenticator_.Check(*context); !denied.ok()) {
    return FinishNow(context, ToGrpcStatus(denied));
  }
  std::vector<int32_t> ids(request->token_ids().begin(), request->token_ids().end());
  if (absl::Status st = tokenizer_->CheckIds(ids); !st.ok()) {
    return FinishNow(context, Invalid(absl::StrCat("token_ids: ", st.message())));
  }
  DecodeOptions options;
  options.render_special = request->render_special();
  response->set_text(SanitizeUtf8(tokenizer_->Decode(ids, options)));
  return FinishNow(context, grpc::Status::OK);
}

grpc::ServerUnaryReactor* ShardLmService::GetModelInfo(grpc::CallbackServerContext* context,
                                                       const v1::GetModelInfoRequest*,
                                                       v1::ModelInfo* response) {
  if (absl::Status denied = authenticator_.Check(*context); !denied.ok()) {
    return FinishNow(context, ToGrpcStatus(denied));
  }
  response->set_model_name(config_->name);
  response->set_architecture(config_->architecture);
  response->set_model_fingerprint(fingerprint_);
  response->set_n_vocab(config_->n_vocab);
  response->set_n_ctx(pipeline_->model().n_ctx);
  response->set_n_layer(config_->n_layer);
  response->set_n_embd(config_->n_embd);
  response->set_bos_token_id(tokenizer_->bos_id());
  response->set_eos_token_id(tokenizer_->eos_id());
  // One entry per replica, healthy as the engine's probes and calls last
  // saw it (a worker that died is marked down within a probe interval).
  for (int range = 0; range < pipeline_->n_ranges(); ++range) {
    for (int replica = 0; replica < pipeline_->n_replicas(range); ++replica) {
      const Stage& stage = pipeline_->stage(range, replica);
      v1::StageStatus* s = response->add_stages();
      s->set_address(stage.name());
      s->set_first_layer(stage.info().first_layer);
      s->set_last_layer(stage.info().last_layer);
      s->set_healthy(pipeline_->healthy(range, replica));
    }
  }
  return FinishNow(context, grpc::Status::OK);
}

}  // namespace shardlm
