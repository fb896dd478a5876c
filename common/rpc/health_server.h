// A second, plaintext gRPC server that serves only grpc.health.v1 (the
// default health service), for probes that cannot present a client
// certificate (Kubernetes gRPC probes) while the main port requires mutual
// TLS. The owner mirrors its main server's serving state into it.
#ifndef SHARDLM_COMMON_RPC_HEALTH_SERVER_H_
#define SHARDLM_COMMON_RPC_HEALTH_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace shardlm {

class HealthServer {
 public:
  // Binds `address` (HOST:PORT, port 0 = any) and serves; starts
  // NOT_SERVING. UNAVAILABLE when the address cannot be bound.
  static absl::StatusOr<std::unique_ptr<HealthServer>> Start(const std::string& address);
  ~HealthServer();

  // "host:port" with the bound port.
  const std::string& address() const { return address_; }
  // The whole server ("") and, when given, one service name.
  void SetServingStatus(bool serving);
  void SetServingStatus(const std::string& service, bool serving);
  void Shutdown();

 private:
  HealthServer() = default;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  bool shut_down_ = false;
};

}  // namespace shardlm

#endif  // SHARDLM_COMMON_RPC_HEALTH_SERVER_H_
