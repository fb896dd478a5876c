// The command-line flags of a coordinator, defined once for both binaries
// that run one: `shardlm-coordinator` (remote workers) and `shardlm serve`
// (workers it starts on loopback). Each main adds its own flags (--model,
// --workers, ...), calls AddCoordinatorFlags, parses, then maps the result
// into CoordinatorOptions with ApplyCoordinatorFlags. Nothing here is
// global: the flags are bound to a plain struct the main owns.
#ifndef SHARDLM_COORDINATOR_COORDINATOR_FLAGS_H_
#define SHARDLM_COORDINATOR_COORDINATOR_FLAGS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "common/base/cli_args.h"
#include "common/base/http_limit_flags.h"
#include "common/rpc/credentials.h"
#include "coordinator/coordinator_server.h"

namespace shardlm {

// Where the coordinator's workers run: it changes what the worker TLS flags
// and --insecure mean (see their help).
enum class WorkerPlacement {
  kRemote,    // shardlm-coordinator: addresses given, TLS towards them unless --insecure
  kLoopback,  // shardlm serve: started here, plaintext on loopback unless --worker-tls-*
};

struct CoordinatorFlags {
  // listen, engine, hidden_dtype, http_listen, chat_template,
  // metrics_listen, health_listen and worker_tls_server_name are bound
  // directly (model_path by the caller's --model); set defaults here
  // before AddCoordinatorFlags.
  CoordinatorOptions options;
  std::vector<std::string> api_keys;  // as given: repeatable, comma-separated
  int worker_wait_s = 600;
  int call_timeout_s = 30;
  int failover_timeout_ms = 10000;
  TlsServerFlags tls;         // towards clients
  TlsClientFlags worker_tls;  // towards the workers
  bool insecure = false;
  std::string auth_token_file;
  // HTTP API limits (options.http_limits) in flag units.
  HttpConnectionFlags http_connections;  // --http-max-connections(-per-ip), --http-read-timeout
  int http_max_header_bytes = 32 << 10;
  int http_max_headers = 64;
  int http_max_body_bytes = 8 << 20;
  int http_threads = 2;
  MetricsFlags metrics;  // the --metrics-listen port's limits
  // Limits of the public gRPC port (grpc_settings.h, generate_call.h).
  std::string grpc_memory = "256M";
  int max_stream_lifetime_s = 1800;
  int max_connection_age_s = 7200;
  int max_unread_chunks = 256;
  std::string prefix_cache = "on";
  // --draft-model: opened by `shardlm serve` (which has the layer compute)
  // into options.draft_stage; shardlm-coordinator refuses it.
  std::string draft_model;
  int draft_threads = 1;
};

void AddCoordinatorFlags(WorkerPlacement placement, CliArgs* args, CoordinatorFlags* flags);

// Fills `options` from the parsed flags (the caller adds the workers and
// on_status afterwards): the bound fields, durations, API
// keys, the bearer tokens of --auth-token-file, and the credentials of both
// sides by `placement`'s rules. Errors name the flag.
absl::Status ApplyCoordinatorFlags(WorkerPlacement placement, const CoordinatorFlags& flags,
                                   CoordinatorOptions* options);

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_COORDINATOR_FLAGS_H_
