#include "common/rpc/health_server.h"

#include <grpcpp/health_check_service_interface.h>

#include "absl/strings/str_cat.h"
#include "common/rpc/grpc_settings.h"

namespace shardlm {

absl::StatusOr<std::unique_ptr<HealthServer>> HealthServer::Start(const std::string& address) {
  // Process-wide switch, read when a builder builds a server: this server
  // gets its own default health service (and nothing else of ours).
  grpc::EnableDefaultHealthCheckService(true);
  std::unique_ptr<HealthServer> s(new HealthServer());
  grpc::ServerBuilder builder;
  // Health checks are tiny: a small message limit and the health limits.
  ApplyServerSettings(builder, 64 << 10, HealthPortLimits());
  int port = 0;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &port);
  s->server_ = builder.BuildAndStart();
  if (s->server_ == nullptr || port == 0 || s->server_->GetHealthCheckService() == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("health: cannot listen on ", address, " (address in use or not HOST:PORT?)"));
  }
  s->server_->GetHealthCheckService()->SetServingStatus(false);
  s->address_ = absl::StrCat(address.substr(0, address.rfind(':')), ":", port);
  return s;
}

HealthServer::~HealthServer() { Shutdown(); }

void HealthServer::SetServingStatus(bool serving) {
  if (!shut_down_) server_->GetHealthCheckService()->SetServingStatus(serving);
}

void HealthServer::SetServingStatus(const std::string& service, bool serving) {
  if (!shut_down_) server_->GetHealthCheckService()->SetServingStatus(service, serving);
}

void HealthServer::Shutdown() {
  if (shut_down_ || server_ == nullptr) return;
  server_->GetHealthCheckService()->SetServingStatus(false);
  // Health checks are unary and short (Watch streams are cancelled).
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
  server_->Wait();
  shut_down_ = true;
}

}  // namespace shardlm
