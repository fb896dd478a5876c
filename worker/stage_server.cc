#include "worker/stage_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"

namespace shardlm {

absl::StatusOr<std::unique_ptr<StageServer>> StageServer::Start(const StageServerOptions& options) {
  // Both are process-wide switches read when a builder builds a server.
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();

  std::unique_ptr<StageServer> s(new StageServer());
  StageServiceOptions service_options = options.service;
  service_options.max_message_bytes = options.max_message_bytes;
  s->service_ = std::make_unique<StageService>(service_options);
  grpc::ServerBuilder builder;
  ApplyServerSettings(builder, options.max_message_bytes, options.limits);
  builder.AddListeningPort(
      options.listen_address,
      options.credentials ? options.credentials : grpc::InsecureServerCredentials(), &s->port_);
  builder.RegisterService(s->service_.get());
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || s->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options.listen_address,
                     " (address in use, or not a valid HOST:PORT for this host)"));
  }
  // The default health service starts SERVING for "": say NOT_SERVING for
  // the server and the stage service until a stage is plugged in. (A probe
  // in the microseconds between start and here could still see SERVING;
  // launchers learn the port only after this, from LISTENING.)
  if (!options.health_listen.empty()) {
    ASSIGN_OR_RETURN(s->health_, HealthServer::Start(options.health_listen));
  }
  s->SetHealth(false);

  const size_t colon = options.listen_address.rfind(':');
  s->address_ = absl::StrCat(options.listen_address.substr(0, colon), ":", s->port_);
  s->service_->set_address(s->address_);
  return s;
}

StageServer::~StageServer() { Shutdown(absl::Seconds(5)); }

std::string StageServer::health_address() const { return health_ ? health_->address() : ""; }

void StageServer::SetHealth(bool serving) {
  grpc::HealthCheckServiceInterface* health = server_->GetHealthCheckService();
  health->SetServingStatus(v1::Stage::service_full_name(), serving);
  health->SetServingStatus(serving);
  if (health_) {
    health_->SetServingStatus(v1::Stage::service_full_name(), serving);
    health_->SetServingStatus(serving);
  }
}

void StageServer::SetStage(std::shared_ptr<Stage> stage, StageDetails details) {
  service_->SetStage(std::move(stage), std::move(details));
  SetHealth(true);
}

void StageServer::Shutdown(absl::Duration grace) {
  std::call_once(shutdown_once_, [&] {
    // Drain first, then shut the server down almost at once. Why not just
    // Server::Shutdown(now + grace): it also waits for every client to
    // close its connection after GOAWAY, and an idle gRPC client only
    // notices that on its backup poll (every 5 s), so a connected but idle
    // coordinator would hold every shutdown for the whole grace period.
    const absl::Time deadline = absl::Now() + grace;
    SetHealth(false);
    service_->StartDraining();
    if (!service_->WaitIdle(deadline)) {
      SHARDLM_LOG(kWarning, "calls still running after the %s grace period: cancelling them",
                  absl::FormatDuration(grace));
    }
    // Chained calls whose compute is done may still wait for the next
    // stage's acknowledgement (their results are out already): cut them.
    service_->CancelHops();
    // A moment for the last responses to be flushed, then cancel the rest.
    server_->Shutdown(DeadlineIn(
        std::min(absl::Milliseconds(250), std::max(absl::ZeroDuration(), deadline - absl::Now()))));
    service_->StopCompute();
    server_->Wait();
    if (health_) health_->Shutdown();
  });
}

void StageServer::Wait() { server_->Wait(); }

absl::Status WarmUpStage(Stage* stage) {
  const ShardInfo& info = stage->info();
  constexpr SeqId kWarmUpSeq = std::numeric_limits<SeqId>::max();
  ForwardRequest request;
  request.seq_ids = {kWarmUpSeq};
  request.positions = {0};
  if (info.is_first()) {
    request.tokens = {1 < info.n_vocab ? 1 : 0};  // BOS in llama vocabularies
  } else {
    // A plausible residual: small values of both signs.
    request.hidden.resize(info.n_embd);
    for (int i = 0; i < info.n_embd; ++i) request.hidden[i] = 0.01f * ((i % 7) - 3);
  }
  ForwardResult result;
  absl::Status st = stage->Forward(request, &result);
  RETURN_IF_ERROR(stage->Release(kWarmUpSeq));
  if (!st.ok()) return absl::Status(st.code(), absl::StrCat("warm-up forward: ", st.message()));
  const std::vector<float>& out = info.is_last() ? result.logits : result.hidden;
  const size_t expected = info.is_last() ? static_cast<size_t>(info.n_vocab) : info.n_embd;
  if (out.size() != expected) {
    return absl::InternalError(
        absl::StrCat("warm-up forward returned ", out.size(), " values, expected ", expected));
  }
  for (size_t i = 0; i < out.size(); ++i) {
    if (!std::isfinite(out[i])) {
      return absl::DataLossError(
          absl::StrCat("warm-up forward produced a non-finite value at index ", i,
                       ": the weights of this layer range are corrupt or out of range"));
    }
  }
  return absl::OkStatus();
}

}  // namespace shardlm
