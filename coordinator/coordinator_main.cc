// shardlm-coordinator: the public gRPC endpoint in front of a pipeline of
// shardlm-worker processes.
#include <csignal>
#include <cstdio>

#include "absl/strings/str_split.h"
#include "common/base/cli_args.h"
#include "common/rpc/credentials.h"
#include "coordinator/coordinator_server.h"

int main(int argc, char** argv) {
  shardlm::CoordinatorOptions o;
  std::string workers;
  int wait_s = 600, timeout_s = 30;
  shardlm::CliArgs args(
      "shardlm-coordinator --model MODEL.gguf --workers HOST:PORT,HOST:PORT,... [--listen HOST:PORT]",
      "Serves the public ShardLM gRPC API (Generate, Tokenize, Detokenize, GetModelInfo, health,\n"
      "reflection) over a pipeline of shardlm-worker processes (replicas of a layer range share\n"
      "the load and take over when one fails). Reads only the model's metadata\n"
      "and vocabulary; checks that the workers' layer ranges are contiguous, cover the model\n"
      "and serve the same file, waiting for workers that are still loading.");
  args.AddString("-m,--model", &o.model_path, "GGUF model file (metadata and vocabulary only)");
  args.AddString("--workers", &workers,
                 "worker addresses, comma-separated; workers of the same layers are replicas");
  args.AddString("--listen", &o.listen, "address to serve on");
  args.AddInt("--max-active", &o.engine.max_active, "sequences decoded together");
  args.AddInt("--micro-batches", &o.engine.micro_batches,
              "groups of sequences in flight at once (0: one per layer range)");
  args.AddInt("--max-queued", &o.engine.max_queued, "requests waiting beyond that");
  args.AddInt("--prefill-chunk", &o.engine.prefill_chunk, "prompt tokens per sequence per step");
  args.AddInt("--max-batch-tokens", &o.engine.max_batch_tokens, "tokens per step");
  args.AddInt("--worker-wait", &wait_s, "seconds to wait for workers still loading");
  args.AddInt("--call-timeout", &timeout_s, "seconds before a worker call fails (then: failover)");
  int failover_ms = 10000;
  args.AddInt("--failover-timeout-ms", &failover_ms,
              "how long requests wait for a live replica of a layer range before UNAVAILABLE");
  args.AddString("--metrics-listen", &o.metrics_listen,
                 "serve Prometheus metrics at http://HOST:PORT/metrics (off by default)");
  args.AddString("--hidden-dtype", &o.hidden_dtype, "hidden states between workers: f32, f16, bf16");
  args.AddString("--http-listen", &o.http_listen,
                 "also serve the OpenAI-compatible HTTP API here (HOST:PORT; off by default)");
  std::vector<std::string> api_keys;
  args.AddStringList("--api-key", &api_keys,
                     "bearer token the HTTP API accepts (repeatable or comma-separated; none: no auth)");
  args.AddString("--chat-template", &o.chat_template,
                 "chat template when a request names none: zephyr, llama2, chatml (default: the model's)");
  shardlm::TlsServerFlags tls;  // towards clients
  tls.client_ca_flag = "--tls-client-ca";
  shardlm::TlsClientFlags worker_tls;  // towards workers
  worker_tls.flag_prefix = "--worker-tls-";
  bool insecure = false;
  std::string auth_token_file;
  args.AddString("--tls-cert", &tls.cert_file, "server certificate chain (PEM) for clients");
  args.AddString("--tls-key", &tls.key_file, "private key of --tls-cert (PEM)");
  args.AddString("--tls-client-ca", &tls.client_ca_file,
                 "require client certificates signed by this CA (PEM); default: none required");
  args.AddString("--worker-tls-ca", &worker_tls.ca_file,
                 "CA (PEM) that signed the workers' certificates");
  args.AddString("--worker-tls-cert", &worker_tls.cert_file,
                 "client certificate (PEM) presented to the workers (mutual TLS)");
  args.AddString("--worker-tls-key", &worker_tls.key_file, "private key of --worker-tls-cert");
  args.AddString("--worker-tls-server-name", &o.worker_tls_server_name,
                 "name the workers' certificates carry, when not the host of their address");
  args.AddBool("--insecure", &insecure,
               "plaintext for whichever side has no TLS flags (clients and/or workers); "
               "without it both sides need TLS");
  args.AddString("--auth-token-file", &auth_token_file,
                 "file of bearer tokens, one per line: every gRPC call (and HTTP request) must "
                 "send 'authorization: Bearer TOKEN'");
  args.AddString("--health-listen", &o.health_listen,
                 "also serve grpc.health.v1 (only) in plaintext on HOST:PORT, e.g. for probes");
  if (absl::Status st = args.Parse(argc, argv); !st.ok()) {
    std::fprintf(stderr, "shardlm-coordinator: %s\n", std::string(st.message()).c_str());
    return 2;
  }
  if (args.help_requested()) {
    std::printf("%s", args.Usage().c_str());
    return 0;
  }
  if (o.model_path.empty() || workers.empty()) {
    std::fprintf(stderr, "shardlm-coordinator: --model and --workers are required (see --help)\n");
    return 2;
  }
  o.workers = absl::StrSplit(workers, ',', absl::SkipEmpty());
  for (const std::string& k : api_keys) {
    for (absl::string_view part : absl::StrSplit(k, ',', absl::SkipEmpty())) {
      o.api_keys.push_back(std::string(part));
    }
  }
  tls.insecure = insecure;
  worker_tls.insecure = insecure;
  auto server_credentials = shardlm::MakeServerCredentials(tls);
  auto worker_credentials = server_credentials.ok()
                                ? shardlm::MakeChannelCredentials(worker_tls)
                                : server_credentials.status();
  if (!worker_credentials.ok()) {
    std::fprintf(stderr, "shardlm-coordinator: %s\n",
                 std::string(worker_credentials.status().message()).c_str());
    return 2;
  }
  o.server_credentials = *server_credentials;
  o.worker_credentials = *worker_credentials;
  if (!auth_token_file.empty()) {
    auto tokens = shardlm::ReadTokenFile(auth_token_file);
    if (!tokens.ok()) {
      std::fprintf(stderr, "shardlm-coordinator: %s\n", std::string(tokens.status().message()).c_str());
      return 2;
    }
    o.auth_tokens = std::move(*tokens);
  }
  o.worker_wait = absl::Seconds(wait_s);
  o.call_timeout = absl::Seconds(timeout_s);
  o.engine.failover_timeout = absl::Milliseconds(failover_ms);

  // Block the stop signals before any thread starts; wait for them below.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  auto server = shardlm::CoordinatorServer::Start(o);
  if (!server.ok()) {
    std::fprintf(stderr, "shardlm-coordinator: %s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  if (!(*server)->http_address().empty()) std::printf("HTTP %s\n", (*server)->http_address().c_str());
  std::printf("LISTENING %s\n", (*server)->address().c_str());
  if (!(*server)->health_address().empty()) {
    std::printf("HEALTH %s\n", (*server)->health_address().c_str());
  }
  if (!(*server)->metrics_address().empty()) {
    std::printf("METRICS %s\n", (*server)->metrics_address().c_str());
  }
  std::fflush(stdout);
  int sig = 0;
  sigwait(&stop, &sig);
  std::fprintf(stderr, "shardlm-coordinator: signal %d, shutting down\n", sig);
  (*server)->Shutdown();
  return 0;
}
