// A running coordinator: the model's metadata and vocabulary, a pipeline of
// workers checked for coverage and model identity, the scheduler, and the
// public gRPC server (ShardLM + health + reflection), and optionally the
// OpenAI-compatible HTTP API over the same engine.
#ifndef SHARDLM_COORDINATOR_COORDINATOR_SERVER_H_
#define SHARDLM_COORDINATOR_COORDINATOR_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/base/http_server.h"
#include "common/base/metrics_server.h"
#include "common/rpc/grpc_settings.h"
#include "coordinator/engine.h"
#include "coordinator/generate_call.h"

namespace grpc {
class Server;
class ServerCredentials;
class ChannelCredentials;
}

namespace shardlm {

// The public port's limits: GrpcServerLimits' defaults plus a connection age
// of 2 h, so a client cannot pin a connection forever; Start raises the
// age grace to outlast the longest stream (StreamLimits::max_lifetime), so
// the GOAWAY never cuts a running Generate.
inline GrpcServerLimits PublicPortLimits() {
  GrpcServerLimits l;
  l.max_connection_age = absl::Hours(2);
  return l;
}

struct CoordinatorOptions {
  std::string model_path;            // read for metadata and vocabulary only
  // host:port of every worker, any order: workers serving the same layer
  // range are replicas (the coordinator spreads sequences and fails over).
  std::vector<std::string> workers;
  std::string listen = "127.0.0.1:50051";
  EngineOptions engine;
  // Draft-model speculation: a whole-model stage of draft_model_path
  // (opened by a binary that has the layer compute: `shardlm serve`); its
  // vocabulary is checked against model_path's at start. Null: none.
  std::shared_ptr<Stage> draft_stage;
  std::string draft_model_path;
  absl::Duration worker_wait = absl::Minutes(10);  // for workers still loading
  absl::Duration call_timeout = absl::Seconds(30);
  std::string hidden_dtype = "f32";  // hidden states between workers: f32|f16|bf16
  // "relay": the coordinator passes hidden states between stages; "chain":
  // stages pass them to each other (coordinator/chain.h).
  std::string topology = "relay";
  // OpenAI-compatible HTTP API (openai_http.h): off unless an address is given.
  std::string http_listen;
  std::vector<std::string> api_keys;  // HTTP bearer tokens; empty: no auth
  HttpLimits http_limits;             // the HTTP API port (docs/DEPLOY.md, "Limits")
  int http_max_json_depth = 64;       // arrays/objects nested in an HTTP request body
  // Chat template family ("zephyr", "llama2", "chatml") used by Chat and
  // /v1/chat/completions when a request names none; empty: the model's own
  // tokenizer.chat_template.
  std::string chat_template;
  // Prometheus text metrics over HTTP (GET /metrics); off when empty.
  std::string metrics_listen;
  HttpLimits metrics_limits = MetricsHttpLimits();  // its port's (--metrics-* flags)
  // Transport security (common/rpc/credentials.h); null: plaintext. The
  // server side faces clients; the worker side is the coordinator's client
  // certificate and trusted CA towards the workers (mutual TLS).
  std::shared_ptr<grpc::ServerCredentials> server_credentials;
  std::shared_ptr<grpc::ChannelCredentials> worker_credentials;
  std::string worker_tls_server_name;  // name on the workers' certificates, if not their host
  // Plaintext grpc.health.v1-only port mirroring the main one; off when empty.
  std::string health_listen;
  // Bearer tokens every ShardLM RPC must carry (`authorization: Bearer T`),
  // also accepted by the HTTP API; empty: no authentication.
  std::vector<std::string> auth_tokens;
  // What the public gRPC port grants each client (connections, streams,
  // memory) and each Generate/Chat stream (unread chunks, lifetime).
  GrpcServerLimits grpc_limits = PublicPortLimits();
  StreamLimits stream_limits;
  // Progress lines ("waiting for worker ... (loading)"); default: the log.
  std::function<void(const std::string&)> on_status;
};

class CoordinatorServer {
 public:
  // Connects to every worker (waiting for those still loading), validates
  // the topology and starts serving. Errors name the gap, the overlap or the
  // mismatched worker.
  static absl::StatusOr<std::unique_ptr<CoordinatorServer>> Start(const CoordinatorOptions& options);
  ~CoordinatorServer();

  // The address actually bound (resolves port 0).
  const std::string& address() const { return address_; }
  // The HTTP API's address, empty when it is off.
  const std::string& http_address() const { return http_address_; }
  // The metrics page's address, empty when it is off.
  const std::string& metrics_address() const;
  // The plaintext health port's address, empty when it is off.
  const std::string& health_address() const;
  // Stops accepting calls, ends running streams (cancelled) and waits.
  void Shutdown();

 private:
  struct State;
  explicit CoordinatorServer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
  std::string address_;
  std::string http_address_;
};

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_COORDINATOR_SERVER_H_
