#include "tools/serve_command.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/cli_args.h"
#include "common/base/status_macros.h"
#include "common/base/subprocess.h"
#include "common/fetch/model_source.h"
#include "common/model/embedded/embedded_model.h"
#include "common/kernels/tensor_format.h"
#include "common/model/gguf.h"
#include "common/model/layer_split.h"
#include "common/model/model_config.h"
#include "coordinator/coordinator_flags.h"
#include "coordinator/coordinator_server.h"
#include "worker/kv_cache.h"
#include "worker/llama_stage.h"

namespace shardlm {
namespace {

struct ServeOptions {
  std::string model;
  int workers = 2;
  std::string split;
  int threads = 0;
  std::string kv_budget;
  std::string kv_type = "f16";
  std::string cpu;  // --cpu for every worker (they check it)
  CoordinatorOptions coordinator;
  TlsClientFlags worker_tls;  // the loopback hops: the workers' certificate too
  ModelSourceOptions source;  // --model as a URL: each worker fetches its own layers
};

// Layer ranges: --split as given, or --workers stages of about equal work
// (common/model/layer_split.h: weight bytes, the head counted on the last stage).
absl::StatusOr<std::vector<LayerRange>> LayerRanges(const ServeOptions& o, const GgufFile& file,
                                                    int n_layer) {
  if (!o.split.empty()) return ParseLayerRanges(o.split);
  if (o.workers < 1 || o.workers > n_layer) {
    return absl::InvalidArgumentError(
        absl::StrCat("--workers must be between 1 and the model's ", n_layer, " layers"));
  }
  return BalancedLayerRanges(file, n_layer, o.workers);
}

absl::Status Serve(ServeOptions o) {
  // A URL: the header here (split, coordinator); each worker its own layers.
  ASSIGN_OR_RETURN(o.coordinator.model_path,
                   ResolveModelPath(o.model, ModelPart::Header(), o.source));
  ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> file, GgufFile::Open(o.coordinator.model_path));
  ASSIGN_OR_RETURN(ModelConfig config, ModelConfig::FromGguf(*file));
  if (o.coordinator.draft_stage != nullptr) {  // refused before any worker starts
    ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> vocab, Tokenizer::FromGguf(*file));
    ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> draft_file,
                     GgufFile::Open(o.coordinator.draft_model_path));
    ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> draft_vocab, Tokenizer::FromGguf(*draft_file));
    RETURN_IF_ERROR(CheckSameVocabulary(*draft_vocab, o.coordinator.draft_model_path, *vocab,
                                        o.coordinator.model_path));
  }
  ASSIGN_OR_RETURN(const KvType kv_type, ParseKvType(o.kv_type));  // before workers start
  RETURN_IF_ERROR(CheckKvTypeFits(kv_type, config.head_dim));
  ASSIGN_OR_RETURN(std::vector<LayerRange> ranges, LayerRanges(o, *file, config.n_layer));
  file.reset();
  const int n = static_cast<int>(ranges.size());
  int threads = o.threads;
  if (threads <= 0)
    threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / n);

  // Stop signals are handled here by sigwait, not by default handlers.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  const std::string worker_bin = ExecutableDir() + "/shardlm-worker";
  std::vector<std::unique_ptr<Subprocess>> workers;
  for (int i = 0; i < n; ++i) {
    std::vector<std::string> argv = {worker_bin,
                                     "--model",
                                     o.model,
                                     "--layers",
                                     absl::StrCat(ranges[i].first, ":", ranges[i].second),
                                     "--listen",
                                     "127.0.0.1:0",
                                     "--threads",
                                     std::to_string(threads),
                                     "--kv-type",
                                     o.kv_type};
    if (IsModelUrl(o.model)) {
      for (const std::string& a : ModelSourceArgs(o.source)) argv.push_back(a);
    }
    if (!o.cpu.empty()) argv.insert(argv.end(), {"--cpu", o.cpu});
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
  o.coordinator.on_status = [](const std::string& line) {
    std::fprintf(stderr, "shardlm serve: %s\n", line.c_str());
  };
  absl::StatusOr<std::unique_ptr<CoordinatorServer>> server =
      CoordinatorServer::Start(o.coordinator);
  absl::Status result = server.status();
  if (server.ok()) {
    std::fprintf(stderr, "shardlm serve: serving %s on %s with %d workers (Ctrl-C stops)\n",
                 o.model.c_str(), (*server)->address().c_str(), n);
    if (!(*server)->http_address().empty()) {
      std::fprintf(stderr, "shardlm serve: OpenAI-compatible HTTP API on http://%s/v1\n",
                   (*server)->http_address().c_str());
      std::fprintf(stderr, "shardlm serve: chat page on http://%s/\n",
                   (*server)->http_address().c_str());
      std::printf("HTTP %s\n", (*server)->http_address().c_str());
    }
    if (!(*server)->health_address().empty()) {
      std::printf("HEALTH %s\n", (*server)->health_address().c_str());
    }
    if (!(*server)->metrics_address().empty()) {
      std::printf("METRICS %s\n", (*server)->metrics_address().c_str());
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
  constexpr char kProgram[] = "shardlm serve";
  ServeOptions o;
  CoordinatorFlags flags;
  CliArgs args(
      "shardlm serve [--model MODEL.gguf] [--workers N | --split 0:8,8:16,16:22] [--listen "
      "HOST:PORT]",
      "Starts N shardlm-worker processes on loopback, each with a contiguous share of the\n"
      "model's layers, and a coordinator serving the ShardLM gRPC API in front of them.\n"
      "With --http-listen it also serves the OpenAI-compatible HTTP API (docs/OPENAI.md).\n"
      "Prints HTTP, HEALTH and METRICS <address> (those that are on), then SERVING <address>\n"
      "once ready; Ctrl-C or SIGTERM stops everything. Without --model it serves the\n"
      "embedded stories260K model.");
  args.AddString("-m,--model", &o.model,
                 absl::StrCat("GGUF model file, or a URL (http(s)://..., "
                              "hf://OWNER/REPO/FILE.gguf[@REVISION]) of which each worker fetches "
                              "only its own layers; default: ",
                              kEmbeddedModelDescription));
  o.source.client = "shardlm serve";
  AddModelSourceFlags(&args, &o.source);
  args.AddInt("--workers", &o.workers,
              "number of workers (layers split so each does about the same work)");
  args.AddString("--split", &o.split, "explicit layer ranges, one per worker");
  args.AddInt("-t,--threads", &o.threads, "threads per worker, 0 = cores / workers");
  args.AddString("--kv-budget", &o.kv_budget, "KV-cache budget per worker, e.g. 2G");
  args.AddString("--kv-type", &o.kv_type, kKvTypeFlagHelp);
  args.AddString("--cpu", &o.cpu, kCpuFlagHelp);
  AddCoordinatorFlags(WorkerPlacement::kLoopback, &args, &flags);
  if (std::optional<int> exit = args.ParseForMain(argc, argv, kProgram, first)) return *exit;
  if (o.model.empty()) {
    absl::StatusOr<std::string> embedded = DefaultModelPath();
    if (!embedded.ok()) return ExitWithError(kProgram, embedded.status(), 1);
    o.model = *embedded;
  }
  // Checked here too, so a bad name fails before any worker starts.
  if (absl::Status st = UseKernelSet(o.cpu); !st.ok()) return ExitWithError(kProgram, st, 2);
  flags.options.model_path = o.model;
  if (absl::Status st = ApplyCoordinatorFlags(WorkerPlacement::kLoopback, flags, &o.coordinator);
      !st.ok()) {
    return ExitWithError(kProgram, st, 2);
  }
  o.worker_tls = flags.worker_tls;  // the workers serve this certificate
  if (!flags.draft_model.empty()) {
    // The draft runs here, whole, with its own KV (coordinator/speculative/draft_model.h).
    StageOptions so;
    so.n_threads = flags.draft_threads;
    so.kv_type = KvType::kF32;
    absl::StatusOr<std::unique_ptr<LlamaStage>> draft = LlamaStage::Open(flags.draft_model, so);
    if (!draft.ok()) {
      return ExitWithError(
          kProgram,
          absl::Status(draft.status().code(), absl::StrCat("--draft-model ", flags.draft_model,
                                                           ": ", draft.status().message())),
          2);
    }
    o.coordinator.draft_stage = std::move(*draft);
  }
  if (absl::Status st = Serve(o); !st.ok()) return ExitWithError(kProgram, st, 1);
  return 0;
}

}  // namespace shardlm
