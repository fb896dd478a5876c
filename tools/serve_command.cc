#include "tools/serve_command.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/base/cli_args.h"
#include "common/model/gguf.h"
#include "common/model/layer_split.h"
#include "common/model/model_config.h"
#include "common/rpc/credentials.h"
#include "common/base/status_macros.h"
#include "common/base/subprocess.h"
#include "coordinator/coordinator_server.h"

namespace shardlm {
namespace {

struct ServeOptions {
  std::string model;
  int workers = 2;
  std::string split;
  int threads = 0;
  std::string kv_budget;
  std::string kv_type = "f16";
  CoordinatorOptions coordinator;
  TlsServerFlags tls;         // public side
  TlsClientFlags worker_tls;  // the loopback hops: the workers' certificate too
  std::string auth_token_file;
};

// Whether HOST:PORT is a loopback address (plaintext allowed without
// --insecure: only local processes can connect).
bool IsLoopback(const std::string& address) {
  const std::string host = address.substr(0, address.rfind(':'));
  return host == "localhost" || host == "[::1]" || absl::StartsWith(host, "127.");
}

// Credentials from the flags. Public side: TLS when --tls-cert is given,
// else plaintext, which needs --insecure unless --listen is loopback.
// Worker hops (loopback): plaintext unless --worker-tls-* are given, then
// mutual TLS with one certificate that serves the workers and is the
// coordinator's client certificate.
absl::Status BuildCredentials(ServeOptions* o, bool insecure) {
  o->tls.insecure = insecure || IsLoopback(o->coordinator.listen);
  ASSIGN_OR_RETURN(o->coordinator.server_credentials, MakeServerCredentials(o->tls));
  o->worker_tls.insecure = true;
  if (WantsTls(o->worker_tls) && (o->worker_tls.cert_file.empty() || o->worker_tls.ca_file.empty())) {
    return absl::InvalidArgumentError(
        "--worker-tls-cert, --worker-tls-key and --worker-tls-ca go together (the certificate "
        "serves the workers and is the coordinator's client certificate)");
  }
  ASSIGN_OR_RETURN(o->coordinator.worker_credentials, MakeChannelCredentials(o->worker_tls));
  if (!o->auth_token_file.empty()) {
    ASSIGN_OR_RETURN(o->coordinator.auth_tokens, ReadTokenFile(o->auth_token_file));
  }
  return absl::OkStatus();
}

// Layer ranges: --split as given, or --workers stages of about equal work
// (common/model/layer_split.h: weight bytes, the head counted on the last stage).
absl::StatusOr<std::vector<LayerRange>> LayerRanges(const ServeOptions& o, const GgufFile& file,
                                                    int n_layer) {
  std::vector<LayerRange> ranges;
  if (!o.split.empty()) {
    for (absl::string_view part : absl::StrSplit(o.split, ',')) {
      std::vector<std::string> ends = absl::StrSplit(part, ':');
      int a, b;
      if (ends.size() != 2 || !absl::SimpleAtoi(ends[0], &a) || !absl::SimpleAtoi(ends[1], &b)) {
        return absl::InvalidArgumentError(absl::StrCat("--split: '", std::string(part),
                                                       "' is not FIRST:LAST"));
      }
      ranges.push_back({a, b});
    }
    return ranges;
  }
  if (o.workers < 1 || o.workers > n_layer) {
    return absl::InvalidArgumentError(absl::StrCat("--workers must be between 1 and the model's ",
                                                   n_layer, " layers"));
  }
  return BalancedLayerRanges(file, n_layer, o.workers);
}

absl::Status Serve(ServeOptions o) {
  ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> file, GgufFile::Open(o.model));
  ASSIGN_OR_RETURN(ModelConfig config, ModelConfig::FromGguf(*file));
  ASSIGN_OR_RETURN(std::vector<LayerRange> ranges, LayerRanges(o, *file, config.n_layer));
  file.reset();
  const int n = static_cast<int>(ranges.size());
  int threads = o.threads;
  if (threads <= 0) threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / n);

  // Stop signals are handled here by sigwait, not by default handlers.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  const std::string worker_bin = ExecutableDir() + "/shardlm-worker";
  std::vector<std::unique_ptr<Subprocess>> workers;
  for (int i = 0; i < n; ++i) {
    std::vector<std::string> argv = {worker_bin,  "--model",   o.model,
                                     "--layers",  absl::StrCat(ranges[i].first, ":", ranges[i].second),
                                     "--listen",  "127.0.0.1:0",
                                     "--threads", std::to_string(threads),
                                     "--kv-type", o.kv_type};
    if (!o.kv_budget.empty()) {
      argv.push_back("--kv-budget");
      argv.push_back(o.kv_budget);
    }
    if (WantsTls(o.worker_tls)) {
      argv.insert(argv.end(), {"--tls-cert", o.worker_tls.cert_file, "--tls-key",
                               o.worker_tls.key_file, "--tls-ca", o.worker_tls.ca_file});
    } else {
      argv.push_back("--insecure");  // loopback only
    }
    ASSIGN_OR_RETURN(std::unique_ptr<Subprocess> p, Subprocess::Start(argv));
    ASSIGN_OR_RETURN(std::string address, p->WaitForLine("LISTENING ", absl::Seconds(60)));
    std::fprintf(stderr, "shardlm serve: worker %d (layers %d:%d, %d threads) on %s, pid %d\n", i,
                 ranges[i].first, ranges[i].second, threads, address.c_str(), p->pid());
    o.coordinator.workers.push_back(address);
    workers.push_back(std::move(p));
  }
  o.coordinator.model_path = o.model;
  o.coordinator.on_status = [](const std::string& line) {
    std::fprintf(stderr, "shardlm serve: %s\n", line.c_str());
  };
  absl::StatusOr<std::unique_ptr<CoordinatorServer>> server = CoordinatorServer::Start(o.coordinator);
  absl::Status result = server.status();
  if (server.ok()) {
    std::fprintf(stderr, "shardlm serve: serving %s on %s with %d workers (Ctrl-C stops)\n",
                 o.model.c_str(), (*server)->address().c_str(), n);
    if (!(*server)->http_address().empty()) {
      std::fprintf(stderr, "shardlm serve: OpenAI-compatible HTTP API on http://%s/v1\n",
                   (*server)->http_address().c_str());
      std::printf("HTTP %s\n", (*server)->http_address().c_str());
    }
    if (!(*server)->health_address().empty()) {
      std::printf("HEALTH %s\n", (*server)->health_address().c_str());
    }
    std::printf("SERVING %s\n", (*server)->address().c_str());
    std::fflush(stdout);
    // Wait for a stop signal, checking on the workers once a second.
    timespec tick{1, 0};
    std::vector<bool> reported(n, false);
    while (sigtimedwait(&stop, nullptr, &tick) < 0) {
      for (int i = 0; i < n; ++i) {
        if (!reported[i] && !workers[i]->running()) {
          reported[i] = true;
          std::fprintf(stderr, "shardlm serve: worker %d (pid %d) exited\n", i, workers[i]->pid());
        }
      }
    }
    std::fprintf(stderr, "shardlm serve: stopping\n");
    (*server)->Shutdown();
  }
  for (auto& w : workers) w->Signal(SIGTERM);
  for (auto& w : workers) {
    if (!w->Wait(absl::Seconds(10)).has_value()) {
      w->Signal(SIGKILL);
      w->Wait(absl::Seconds(5));
    }
  }
  return result;
}

}  // namespace

int RunServeCommand(int argc, char** argv, int first) {
  ServeOptions o;
  o.coordinator.listen = "127.0.0.1:50051";
  CliArgs args("shardlm serve --model MODEL.gguf [--workers N | --split 0:8,8:16,16:22] [--listen HOST:PORT]",
               "Starts N shardlm-worker processes on loopback, each with a contiguous share of the\n"
               "model's layers, and a coordinator serving the ShardLM gRPC API in front of them.\n"
               "With --http-listen it also serves the OpenAI-compatible HTTP API (docs/OPENAI.md).\n"
               "Prints HTTP <address> (when on), then SERVING <address> once ready; Ctrl-C or\n"
               "SIGTERM stops everything.");
  args.AddString("-m,--model", &o.model, "GGUF model file");
  args.AddInt("--workers", &o.workers, "number of workers (layers split so each does about the same work)");
  args.AddString("--split", &o.split, "explicit layer ranges, one per worker");
  args.AddString("--listen", &o.coordinator.listen, "coordinator address");
  args.AddInt("-t,--threads", &o.threads, "threads per worker, 0 = cores / workers");
  args.AddString("--kv-budget", &o.kv_budget, "KV-cache budget per worker, e.g. 2G");
  args.AddString("--kv-type", &o.kv_type, "KV cache type: f16 or f32");
  args.AddInt("--max-active", &o.coordinator.engine.max_active, "sequences decoded together");
  args.AddInt("--micro-batches", &o.coordinator.engine.micro_batches,
              "groups of sequences in flight at once (0: one per layer range)");
  args.AddInt("--max-queued", &o.coordinator.engine.max_queued, "requests waiting beyond that");
  args.AddInt("--prefill-chunk", &o.coordinator.engine.prefill_chunk,
              "prompt tokens per sequence per step");
  args.AddInt("--max-batch-tokens", &o.coordinator.engine.max_batch_tokens, "tokens per step");
  args.AddString("--hidden-dtype", &o.coordinator.hidden_dtype, "hidden states between workers: f32, f16, bf16");
  args.AddString("--http-listen", &o.coordinator.http_listen,
                 "also serve the OpenAI-compatible HTTP API here (HOST:PORT; off by default)");
  std::vector<std::string> api_keys;
  args.AddStringList("--api-key", &api_keys,
                     "bearer token the HTTP API accepts (repeatable or comma-separated; none: no auth)");
  args.AddString("--chat-template", &o.coordinator.chat_template,
                 "chat template when a request names none: zephyr, llama2, chatml (default: the model's)");
  bool insecure = false;
  o.tls.client_ca_flag = "--tls-client-ca";
  o.worker_tls.flag_prefix = "--worker-tls-";
  args.AddString("--tls-cert", &o.tls.cert_file, "server certificate chain (PEM) for clients");
  args.AddString("--tls-key", &o.tls.key_file, "private key of --tls-cert (PEM)");
  args.AddString("--tls-client-ca", &o.tls.client_ca_file,
                 "require client certificates signed by this CA (PEM)");
  args.AddString("--worker-tls-cert", &o.worker_tls.cert_file,
                 "mutual TLS on the loopback hops: certificate (PEM, SAN IP:127.0.0.1) the "
                 "workers serve and the coordinator presents; default: plaintext on loopback");
  args.AddString("--worker-tls-key", &o.worker_tls.key_file, "private key of --worker-tls-cert");
  args.AddString("--worker-tls-ca", &o.worker_tls.ca_file, "CA (PEM) that signed --worker-tls-cert");
  args.AddBool("--insecure", &insecure,
               "serve clients in plaintext on a non-loopback --listen (loopback is always allowed)");
  args.AddString("--auth-token-file", &o.auth_token_file,
                 "file of bearer tokens, one per line, that every gRPC call (and HTTP request) "
                 "must send as 'authorization: Bearer TOKEN'");
  args.AddString("--health-listen", &o.coordinator.health_listen,
                 "also serve grpc.health.v1 (only) in plaintext on HOST:PORT");
  if (absl::Status st = args.Parse(argc, argv, first); !st.ok()) {
    std::fprintf(stderr, "shardlm serve: %s\n", std::string(st.message()).c_str());
    return 2;
  }
  if (args.help_requested()) {
    std::printf("%s", args.Usage().c_str());
    return 0;
  }
  if (o.model.empty()) {
    std::fprintf(stderr, "shardlm serve: --model is required (see --help)\n");
    return 2;
  }
  for (const std::string& k : api_keys) {
    for (absl::string_view part : absl::StrSplit(k, ',', absl::SkipEmpty())) {
      o.coordinator.api_keys.push_back(std::string(part));
    }
  }
  if (absl::Status st = BuildCredentials(&o, insecure); !st.ok()) {
    std::fprintf(stderr, "shardlm serve: %s\n", std::string(st.message()).c_str());
    return 2;
  }
  if (absl::Status st = Serve(o); !st.ok()) {
    std::fprintf(stderr, "shardlm serve: %s\n", std::string(st.message()).c_str());
    return 1;
  }
  return 0;
}

}  // namespace shardlm
