// shardlm-coordinator: the public gRPC endpoint in front of a pipeline of
// shardlm-worker processes.
#include <csignal>
#include <cstdio>

#include "absl/strings/str_split.h"
#include "common/base/cli_args.h"
#include "common/fetch/model_source.h"
#include "coordinator/coordinator_flags.h"
#include "coordinator/coordinator_server.h"

int main(int argc, char** argv) {
  using namespace shardlm;
  constexpr char kProgram[] = "shardlm-coordinator";
  CoordinatorFlags flags;
  std::string workers;
  CliArgs args(
      "shardlm-coordinator --model MODEL.gguf --workers HOST:PORT,HOST:PORT,... [--listen "
      "HOST:PORT]",
      "Serves the public ShardLM gRPC API (Generate, Tokenize, Detokenize, GetModelInfo, health,\n"
      "reflection) over a pipeline of shardlm-worker processes (replicas of a layer range share\n"
      "the load and take over when one fails). Reads only the model's metadata\n"
      "and vocabulary; checks that the workers' layer ranges are contiguous, cover the model\n"
      "and serve the same file, waiting for workers that are still loading.");
  args.AddString("-m,--model", &flags.options.model_path,
                 "GGUF model file (metadata and vocabulary only), or a URL (http(s)://..., "
                 "hf://OWNER/REPO/FILE.gguf[@REVISION]) of which only the header is fetched");
  args.AddString("--workers", &workers,
                 "worker addresses, comma-separated; workers of the same layers are replicas");
  AddCoordinatorFlags(WorkerPlacement::kRemote, &args, &flags);
  ModelSourceOptions source;
  source.client = "shardlm-coordinator";
  AddModelSourceFlags(&args, &source);
  if (std::optional<int> exit = args.ParseForMain(argc, argv, kProgram)) return *exit;
  if (flags.options.model_path.empty() || workers.empty()) {
    return ExitWithError(
        kProgram, absl::InvalidArgumentError("--model and --workers are required (see --help)"), 2);
  }
  CoordinatorOptions o;
  if (absl::Status st = ApplyCoordinatorFlags(WorkerPlacement::kRemote, flags, &o); !st.ok()) {
    return ExitWithError(kProgram, st, 2);
  }
  o.workers = absl::StrSplit(workers, ',', absl::SkipEmpty());
  absl::StatusOr<std::string> model = ResolveModelPath(o.model_path, ModelPart::Header(), source);
  if (!model.ok()) return ExitWithError(kProgram, model.status(), 1);
  o.model_path = *model;

  // Block the stop signals before any thread starts; wait for them below.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  auto server = CoordinatorServer::Start(o);
  if (!server.ok()) return ExitWithError(kProgram, server.status(), 1);
  if (!(*server)->http_address().empty())
    std::printf("HTTP %s\n", (*server)->http_address().c_str());
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
