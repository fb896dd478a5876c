#include "coordinator/coordinator_flags.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "common/base/status_macros.h"
#include "coordinator/chain.h"

namespace shardlm {
namespace {

// Whether HOST:PORT is a loopback address (plaintext allowed without
// --insecure: only local processes can connect).
bool IsLoopback(const std::string& address) {
  const std::string host = address.substr(0, address.rfind(':'));
  return host == "localhost" || host == "[::1]" || absl::StartsWith(host, "127.");
}

}  // namespace

void AddCoordinatorFlags(WorkerPlacement placement, CliArgs* args, CoordinatorFlags* f) {
  const bool loopback = placement == WorkerPlacement::kLoopback;
  CoordinatorOptions& o = f->options;
  EngineOptions& e = o.engine;
  args->AddString("--listen", &o.listen, "address to serve the gRPC API on (HOST:PORT)");
  args->AddInt("--max-active", &e.max_active, "sequences decoded together");
  args->AddInt("--micro-batches", &e.micro_batches,
               "groups of sequences in flight at once (0: one per layer range)");
  args->AddInt("--max-queued", &e.max_queued, "requests waiting beyond that");
  args->AddInt("--prefill-chunk", &e.prefill_chunk, "prompt tokens per sequence per step");
  args->AddInt("--max-batch-tokens", &e.max_batch_tokens, "tokens per step");
  args->AddString("--prefix-cache", &f->prefix_cache,
                  "on|off: keep finished prompts' KV on the workers and reuse it for requests "
                  "that start the same way (multi-turn chat, shared system prompts)");
  args->AddInt64("--prefix-cache-tokens", &e.prefix_cache_tokens,
                 "cap on the prompt tokens the prefix cache keeps (least recently used go first; "
                 "a full KV budget evicts too)");
  args->AddInt("--spec-ngram", &e.spec_ngram,
               "speculative decoding: up to K prompt-lookup draft tokens per sequence and step, "
               "verified in one pass through the workers (0: off; requests may opt out)");
  args->AddString("--draft-model", &f->draft_model,
                  loopback ? "speculative decoding with a small GGUF model of the same vocabulary "
                             "run in this process: it drafts --spec-draft tokens per step"
                           : "not available here: the coordinator carries no layer compute; "
                             "`shardlm serve --draft-model` runs one");
  args->AddInt("--spec-draft", &e.spec_draft, "draft tokens per step with --draft-model (1 to 32)");
  args->AddInt("--draft-threads", &f->draft_threads, "compute threads of the --draft-model");
  args->AddInt("--worker-wait", &f->worker_wait_s, "seconds to wait for workers still loading");
  args->AddInt("--call-timeout", &f->call_timeout_s,
               "seconds before a worker call fails (then: failover)");
  args->AddInt("--failover-timeout-ms", &f->failover_timeout_ms,
               "how long requests wait for a live replica of a layer range before UNAVAILABLE");
  args->AddString("--metrics-listen", &o.metrics_listen,
                  "serve Prometheus metrics at http://HOST:PORT/metrics, and at /metrics of the "
                  "--http-listen port (off by default; names: docs/DEPLOY.md, \"Metrics\")");
  AddMetricsFlags(args, &f->metrics);
  args->AddString("--hidden-dtype", &o.hidden_dtype,
                  "hidden states between workers: f32, f16, bf16");
  args->AddString("--topology", &o.topology,
                  "relay: the coordinator passes hidden states from stage to stage (2 messages "
                  "per stage per step); chain: each worker sends them straight to the next and "
                  "the last returns logits (stages + 1 messages; workers must reach each other, "
                  "docs/DEPLOY.md)");
  args->AddString("--http-listen", &o.http_listen,
                  "also serve the OpenAI-compatible HTTP API here (HOST:PORT; off by default)");
  args->AddStringList("--api-key", &f->api_keys,
                      "bearer token the HTTP API accepts (repeatable or comma-separated; none: no "
                      "auth)");
  args->AddString("--chat-template", &o.chat_template,
                  "chat template when a request names none: zephyr, llama2, chatml (default: the "
                  "model's Jinja template; chatml when it has none)");
  AddHttpConnectionFlags(args, "--http", "HTTP API", &f->http_connections);
  args->AddInt("--http-max-header-bytes", &f->http_max_header_bytes,
               "HTTP API: bytes of a request's line and headers (431 beyond)");
  args->AddInt("--http-max-headers", &f->http_max_headers,
               "HTTP API: header lines of a request (431 beyond)");
  args->AddInt("--http-max-body-bytes", &f->http_max_body_bytes,
               "HTTP API: bytes of a request body (413 beyond; a chunked one past twice this: "
               "the connection is closed)");
  args->AddInt("--http-threads", &f->http_threads,
               "HTTP API: event threads (connections never hold a thread while idle or slow)");
  args->AddInt("--http-max-json-depth", &f->options.http_max_json_depth,
               "HTTP API: arrays/objects nested in a request body (400 beyond)");
  f->tls.client_ca_flag = "--tls-client-ca";
  f->worker_tls.flag_prefix = "--worker-tls-";
  args->AddString("--tls-cert", &f->tls.cert_file, "server certificate chain (PEM) for clients");
  args->AddString("--tls-key", &f->tls.key_file, "private key of --tls-cert (PEM)");
  args->AddString("--tls-client-ca", &f->tls.client_ca_file,
                  "require client certificates signed by this CA (PEM); default: none required");
  if (loopback) {
    args->AddString("--worker-tls-cert", &f->worker_tls.cert_file,
                    "mutual TLS on the loopback hops: certificate (PEM, SAN IP:127.0.0.1) the "
                    "workers serve and the coordinator presents; default: plaintext on loopback");
    args->AddString("--worker-tls-key", &f->worker_tls.key_file,
                    "private key of --worker-tls-cert");
    args->AddString("--worker-tls-ca", &f->worker_tls.ca_file,
                    "CA (PEM) that signed --worker-tls-cert");
  } else {
    args->AddString("--worker-tls-ca", &f->worker_tls.ca_file,
                    "CA (PEM) that signed the workers' certificates");
    args->AddString("--worker-tls-cert", &f->worker_tls.cert_file,
                    "client certificate (PEM) presented to the workers (mutual TLS)");
    args->AddString("--worker-tls-key", &f->worker_tls.key_file,
                    "private key of --worker-tls-cert");
  }
  args->AddString("--worker-tls-server-name", &o.worker_tls_server_name,
                  "name the workers' certificates carry, when not the host of their address");
  args->AddBool("--insecure", &f->insecure,
                loopback ? "serve clients in plaintext on a non-loopback --listen (loopback is "
                           "always allowed)"
                         : "plaintext for whichever side has no TLS flags (clients and/or "
                           "workers); without it both sides need TLS");
  args->AddString("--auth-token-file", &f->auth_token_file,
                  "file of bearer tokens, one per line: every gRPC call (and HTTP request) must "
                  "send 'authorization: Bearer TOKEN'");
  args->AddString("--health-listen", &o.health_listen,
                  "also serve grpc.health.v1 (only) in plaintext on HOST:PORT, e.g. for probes");
  args->AddInt("--grpc-max-streams", &o.grpc_limits.max_concurrent_streams,
               "HTTP/2 streams one gRPC connection may open at once (calls beyond wait or are "
               "refused)");
  args->AddInt("--grpc-max-open-streams", &o.grpc_limits.max_open_streams,
               kGrpcMaxOpenStreamsFlagHelp);
  args->AddString("--grpc-memory", &f->grpc_memory,
                  "gRPC resource quota: memory its buffers may use for all connections (e.g. "
                  "256M); under pressure gRPC shrinks windows and buffers");
  args->AddInt("--max-stream-lifetime", &f->max_stream_lifetime_s,
               "seconds a Generate/Chat stream may run before it ends with DEADLINE_EXCEEDED");
  args->AddInt("--max-connection-age", &f->max_connection_age_s,
               "seconds before a client connection is asked to reconnect (running streams finish "
               "first)");
  args->AddInt("--max-unread-chunks", &f->max_unread_chunks,
               "generated chunks a stream may hold for a client that does not read; past it "
               "the request ends with RESOURCE_EXHAUSTED");
}

absl::Status ApplyCoordinatorFlags(WorkerPlacement placement, const CoordinatorFlags& f,
                                   CoordinatorOptions* o) {
  *o = f.options;
  o->worker_wait = absl::Seconds(f.worker_wait_s);
  o->call_timeout = absl::Seconds(f.call_timeout_s);
  o->engine.failover_timeout = absl::Milliseconds(f.failover_timeout_ms);
  RETURN_IF_ERROR(CheckTopology(o->topology));
  if (f.prefix_cache != "on" && f.prefix_cache != "off") {
    return absl::InvalidArgumentError(
        absl::StrCat("--prefix-cache is '", f.prefix_cache, "', must be on or off"));
  }
  o->engine.prefix_cache = f.prefix_cache == "on";
  if (!f.draft_model.empty() && placement == WorkerPlacement::kRemote) {
    return absl::InvalidArgumentError(
        "--draft-model: shardlm-coordinator carries no layer compute (docs/ARCHITECTURE.md, "
        "layering); run the draft with `shardlm serve --draft-model`, or use --spec-ngram");
  }
  if (!f.draft_model.empty() && f.options.engine.spec_ngram > 0) {
    return absl::InvalidArgumentError("--spec-ngram and --draft-model: choose one way of drafting");
  }
  if (!f.draft_model.empty() && (f.draft_threads < 1 || f.draft_threads > 256)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--draft-threads is ", f.draft_threads, ", must be 1 to 256"));
  }
  if (f.options.engine.spec_draft < 1 || f.options.engine.spec_draft > 32) {
    return absl::InvalidArgumentError(
        absl::StrCat("--spec-draft is ", f.options.engine.spec_draft, ", must be 1 to 32"));
  }
  o->draft_model_path = f.draft_model;
  if (f.http_max_header_bytes < 1024 || f.http_max_headers < 1 || f.http_max_body_bytes < 0 ||
      f.http_threads < 1 || f.options.http_max_json_depth < 1) {
    return absl::InvalidArgumentError(
        "--http-max-headers, --http-threads and --http-max-json-depth must be >= 1, "
        "--http-max-header-bytes >= 1024, --http-max-body-bytes >= 0");
  }
  RETURN_IF_ERROR(ApplyHttpConnectionFlags(f.http_connections, "--http", &o->http_limits));
  o->http_limits.max_header_bytes = static_cast<size_t>(f.http_max_header_bytes);
  o->http_limits.max_headers = f.http_max_headers;
  o->http_limits.max_body_bytes = static_cast<size_t>(f.http_max_body_bytes);
  o->http_limits.threads = f.http_threads;
  ASSIGN_OR_RETURN(o->metrics_limits, MetricsLimitsFromFlags(f.metrics));
  for (const std::string& k : f.api_keys) {
    for (absl::string_view part : absl::StrSplit(k, ',', absl::SkipEmpty())) {
      o->api_keys.push_back(std::string(part));
    }
  }
  int64_t grpc_memory = 0;
  if (absl::Status st = ParseByteSize(f.grpc_memory, &grpc_memory); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--grpc-memory: ", st.message()));
  }
  o->grpc_limits.memory_bytes = grpc_memory;
  if (f.max_stream_lifetime_s < 1 || f.max_connection_age_s < 1) {
    return absl::InvalidArgumentError(
        "--max-stream-lifetime and --max-connection-age must be at least 1 second");
  }
  if (f.max_unread_chunks < 1) {
    return absl::InvalidArgumentError("--max-unread-chunks must be at least 1");
  }
  o->stream_limits.max_unread_chunks = static_cast<size_t>(f.max_unread_chunks);
  o->stream_limits.max_lifetime = absl::Seconds(f.max_stream_lifetime_s);
  o->grpc_limits.max_connection_age = absl::Seconds(f.max_connection_age_s);
  RETURN_IF_ERROR(ValidateGrpcServerLimits(o->grpc_limits, "--grpc-"));
  TlsServerFlags tls = f.tls;
  TlsClientFlags worker_tls = f.worker_tls;
  if (placement == WorkerPlacement::kLoopback) {
    // Clients: TLS when --tls-cert is given, else plaintext, which needs
    // --insecure unless --listen is loopback. Worker hops (loopback):
    // plaintext unless --worker-tls-* are given, then mutual TLS with one
    // certificate that the workers serve and the coordinator presents.
    tls.insecure = f.insecure || IsLoopback(o->listen);
    worker_tls.insecure = true;
    if (WantsTls(worker_tls) && (worker_tls.cert_file.empty() || worker_tls.ca_file.empty())) {
      return absl::InvalidArgumentError(
          "--worker-tls-cert, --worker-tls-key and --worker-tls-ca go together (the certificate "
          "serves the workers and is the coordinator's client certificate)");
    }
  } else {
    tls.insecure = f.insecure;
    worker_tls.insecure = f.insecure;
  }
  ASSIGN_OR_RETURN(o->server_credentials, MakeServerCredentials(tls));
  ASSIGN_OR_RETURN(o->worker_credentials, MakeChannelCredentials(worker_tls));
  if (!f.auth_token_file.empty()) {
    ASSIGN_OR_RETURN(o->auth_tokens, ReadTokenFile(f.auth_token_file));
  }
  return absl::OkStatus();
}

}  // namespace shardlm
