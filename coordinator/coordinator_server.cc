#include "coordinator/coordinator_server.h"

#include <algorithm>

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "common/base/metrics.h"
#include "common/base/metrics_server.h"
#include "common/base/status_macros.h"
#include "common/model/gguf.h"
#include "common/model/model_config.h"
#include "common/rpc/credentials.h"
#include "common/rpc/grpc_settings.h"
#include "common/rpc/health_server.h"
#include "common/rpc/stream_flood_guard.h"
#include "common/tokenizer/tokenizer.h"
#include "coordinator/chain.h"
#include "coordinator/chat_template.h"
#include "coordinator/front_door.h"
#include "coordinator/gateway_metrics.h"
#include "coordinator/openai_http.h"
#include "coordinator/pipeline.h"
#include "coordinator/remote_stage.h"
#include "coordinator/shardlm_service.h"
#include "coordinator/web_ui.h"

namespace shardlm {
namespace {

// The coordinator's whole /metrics page: engine, pipeline and gateway names
// (gateway_metrics.h) plus this process's gRPC stream-flood guard.
std::string CoordinatorMetricsText(const Engine& engine, const Pipeline& pipeline,
                                   const std::string& model_id) {
  MetricsPage guard;
  RenderStreamFloodGuardMetrics(&guard);
  return RenderCoordinatorMetrics(engine, pipeline, model_id) + guard.text();
}

}  // namespace

// Declaration order is teardown order reversed: the server stops first,
// then the engine (cancelling streams), then the pipeline and the model.
struct CoordinatorServer::State {
  std::unique_ptr<GgufFile> file;
  ModelConfig config;
  std::string fingerprint;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<Pipeline> pipeline;
  std::unique_ptr<Engine> engine;
  std::unique_ptr<FrontDoor> door;         // waits for its tasks before the engine goes
  std::unique_ptr<OpenAiHttpServer> http;  // stops before the engine
  std::unique_ptr<ShardLmService> service;
  std::unique_ptr<grpc::Server> server;
  std::unique_ptr<MetricsServer> metrics;  // stops first
  std::unique_ptr<HealthServer> health;    // plaintext probes port, if any
  bool shut_down = false;
};

absl::StatusOr<std::unique_ptr<CoordinatorServer>> CoordinatorServer::Start(
    const CoordinatorOptions& options) {
  auto status = options.on_status ? options.on_status
                                  : [](const std::string& line) { SHARDLM_LOG(kInfo, "%s", line); };
  RETURN_IF_ERROR(ValidateEngineOptions(options.engine));
  auto st = std::make_unique<State>();
  ASSIGN_OR_RETURN(st->file, GgufFile::Open(options.model_path));
  ASSIGN_OR_RETURN(st->config, ModelConfig::FromGguf(*st->file));
  st->fingerprint = ModelFingerprint(*st->file);
  ASSIGN_OR_RETURN(st->tokenizer, Tokenizer::FromGguf(*st->file));
  // Chat template: the one named on the command line, else the model's.
  std::string chat_template = options.chat_template;
  std::string used_template = chat_template;  // what chats use, for GET /v1/pipeline
  if (!chat_template.empty()) {
    RETURN_IF_ERROR(ChatTemplate::FromName(chat_template).status());
  } else {
    if (absl::StatusOr<std::string> t = st->file->GetString("tokenizer.chat_template"); t.ok()) {
      chat_template = *t;
    }
    absl::StatusOr<std::string> used = DescribeDefaultTemplate(chat_template);
    used_template = used.ok() ? *used : "none: requests must name one";
    status(used.ok()
               ? absl::StrCat("chat template: ", *used)
               : absl::StrCat("chat requests must name a template: ", used.status().message()));
  }
  if (options.workers.empty()) {
    return absl::InvalidArgumentError("no workers given (--workers HOST:PORT,HOST:PORT,...)");
  }
  RETURN_IF_ERROR(CheckTopology(options.topology));

  v1::DType hidden_dtype;
  if (options.hidden_dtype == "f32") {
    hidden_dtype = v1::DTYPE_F32;
  } else if (options.hidden_dtype == "f16") {
    hidden_dtype = v1::DTYPE_F16;
  } else if (options.hidden_dtype == "bf16") {
    hidden_dtype = v1::DTYPE_BF16;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("hidden dtype '", options.hidden_dtype, "' is not one of f32, f16, bf16"));
  }
  // Workers may be listed in any order; those serving the same layer range
  // are replicas of it.
  std::map<std::pair<int, int>, std::vector<std::shared_ptr<Stage>>> by_range;
  for (const std::string& address : options.workers) {
    RemoteStageOptions ro;
    ro.call_timeout = options.call_timeout;
    ro.connect_timeout = options.worker_wait;
    ro.hidden_dtype = hidden_dtype;
    ro.credentials = options.worker_credentials;
    ro.tls_server_name = options.worker_tls_server_name;
    ro.on_wait = [status](const ConnectWait& w) {
      status(absl::StrCat("waiting for worker ", w.address, " (",
                          w.loading ? "loading" : std::string(w.last_error.message()), ", ",
                          absl::FormatDuration(absl::Trunc(w.waited, absl::Seconds(1))), ")"));
    };
    ASSIGN_OR_RETURN(std::unique_ptr<RemoteStage> stage, RemoteStage::Connect(address, ro));
    const ShardInfo& info = stage->info();
    if (info.fingerprint != st->fingerprint) {
      return absl::FailedPreconditionError(
          absl::StrCat("worker ", address, " (layers ", info.first_layer, ":", info.last_layer,
                       ") serves a different model: fingerprint ", info.fingerprint, ", but ",
                       options.model_path, " has ", st->fingerprint));
    }
    status(absl::StrCat("worker ", address, " ready: layers ", info.first_layer, ":",
                        info.last_layer, " of ", info.n_layer));
    by_range[{info.first_layer, info.last_layer}].push_back(std::move(stage));
  }
  std::vector<std::vector<std::shared_ptr<Stage>>> ranges;
  for (auto& [range, replicas] : by_range) ranges.push_back(std::move(replicas));
  ASSIGN_OR_RETURN(st->pipeline, Pipeline::Create(std::move(ranges)));
  if (options.topology == "chain") {
    ASSIGN_OR_RETURN(std::unique_ptr<Chain> chain, Chain::Create(*st->pipeline));
    st->pipeline->set_step_path(std::move(chain));
    status("topology: chain (workers pass hidden states to each other)");
  }
  EngineOptions engine_options = options.engine;
  if (options.draft_stage != nullptr) {
    ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> draft_file,
                     GgufFile::Open(options.draft_model_path));
    ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> draft_vocab, Tokenizer::FromGguf(*draft_file));
    RETURN_IF_ERROR(CheckSameVocabulary(*draft_vocab, options.draft_model_path, *st->tokenizer,
                                        options.model_path));
    ASSIGN_OR_RETURN(engine_options.draft_model, DraftModel::Create(options.draft_stage));
    RETURN_IF_ERROR(ValidateEngineOptions(engine_options));
    status(absl::StrCat("speculative decoding: draft model ", options.draft_model_path, ", ",
                        engine_options.spec_draft, " tokens per step"));
  }
  st->engine = std::make_unique<Engine>(st->pipeline.get(), st->tokenizer.get(), engine_options);
  st->door = std::make_unique<FrontDoor>(st->engine.get(), st->tokenizer.get(), chat_template);
  st->service =
      std::make_unique<ShardLmService>(st->door.get(), st->pipeline.get(), &st->config,
                                       st->fingerprint, BearerAuthenticator(options.auth_tokens),
                                       options.stream_limits);
  // The model's file name without folder and extension, e.g. "stories260K":
  // the id of the OpenAI API's "model" and the metrics' model_name label.
  std::string model_id = options.model_path.substr(options.model_path.rfind('/') + 1);
  if (absl::EndsWith(model_id, ".gguf")) model_id.resize(model_id.size() - 5);
  if (model_id.empty()) model_id = "shardlm";
  if (!options.http_listen.empty()) {
    OpenAiHttpOptions ho;
    ho.listen = options.http_listen;
    ho.api_keys = options.api_keys;
    ho.api_keys.insert(ho.api_keys.end(), options.auth_tokens.begin(), options.auth_tokens.end());
    ho.limits = options.http_limits;
    ho.max_json_depth = options.http_max_json_depth;
    ho.model_id = model_id;
    const Pipeline* pipeline = st->pipeline.get();
    ho.pipeline_info = [pipeline, model_id, used_template] {
      return PipelineJson(*pipeline, model_id, used_template);
    };
    if (!options.metrics_listen.empty()) {
      const Engine* engine = st->engine.get();
      ho.metrics = [engine, pipeline, model_id] {
        return CoordinatorMetricsText(*engine, *pipeline, model_id);
      };
    }
    ASSIGN_OR_RETURN(st->http, OpenAiHttpServer::Start(ho, st->door.get()));
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(
      options.listen,
      options.server_credentials ? options.server_credentials : grpc::InsecureServerCredentials(),
      &port);
  GrpcServerLimits limits = options.grpc_limits;
  limits.max_connection_age_grace = std::max(
      limits.max_connection_age_grace, options.stream_limits.max_lifetime + absl::Minutes(1));
  ApplyServerSettings(builder, kMaxMessageBytes, limits);
  builder.RegisterService(st->service.get());
  st->server = builder.BuildAndStart();
  if (st->server == nullptr || port == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen, " (address in use or not local?)"));
  }
  st->server->GetHealthCheckService()->SetServingStatus(true);
  if (!options.health_listen.empty()) {
    ASSIGN_OR_RETURN(st->health, HealthServer::Start(options.health_listen));
    st->health->SetServingStatus(v1::ShardLM::service_full_name(), true);
    st->health->SetServingStatus(true);
  }
  if (!options.metrics_listen.empty()) {
    const Engine* engine = st->engine.get();
    const Pipeline* pipeline = st->pipeline.get();
    ASSIGN_OR_RETURN(st->metrics,
                     MetricsServer::Start(options.metrics_listen, [engine, pipeline, model_id] {
                       return CoordinatorMetricsText(*engine, *pipeline, model_id);
                     }, options.metrics_limits));
  }
  auto server = std::unique_ptr<CoordinatorServer>(new CoordinatorServer(std::move(st)));
  const std::string host = options.listen.substr(0, options.listen.rfind(':'));
  server->address_ = absl::StrCat(host, ":", port);
  if (server->state_->http) server->http_address_ = server->state_->http->address();
  return server;
}

CoordinatorServer::CoordinatorServer(std::unique_ptr<State> state) : state_(std::move(state)) {}

CoordinatorServer::~CoordinatorServer() { Shutdown(); }

const std::string& CoordinatorServer::health_address() const {
  static const std::string kNone;
  return state_->health ? state_->health->address() : kNone;
}

const std::string& CoordinatorServer::metrics_address() const {
  static const std::string kNone;
  return state_->metrics ? state_->metrics->address() : kNone;
}

void CoordinatorServer::Shutdown() {
  if (state_->shut_down) return;
  state_->shut_down = true;
  state_->metrics.reset();
  // HTTP first: its open streams end and cancel their engine requests.
  if (state_->http) state_->http->Shutdown();
  state_->server->GetHealthCheckService()->SetServingStatus(false);
  if (state_->health) state_->health->SetServingStatus(false);
  // Ends streams still running (their Engine requests are cancelled by the
  // calls' OnCancel) after a short grace period.
  // The engine stays up meanwhile so cancelled streams can finish.
  state_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  state_->server->Wait();
  state_->door.reset();
  state_->engine.reset();
  if (state_->health) state_->health->Shutdown();
}

}  // namespace shardlm
