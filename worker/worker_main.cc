// shardlm-worker: serves one contiguous layer range of a GGUF model over
// gRPC (shardlm.v1.Stage, grpc.health.v1, reflection).
//
// It listens before loading, so launchers learn the port at once. Machine-
// readable lines on stdout (flushed), for `shardlm serve` and the tests:
//   LISTENING <host:port>   bound (health NOT_SERVING, Forward UNAVAILABLE)
//   HEALTH <host:port>      the plaintext health port (--health-listen only)
//   READY                   weights loaded and checked (health SERVING)
// Plaintext needs --insecure; with --tls-cert/--tls-key/--tls-ca every
// client must present a certificate signed by that CA (mutual TLS).
// Everything else goes to stderr. SIGINT / SIGTERM stop it cleanly: running
// calls get a few seconds to finish; exit code 0. Load errors exit with 1.
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <tuple>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/base/cli_args.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/base/metrics.h"
#include "common/base/metrics_server.h"
#include "common/fetch/model_source.h"
#include "common/kernels/cpu_features.h"
#include "common/kernels/tensor_format.h"
#include "common/rpc/credentials.h"
#include "common/rpc/grpc_settings.h"
#include "common/rpc/stream_flood_guard.h"
#include "worker/kv_budget.h"
#include "worker/llama_stage.h"
#include "worker/stage_server.h"

namespace shardlm {
namespace {

struct WorkerOptions {
  std::string model;
  std::string layers;  // "FIRST:LAST", LAST empty = through the last layer
  std::string listen = "127.0.0.1:5001";
  int threads = 0;
  std::string kv_budget = "auto";
  std::string kv_type = "f16";
  int ctx = 0;
  int max_batch = kDefaultMaxBatchTokens;
  std::string max_message = "64M";
  int shutdown_grace_s = 5;
  std::string metrics_listen;  // Prometheus /metrics, off when empty
  MetricsFlags metrics;        // its port's limits
  // Mutual TLS: server certificate, its key, and the CA that signs the
  // coordinators' client certificates; or explicitly plaintext.
  std::string tls_cert, tls_key, tls_ca;
  bool insecure = false;
  // The client side of worker-to-worker hops (--topology chain); each
  // defaults to the --tls-* file of the same role.
  std::string peer_tls_cert, peer_tls_key, peer_tls_ca, peer_tls_server_name;
  int max_peers = PeerPoolOptions().max_peers;
  int peer_idle_s = 300;
  std::string health_listen;  // plaintext grpc.health.v1 only, off when empty
  ModelSourceOptions source;  // --model as a URL: cache, token
  int grpc_max_streams = GrpcServerLimits().max_concurrent_streams;
  int grpc_max_open_streams = 0;  // 0: 4 x grpc_max_streams
  std::string grpc_memory = "256M";
  std::string cpu;            // kernel set, empty = $SHARDLM_CPU or the best
};

absl::Status ParseLayers(const std::string& text, StageOptions* o) {
  if (text.empty()) return absl::OkStatus();  // the whole model
  std::vector<std::string> ends = absl::StrSplit(text, ':');
  int last = -1;
  if (ends.size() != 2 || !absl::SimpleAtoi(ends[0], &o->first_layer) ||
      (!ends[1].empty() && !absl::SimpleAtoi(ends[1], &last))) {
    return absl::InvalidArgumentError(absl::StrCat("--layers: '", text, "' is not FIRST:LAST"));
  }
  o->last_layer = last;
  return absl::OkStatus();
}

// Resident set size of this process in bytes (VmRSS), 0 if unknown.
int64_t ResidentBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    int64_t kb = 0;
    if (line.rfind("VmRSS:", 0) == 0 &&
        absl::SimpleAtoi(absl::StripAsciiWhitespace(absl::StripSuffix(line.substr(6), "kB")),
                         &kb)) {
      return kb * 1024;
    }
  }
  return 0;
}

// Prints a protocol line on stdout and flushes it at once: the launcher
// reads it through a pipe, where stdout is otherwise block-buffered.
void Announce(const std::string& line) {
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

// Set once the stage serves; a signal before that exits without waiting for
// the loading thread (which may be in the middle of a file).
std::atomic<bool> g_serving{false};

// Waits for SIGINT / SIGTERM (blocked in every thread, see main) and shuts
// the server down.
void WaitForSignalAndStop(StageServer* server, absl::Duration grace) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  int sig = 0;
  sigwait(&set, &sig);
  SHARDLM_LOG(kInfo, "%s received: shutting down (grace %s)", sig == SIGINT ? "SIGINT" : "SIGTERM",
              absl::FormatDuration(grace));
  server->Shutdown(grace);
  if (!g_serving.load()) {
    SHARDLM_LOG(kInfo, "stopped while loading");
    std::fflush(stderr);
    std::_Exit(0);
  }
}

int Run(const WorkerOptions& o) {
  StageOptions so;
  if (absl::Status st = ParseLayers(o.layers, &so); !st.ok()) {
    SHARDLM_LOG(kError, "%s", std::string(st.message()));
    return 2;
  }
  if (absl::Status st = UseKernelSet(o.cpu); !st.ok()) {
    SHARDLM_LOG(kError, "--cpu: %s", std::string(st.message()));
    return 2;
  }
  SHARDLM_LOG(kInfo, "kernel set %s (CPU: %s)", std::string(BestKernelName()),
              CpuFeatureList(HostCpu()));
  so.n_threads = o.threads;
  so.n_ctx = o.ctx;
  absl::StatusOr<KvType> kv_type = ParseKvType(o.kv_type);
  if (!kv_type.ok()) {
    SHARDLM_LOG(kError, "%s", std::string(kv_type.status().message()));
    return 2;
  }
  so.kv_type = *kv_type;
  int64_t max_message = 0;
  int64_t grpc_memory = 0;
  const bool auto_kv_budget = o.kv_budget == "auto";
  const std::string kv_budget_text = auto_kv_budget ? "0" : o.kv_budget;
  for (auto [flag, text, out] : {std::tuple{"--kv-budget", &kv_budget_text, &so.kv_budget_bytes},
                                 std::tuple{"--max-message-size", &o.max_message, &max_message},
                                 std::tuple{"--grpc-memory", &o.grpc_memory, &grpc_memory}}) {
    if (absl::Status st = ParseByteSize(*text, out); !st.ok()) {
      SHARDLM_LOG(kError, "%s: %s", flag, std::string(st.message()));
      return 2;
    }
  }
  if (max_message < (1 << 20) || max_message > (1 << 30) || o.max_batch < 1) {
    SHARDLM_LOG(kError, "--max-message-size must be in [1M, 1G] and --max-batch >= 1");
    return 2;
  }

  if (auto_kv_budget) {
    // The mapped file bounds this stage's weights from above.
    std::error_code ec;
    const auto file_bytes = std::filesystem::file_size(o.model, ec);
    const MemoryFacts facts = ReadMemoryFacts();
    so.kv_budget_bytes = DefaultKvBudget(facts, ec ? 0 : static_cast<int64_t>(file_bytes));
    SHARDLM_LOG(kInfo, "KV budget %.1f MiB (default: half of the memory left after the weights; %s; "
                "--kv-budget sets it)",
                so.kv_budget_bytes / 1048576.0, DescribeMemoryFacts(facts));
  } else if (so.kv_budget_bytes == 0) {
    SHARDLM_LOG(kWarning, "--kv-budget 0: the KV cache is unlimited (clients can exhaust memory)");
  }

  TlsServerFlags tls;
  tls.cert_file = o.tls_cert;
  tls.key_file = o.tls_key;
  tls.client_ca_file = o.tls_ca;
  tls.client_ca_flag = "--tls-ca";
  tls.require_client_ca = true;  // Forward only for authenticated coordinators
  tls.insecure = o.insecure;
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials = MakeServerCredentials(tls);
  if (!credentials.ok()) {
    SHARDLM_LOG(kError, "%s", std::string(credentials.status().message()));
    return 2;
  }

  // Hops to the next worker (--topology chain) use the same mutual TLS as
  // the coordinator link: this worker's own certificate as its client
  // certificate and its CA as the roots, unless --peer-tls-* say otherwise.
  TlsClientFlags peer_tls;
  peer_tls.cert_file = o.peer_tls_cert.empty() ? o.tls_cert : o.peer_tls_cert;
  peer_tls.key_file = o.peer_tls_key.empty() ? o.tls_key : o.peer_tls_key;
  peer_tls.ca_file = o.peer_tls_ca.empty() ? o.tls_ca : o.peer_tls_ca;
  peer_tls.insecure = o.insecure;
  peer_tls.flag_prefix = "--peer-tls-";
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> peer_credentials =
      MakeChannelCredentials(peer_tls);
  if (!peer_credentials.ok()) {
    SHARDLM_LOG(kError, "%s", std::string(peer_credentials.status().message()));
    return 2;
  }
  if (o.max_peers < 1 || o.peer_idle_s < 1) {
    SHARDLM_LOG(kError, "--max-peers and --peer-idle must be at least 1");
    return 2;
  }

  StageServerOptions server_options;
  server_options.listen_address = o.listen;
  server_options.service.peers.credentials = *peer_credentials;
  server_options.service.peers.tls_server_name = o.peer_tls_server_name;
  server_options.service.peers.max_peers = o.max_peers;
  server_options.service.peers.idle_timeout = absl::Seconds(o.peer_idle_s);
  server_options.credentials = *credentials;
  server_options.health_listen = o.health_listen;
  server_options.max_message_bytes = static_cast<int>(max_message);
  server_options.service.max_batch_tokens = o.max_batch;
  server_options.limits.max_concurrent_streams = o.grpc_max_streams;
  server_options.limits.max_open_streams = o.grpc_max_open_streams;
  server_options.limits.memory_bytes = grpc_memory;
  if (absl::Status st = ValidateGrpcServerLimits(server_options.limits); !st.ok()) {
    SHARDLM_LOG(kError, "%s", std::string(st.message()));
    return 2;
  }
  const absl::StatusOr<HttpLimits> metrics_limits = MetricsLimitsFromFlags(o.metrics);
  if (!metrics_limits.ok()) {
    SHARDLM_LOG(kError, "%s", std::string(metrics_limits.status().message()));
    return 2;
  }
  absl::StatusOr<std::unique_ptr<StageServer>> server = StageServer::Start(server_options);
  if (!server.ok()) {
    SHARDLM_LOG(kError, "%s", std::string(server.status().message()));
    return 1;
  }
  Announce(absl::StrCat("LISTENING ", (*server)->address()));
  if (!(*server)->health_address().empty()) Announce("HEALTH " + (*server)->health_address());
  const std::string range =
      o.layers.empty() ? std::string("all layers") : absl::StrCat("layers ", o.layers);
  SHARDLM_LOG(kInfo, "listening on %s; loading %s of %s ...", (*server)->address(), range, o.model);

  // Signals end the process at any time, loading included.
  std::thread signals(WaitForSignalAndStop, server->get(), absl::Seconds(o.shutdown_grace_s));
  const absl::Time start = absl::Now();
  // /metrics serves from the start, so a --model URL's download progress
  // shows while it runs; the stage's series join once it is loaded.
  auto fetch_stats = std::make_shared<ModelFetchStats>();
  auto stage_slot = std::make_shared<std::shared_ptr<LlamaStage>>();
  std::unique_ptr<MetricsServer> metrics;
  if (!o.metrics_listen.empty()) {
    absl::StatusOr<std::unique_ptr<MetricsServer>> m =
        MetricsServer::Start(o.metrics_listen, [fetch_stats, stage_slot] {
          MetricsPage page;
          fetch_stats->Render(&page);
          RenderStreamFloodGuardMetrics(&page);
          if (std::shared_ptr<LlamaStage> s = std::atomic_load(stage_slot.get())) {
            s->RenderMetrics(&page);
          }
          return page.text();
        }, *metrics_limits);
    if (!m.ok()) {
      SHARDLM_LOG(kError, "%s", std::string(m.status().message()));
      std::fflush(stderr);
      std::_Exit(1);
    }
    metrics = std::move(*m);
    Announce("METRICS " + metrics->address());
  }
  // A URL: fetch only this stage's tensors into the local cache first.
  ModelSourceOptions source = o.source;
  source.stats = fetch_stats.get();
  absl::StatusOr<std::string> path = ResolveModelPath(
      o.model, ModelPart::Layers(so.first_layer, so.last_layer), source);
  absl::StatusOr<std::unique_ptr<LlamaStage>> stage =
      path.ok() ? LlamaStage::Open(*path, so) : path.status();
  absl::Status checked = stage.ok() ? WarmUpStage(stage->get()) : stage.status();
  if (!checked.ok()) {
    SHARDLM_LOG(kError, "cannot serve %s of %s: %s", range, o.model,
                std::string(checked.message()));
    std::fflush(stderr);
    std::_Exit(1);
  }
  const ShardInfo& info = (*stage)->info();
  const int64_t weight_bytes = (*stage)->weight_bytes();
  StageDetails details{(*stage)->config().name, weight_bytes};
  std::shared_ptr<LlamaStage> served(std::move(*stage));
  std::atomic_store(stage_slot.get(), served);
  (*server)->SetStage(served, std::move(details));
  g_serving.store(true);
  SHARDLM_LOG(kInfo,
              "ready in %.2f s: layers %d:%d of %d%s%s, %.1f MiB of weights, context %d, "
              "RSS %.1f MiB",
              absl::ToDoubleSeconds(absl::Now() - start), info.first_layer, info.last_layer,
              info.n_layer, info.is_first() ? " + embedding" : "", info.is_last() ? " + head" : "",
              weight_bytes / 1048576.0, info.n_ctx, ResidentBytes() / 1048576.0);
  Announce("READY");

  signals.join();  // returns once a signal has shut the server down
  SHARDLM_LOG(kInfo, "stopped");
  return 0;
}

}  // namespace
}  // namespace shardlm

int main(int argc, char** argv) {
  using namespace shardlm;
  WorkerOptions o;
  CliArgs args(
      "shardlm-worker --model MODEL.gguf --layers FIRST:LAST --listen HOST:PORT [options]",
      "Serves transformer layers [FIRST, LAST) of a GGUF model to a shardlm coordinator over\n"
      "gRPC (shardlm.v1.Stage). The first stage also owns the token embedding, the last the\n"
      "final norm and output head. Prints 'LISTENING HOST:PORT' once bound (port 0 picks a\n"
      "free port) and 'READY' once the weights are loaded and checked; SIGINT/SIGTERM stop it.");
  args.AddString("-m,--model", &o.model,
                 "GGUF model file (memory-mapped; only this stage's tensors are read), or a "
                 "URL: http(s)://... or hf://OWNER/REPO/FILE.gguf[@REVISION], of which only "
                 "this stage's tensors are fetched");
  args.AddString("--layers", &o.layers,
                 "layer range FIRST:LAST (LAST exclusive, empty = to the "
                 "end); default: the whole model");
  args.AddString("--listen", &o.listen, "address to serve on, HOST:PORT");
  args.AddInt("-t,--threads", &o.threads,
              "compute threads, 0 = all cores oneTBB sees (set it "
              "explicitly in containers)");
  args.AddString("--kv-budget", &o.kv_budget,
                 "KV cache memory budget, e.g. 512M or 2G; auto = half of the memory left after "
                 "the weights (MemAvailable / cgroup memory.max); 0 = unlimited");
  args.AddString("--kv-type", &o.kv_type, kKvTypeFlagHelp);
  args.AddString("--cpu", &o.cpu, kCpuFlagHelp);
  args.AddInt("--ctx", &o.ctx, "positions per sequence, 0 = the model's training context");
  args.AddInt("--max-batch", &o.max_batch, "most tokens accepted in one Forward call");
  args.AddString("--max-message-size", &o.max_message, "gRPC message limit (send and receive)");
  args.AddString("--metrics-listen", &o.metrics_listen,
                 "serve Prometheus metrics at http://HOST:PORT/metrics (off by default)");
  AddMetricsFlags(&args, &o.metrics);
  args.AddString("--tls-cert", &o.tls_cert, "server certificate chain (PEM) for mutual TLS");
  args.AddString("--tls-key", &o.tls_key, "private key of --tls-cert (PEM)");
  args.AddString("--tls-ca", &o.tls_ca,
                 "CA certificate (PEM) that must have signed every client's certificate "
                 "(coordinators); clients without one are refused");
  args.AddBool("--insecure", &o.insecure,
               "serve plaintext without TLS (only on trusted networks); required when no "
               "--tls-* flags are given");
  args.AddString("--peer-tls-cert", &o.peer_tls_cert,
                 "client certificate (PEM) this worker presents to the next worker of a chain "
                 "(--topology chain; default: --tls-cert)");
  args.AddString("--peer-tls-key", &o.peer_tls_key,
                 "private key of --peer-tls-cert (default: --tls-key)");
  args.AddString("--peer-tls-ca", &o.peer_tls_ca,
                 "CA certificate (PEM) that must have signed the next worker's server certificate "
                 "(default: --tls-ca)");
  args.AddString("--peer-tls-server-name", &o.peer_tls_server_name,
                 "name the next worker's certificate must carry when it is not the host of its "
                 "address (e.g. one certificate for every worker pod)");
  args.AddInt("--max-peers", &o.max_peers,
              "next-stage workers this worker keeps a connection to (least recently used "
              "closed first)");
  args.AddInt("--peer-idle", &o.peer_idle_s,
              "seconds after which an unused connection to a next-stage worker is closed");
  args.AddString("--health-listen", &o.health_listen,
                 "also serve grpc.health.v1 (only) in plaintext on HOST:PORT, e.g. for "
                 "Kubernetes probes; prints 'HEALTH HOST:PORT'");
  args.AddInt("--grpc-max-streams", &o.grpc_max_streams,
              "HTTP/2 streams one gRPC connection may open at once");
  args.AddInt("--grpc-max-open-streams", &o.grpc_max_open_streams, kGrpcMaxOpenStreamsFlagHelp);
  args.AddString("--grpc-memory", &o.grpc_memory,
                 "gRPC resource quota: memory its buffers may use for all connections (e.g. 256M)");
  args.AddInt("--shutdown-grace", &o.shutdown_grace_s, "seconds running calls get at shutdown");
  AddModelSourceFlags(&args, &o.source);
  if (std::optional<int> exit = args.ParseForMain(argc, argv, "shardlm-worker")) return *exit;
  o.source.client = "shardlm-worker layers " + (o.layers.empty() ? std::string("all") : o.layers);
  if (o.model.empty()) {
    std::fprintf(stderr, "shardlm-worker: --model is required (see --help)\n");
    return 2;
  }
  // Block the stop signals before any thread exists (gRPC's, oneTBB's) so
  // they inherit the mask and only sigwait() in the signal thread sees them.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return Run(o);
}
