#include "tools/generate_command.h"

#include <grpcpp/grpcpp.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/cli_args.h"
#include "common/base/status_macros.h"
#include "common/fetch/model_source.h"
#include "common/model/embedded/embedded_model.h"
#include "common/kernels/tensor_format.h"
#include "common/model/gguf.h"
#include "common/model/layer_split.h"
#include "common/rpc/credentials.h"
#include "common/rpc/grpc_settings.h"
#include "common/tokenizer/tokenizer.h"
#include "coordinator/engine.h"
#include "coordinator/front_door.h"
#include "coordinator/pipeline.h"
#include "coordinator/proto_convert.h"
#include "coordinator/token_stream.h"
#include "shardlm/v1/shardlm.grpc.pb.h"
#include "tools/json_text.h"
#include "worker/llama_stage.h"

namespace shardlm {
namespace {

struct GenerateOptions {
  std::string model;
  std::string server;  // host:port of a coordinator
  std::string prompt;
  std::string split;  // in-process stages, "0:2,2:5"
  int threads = 0;
  std::string kv_type = "f16";
  std::string cpu;  // kernel set, empty = $SHARDLM_CPU or the best
  int ctx = 0;
  bool no_bos = false;
  bool json = false;
  SamplingParams sampling;
  TlsClientFlags tls;      // towards --server; plaintext when no file is given
  std::string auth_token;  // sent as 'authorization: Bearer ...'
  ModelSourceOptions source;  // --model as a URL
};

// Formats a generation's events for the terminal (or as JSON lines); the
// same for the in-process engine's TokenStream and a coordinator's stream.
class Printer {
 public:
  explicit Printer(bool json) : json_(json) {}

  void Token(const GeneratedToken& t) const {
    if (json_) {
      if (t.id >= 0) {
        std::printf("{\"id\":%d,\"piece\":%s,\"logprob\":%.6f}\n", t.id, JsonString(t.text).c_str(),
                    t.logprob);
      } else if (!t.text.empty()) {
        std::printf("{\"piece\":%s}\n", JsonString(t.text).c_str());
      }
    } else {
      std::fwrite(t.text.data(), 1, t.text.size(), stdout);
    }
    std::fflush(stdout);
  }

  void End(const StreamEnd& end) const {
    const GenerationStats& s = end.stats;
    if (json_) {
      std::printf(
          "{\"finish_reason\":\"%s\",\"prompt_tokens\":%d,\"generated_tokens\":%d,"
          "\"time_to_first_token_ms\":%.2f,\"prompt_tokens_per_s\":%.2f,"
          "\"generation_tokens_per_s\":%.2f,\"total_ms\":%.2f%s}\n",
          FinishReasonName(end.reason), s.prompt_tokens, s.generated_tokens,
          s.time_to_first_token_ms, s.prompt_tokens_per_s, s.generation_tokens_per_s, s.total_ms,
          end.error.ok()
              ? ""
              : absl::StrCat(",\"error\":", JsonString(std::string(end.error.message()))).c_str());
    } else {
      std::printf("\n");
      std::fprintf(stderr,
                   "\n[%s] prompt: %d tokens, %.1f tokens/s | generation: %d tokens, %.1f tokens/s "
                   "| first token after %.1f ms\n",
                   FinishReasonName(end.reason), s.prompt_tokens, s.prompt_tokens_per_s,
                   s.generated_tokens, s.generation_tokens_per_s, s.time_to_first_token_ms);
      if (!end.error.ok()) {
        std::fprintf(stderr, "error: %s\n", std::string(end.error.message()).c_str());
      }
    }
    std::fflush(stdout);
  }

  // Echoes the prompt before the generated text (not in JSON mode).
  void Prompt(const std::string& prompt) const {
    if (json_) return;
    std::fwrite(prompt.data(), 1, prompt.size(), stdout);
    std::fflush(stdout);
  }

 private:
  bool json_;
};

absl::Status RunLocal(const GenerateOptions& o) {
  // A URL: every tensor is read here, so all of them are fetched.
  ASSIGN_OR_RETURN(const std::string path, ResolveModelPath(o.model, ModelPart::All(), o.source));
  ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> opened, GgufFile::Open(path));
  std::shared_ptr<const GgufFile> file(std::move(opened));
  ASSIGN_OR_RETURN(std::unique_ptr<Tokenizer> tokenizer, Tokenizer::FromGguf(*file));
  ASSIGN_OR_RETURN(ModelConfig config, ModelConfig::FromGguf(*file));
  std::vector<LayerRange> ranges = {{0, config.n_layer}};
  if (!o.split.empty()) {
    ASSIGN_OR_RETURN(ranges, ParseLayerRanges(o.split));
  }
  std::vector<std::shared_ptr<Stage>> stages;
  for (auto [first, last] : ranges) {
    StageOptions so;
    so.first_layer = first;
    so.last_layer = last;
    so.n_threads = o.threads;
    so.n_ctx = o.ctx;
    ASSIGN_OR_RETURN(so.kv_type, ParseKvType(o.kv_type));
    ASSIGN_OR_RETURN(std::unique_ptr<LlamaStage> stage, LlamaStage::Create(file, so));
    stages.push_back(std::move(stage));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Pipeline> pipeline, Pipeline::Create(std::move(stages)));
  Engine engine(pipeline.get(), tokenizer.get(), EngineOptions{});
  FrontDoor door(&engine, tokenizer.get(), /*chat_template=*/"");
  ClientRequest request;
  request.text = o.prompt;
  request.add_bos = !o.no_bos;
  request.params = o.sampling;
  request.request_id = "cli";
  auto stream = std::make_shared<TokenStream>();
  const Printer printer(o.json);
  printer.Prompt(o.prompt);
  RETURN_IF_ERROR(door.Submit(std::move(request), stream).status());
  std::vector<GeneratedToken> tokens;
  StreamEnd end;
  bool ended = false;
  while (!ended) {
    ended = stream->WaitAndTake(absl::Seconds(1), &tokens, &end);
    for (const GeneratedToken& t : tokens) printer.Token(t);
    tokens.clear();
  }
  printer.End(end);
  if (!end.error.ok()) return absl::InternalError("generation failed");
  return absl::OkStatus();
}

// The same generation from a coordinator over gRPC: the flags map onto the
// public API's SamplingParams and events onto the same printer.
absl::Status RunRemote(const GenerateOptions& o) {
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ChannelCredentials> credentials,
                   MakeChannelCredentials(o.tls));
  auto channel = CreateClientChannel(o.server, credentials, "");
  auto stub = v1::ShardLM::NewStub(channel);
  v1::GenerateRequest request;
  request.set_prompt(o.prompt);
  request.set_add_bos(!o.no_bos);
  *request.mutable_sampling() = SamplingToProto(o.sampling);
  grpc::ClientContext context;
  AddBearerToken(&context, o.auth_token);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(10))) {
    return absl::UnavailableError(absl::StrCat("cannot connect to ", o.server));
  }
  const Printer printer(o.json);
  printer.Prompt(o.prompt);
  std::unique_ptr<grpc::ClientReader<v1::GenerateResponse>> reader =
      stub->Generate(&context, request);
  v1::GenerateResponse response;
  bool summarized = false;
  while (reader->Read(&response)) {
    if (response.has_chunk()) {
      printer.Token(TokenFromProto(response.chunk()));
    } else if (response.has_summary()) {
      const v1::GenerationSummary& m = response.summary();
      printer.End({FinishReasonFromProto(m.finish_reason()), StatsFromProto(m), absl::OkStatus()});
      summarized = true;
    }
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return FromGrpcStatus(status, o.server);
  if (!summarized) return absl::DataLossError("the stream ended without a summary");
  return absl::OkStatus();
}

}  // namespace

int RunGenerateCommand(int argc, char** argv, int first) {
  constexpr char kProgram[] = "shardlm generate";
  GenerateOptions o;
  std::string stop_dummy;
  CliArgs args(
      "shardlm generate [--model MODEL.gguf | --server HOST:PORT] --prompt TEXT [-n N] [flags]",
      "Generates text from a prompt and streams it to stdout as it is produced, then\n"
      "prints prompt and generation speed. --temp 0 is greedy decoding. Without --model\n"
      "and --server it runs the embedded stories260K model in this process.");
  args.AddString("-m,--model", &o.model,
                 absl::StrCat("GGUF model file or URL (http(s)://..., "
                              "hf://OWNER/REPO/FILE.gguf[@REVISION]), runs in this process; "
                              "default: ",
                              kEmbeddedModelDescription));
  o.source.client = "shardlm generate";
  AddModelSourceFlags(&args, &o.source);
  args.AddString("--server", &o.server, "coordinator HOST:PORT (instead of --model)");
  args.AddString("-p,--prompt", &o.prompt, "prompt text");
  args.AddInt("-n,--max-tokens", &o.sampling.max_tokens, "tokens to generate at most");
  args.AddFloat("--temp,--temperature", &o.sampling.temperature,
                "sampling temperature, 0 = greedy");
  args.AddInt("--top-k", &o.sampling.top_k, "keep the k most likely tokens, 0 = off");
  args.AddFloat("--top-p", &o.sampling.top_p, "nucleus sampling mass, 1 = off");
  args.AddFloat("--min-p", &o.sampling.min_p, "drop tokens below min-p x the top probability");
  args.AddFloat("--repeat-penalty", &o.sampling.repetition_penalty, "repetition penalty, 1 = off");
  args.AddFloat("--presence-penalty", &o.sampling.presence_penalty, "presence penalty");
  args.AddFloat("--frequency-penalty", &o.sampling.frequency_penalty, "frequency penalty");
  args.AddInt("--repeat-last-n", &o.sampling.penalty_window, "tokens the penalties look back on");
  int64_t seed = 0;
  args.AddInt64("--seed", &seed, "random seed");
  args.AddStringList("--stop", &o.sampling.stop, "stop string");
  args.AddBool("--ignore-eos", &o.sampling.ignore_eos, "do not stop at end-of-text");
  args.AddBool("--no-bos", &o.no_bos, "do not prepend BOS to the prompt");
  args.AddBool("--json", &o.json, "one JSON object per token, then a stats object");
  args.AddInt("-t,--threads", &o.threads, "compute threads, 0 = all cores");
  args.AddString("--kv-type", &o.kv_type, kKvTypeFlagHelp);
  args.AddString("--cpu", &o.cpu, kCpuFlagHelp);
  args.AddInt("--ctx", &o.ctx, "context size, 0 = the model's");
  args.AddString("--split", &o.split, "run as in-process stages, e.g. 0:2,2:5");
  args.AddString("--tls-ca", &o.tls.ca_file,
                 "with --server: TLS, trusting this CA (PEM) for the coordinator's certificate");
  args.AddString("--tls-cert", &o.tls.cert_file, "with --server: client certificate (PEM)");
  args.AddString("--tls-key", &o.tls.key_file, "with --server: private key of --tls-cert");
  args.AddString("--auth-token", &o.auth_token,
                 "with --server: bearer token sent as 'authorization: Bearer TOKEN'");
  o.tls.insecure = true;  // a client without TLS flags talks plaintext
  if (std::optional<int> exit = args.ParseForMain(argc, argv, kProgram, first)) return *exit;
  o.sampling.seed = static_cast<uint64_t>(seed);
  if (!o.model.empty() && !o.server.empty()) {
    return ExitWithError(
        kProgram, absl::InvalidArgumentError("give --model or --server, not both (see --help)"), 2);
  }
  if (o.model.empty() && o.server.empty()) {
    absl::StatusOr<std::string> embedded = DefaultModelPath();
    if (!embedded.ok()) return ExitWithError(kProgram, embedded.status(), 1);
    o.model = *embedded;
  }
  if (absl::Status st = UseKernelSet(o.cpu); !st.ok()) return ExitWithError(kProgram, st, 2);
  if (absl::Status st = o.server.empty() ? RunLocal(o) : RunRemote(o); !st.ok()) {
    return ExitWithError(kProgram, st, 1);
  }
  return 0;
}

}  // namespace shardlm
