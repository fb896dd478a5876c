// A gRPC server around a StageService: shared message limits and keepalive,
// grpc.health.v1 (NOT_SERVING until SetStage, SERVING after) and server
// reflection. It listens before the model is loaded, so a launcher learns
// the port at once and a coordinator can say "waiting for worker (loading)".
#ifndef SHARDLM_WORKER_STAGE_SERVER_H_
#define SHARDLM_WORKER_STAGE_SERVER_H_

#include <grpcpp/grpcpp.h>

#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/rpc/grpc_settings.h"
#include "common/rpc/health_server.h"
#include "worker/stage_service.h"

namespace shardlm {

struct StageServerOptions {
  std::string listen_address = "127.0.0.1:0";  // port 0: any free port
  int max_message_bytes = kMaxMessageBytes;
  StageServiceOptions service;
  // Transport security of the main port (common/rpc/credentials.h): mutual
  // TLS in production; null: plaintext.
  std::shared_ptr<grpc::ServerCredentials> credentials;
  // Plaintext grpc.health.v1-only port mirroring the main one (for probes
  // that cannot present a client certificate); empty: none.
  std::string health_listen;
  // Streams, memory and idle connections (grpc_settings.h). No connection
  // age: a coordinator's Forward streams live as long as it does.
  GrpcServerLimits limits;
};

class StageServer {
 public:
  // Binds and starts serving (health NOT_SERVING). UNAVAILABLE when the
  // address cannot be bound.
  static absl::StatusOr<std::unique_ptr<StageServer>> Start(const StageServerOptions& options);
  ~StageServer();  // Shutdown(5 s) unless done

  int port() const { return port_; }
  // "host:port" with the bound port (host as given to --listen).
  const std::string& address() const { return address_; }
  StageService& service() { return *service_; }
  // The plaintext health port's "host:port", empty when there is none.
  std::string health_address() const;

  // Plugs in the loaded and checked stage; health becomes SERVING.
  void SetStage(std::shared_ptr<Stage> stage, StageDetails details);

  // Stops accepting calls, lets running ones finish for up to `grace` (then
  // cancels them), stops the compute thread. Idempotent, thread-safe.
  void Shutdown(absl::Duration grace);
  // Blocks until Shutdown has completed.
  void Wait();

 private:
  StageServer() = default;
  // Serving state on the main server and the health port alike.
  void SetHealth(bool serving);

  std::unique_ptr<StageService> service_;  // outlives server_
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<HealthServer> health_;
  int port_ = 0;
  std::string address_;
  std::once_flag shutdown_once_;
};

// Checks a freshly loaded stage by running one token through it (a reserved
// sequence id, released afterwards): the output must have the right size
// and be finite. This also pages in every weight of the stage, so the first
// real request does not pay for it.
absl::Status WarmUpStage(Stage* stage);

}  // namespace shardlm

#endif  // SHARDLM_WORKER_STAGE_SERVER_H_
