// shardlm-speed: prompt-processing and decode speed of one in-process stage
// holding the whole model — the same two measurements as llama.cpp's
// reference bench (../shared/reference/bench.mjs), so the two can run side
// by side on the same file and thread count:
//   pp: one batch of --pp tokens (BOS + seeded pseudo-random ids) into an
//       empty sequence; tokens/s = pp / time.
//   tg: after BOS + "Once upon a time", --tg greedy decode steps, one token
//       each; tokens/s = tg / time.
// Best of --runs after one warm-up; prints one JSON line, with peak RSS.
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/base/cli_args.h"
#include "common/kernels/tensor_format.h"
#include "common/model/gguf.h"
#include "common/tokenizer/tokenizer.h"
#include "worker/llama_stage.h"

namespace shardlm {
namespace {

int64_t PeakRssKiB() {
  std::ifstream in("/proc/self/status");
  std::string key;
  while (in >> key) {
    if (key == "VmHWM:") {
      int64_t kib = 0;
      in >> kib;
      return kib;
    }
  }
  return 0;
}

int Argmax(const std::vector<float>& v) {
  return static_cast<int>(std::max_element(v.begin(), v.end()) - v.begin());
}

}  // namespace
}  // namespace shardlm

int main(int argc, char** argv) {
  using namespace shardlm;
  std::string model, kv = "f16", cpu;
  int pp = 256, tg = 128, runs = 3, threads = 2;
  CliArgs args(
      "shardlm-speed --model MODEL.gguf [--pp 256] [--tg 128] [--runs 3] [--threads 2]",
      "Measures prompt processing (one batch of --pp tokens) and decode (--tg greedy\n"
      "tokens) of the whole model in this process; prints JSON with tokens/s and peak RSS.");
  args.AddString("-m,--model", &model, "GGUF model file");
  args.AddInt("--pp", &pp, "prompt tokens in one batch");
  args.AddInt("--tg", &tg, "generated tokens");
  args.AddInt("--runs", &runs, "timed runs of each (best is reported)");
  args.AddInt("-t,--threads", &threads, "compute threads");
  args.AddString("--kv-type", &kv, kKvTypeFlagHelp);
  args.AddString("--cpu", &cpu, kCpuFlagHelp);
  bool print_kernel_set = false;
  args.AddBool("--print-kernel-set", &print_kernel_set,
               "print the kernel set in use (after --cpu / $SHARDLM_CPU) and exit");
  if (std::optional<int> exit = args.ParseForMain(argc, argv, "shardlm-speed")) return *exit;
  if (absl::Status st = UseKernelSet(cpu); !st.ok()) return ExitWithError("shardlm-speed", st, 2);
  if (print_kernel_set) {
    std::printf("%s\n", std::string(BestKernelName()).c_str());
    return 0;
  }
  if (model.empty()) {
    return ExitWithError("shardlm-speed", absl::InvalidArgumentError("--model is required"), 2);
  }
  auto file = GgufFile::Open(model);
  if (!file.ok()) {
    std::fprintf(stderr, "shardlm-speed: %s\n", std::string(file.status().message()).c_str());
    return 1;
  }
  std::shared_ptr<const GgufFile> shared(std::move(*file));
  auto tokenizer = Tokenizer::FromGguf(*shared);
  StageOptions o;
  o.n_threads = threads;
  absl::StatusOr<KvType> kv_type = ParseKvType(kv);
  if (!kv_type.ok()) return ExitWithError("shardlm-speed", kv_type.status(), 2);
  o.kv_type = *kv_type;
  auto stage = LlamaStage::Create(shared, o);
  if (!stage.ok() || !tokenizer.ok()) {
    std::fprintf(stderr, "shardlm-speed: %s\n",
                 std::string((stage.ok() ? tokenizer.status() : stage.status()).message()).c_str());
    return 1;
  }
  const int n_vocab = (*stage)->info().n_vocab;
  // Deterministic pseudo-random prompt (xorshift32), skipping control tokens.
  std::vector<int32_t> pp_tokens = {(*tokenizer)->bos_id()};
  uint32_t s = 0x9e3779b9u;
  while (static_cast<int>(pp_tokens.size()) < pp) {
    s ^= s << 13, s ^= s >> 17, s ^= s << 5;
    const int32_t t = static_cast<int32_t>(s % n_vocab);
    if ((*tokenizer)->token_type(t) != TokenType::kControl) pp_tokens.push_back(t);
  }
  const std::vector<int32_t> tg_prompt = (*tokenizer)->Encode("Once upon a time", true, false);
  SeqId seq = 1;

  auto run_pp = [&]() {
    ForwardRequest r;
    for (int i = 0; i < pp; ++i) {
      r.seq_ids.push_back(seq);
      r.positions.push_back(i);
      r.tokens.push_back(pp_tokens[i]);
    }
    ForwardResult res;
    const absl::Time t0 = absl::Now();
    absl::Status st = (*stage)->Forward(r, &res);
    const double secs = absl::ToDoubleSeconds(absl::Now() - t0);
    (*stage)->Release(seq++).IgnoreError();
    return st.ok() ? pp / secs : 0.0;
  };
  auto run_tg = [&]() {
    ForwardRequest r;
    for (size_t i = 0; i < tg_prompt.size(); ++i) {
      r.seq_ids.push_back(seq);
      r.positions.push_back(static_cast<int32_t>(i));
      r.tokens.push_back(tg_prompt[i]);
    }
    ForwardResult res;
    (*stage)->Forward(r, &res).IgnoreError();
    int next = Argmax(res.logits);
    const absl::Time t0 = absl::Now();
    for (int i = 0; i < tg; ++i) {
      ForwardRequest d{{seq}, {static_cast<int32_t>(tg_prompt.size() + i)}, {next}, {}, {}};
      if (!(*stage)->Forward(d, &res).ok()) return 0.0;
      next = Argmax(res.logits);
    }
    const double secs = absl::ToDoubleSeconds(absl::Now() - t0);
    (*stage)->Release(seq++).IgnoreError();
    return tg / secs;
  };
  std::vector<double> pp_runs, tg_runs;
  run_pp();  // warm-up: pages the weights in, sizes the buffers
  for (int i = 0; i < runs; ++i) pp_runs.push_back(run_pp());
  run_tg();
  for (int i = 0; i < runs; ++i) tg_runs.push_back(run_tg());
  auto best = [](const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); };
  auto fmt = [](const std::vector<double>& v) {
    std::vector<std::string> out;
    for (double x : v) out.push_back(std::to_string(x));
    return absl::StrJoin(out, ",");
  };
  std::printf(
      "{\"engine\":\"shardlm\",\"model\":\"%s\",\"threads\":%d,\"kernels\":\"%s\",\"weight_bytes\":"
      "%lld,\"kv_type\":\"%s\",\"kv_bytes_per_token\":%lld,"
      "\"pp\":{\"n_tokens\":%d,\"tokens_per_s_best\":%.2f,\"tokens_per_s_runs\":[%s]},"
      "\"tg\":{\"n_tokens\":%d,\"tokens_per_s_best\":%.2f,\"tokens_per_s_runs\":[%s]},"
      "\"peak_rss_kib\":%lld}\n",
      model.c_str(), threads, std::string(BestKernelName()).c_str(),
      static_cast<long long>((*stage)->weight_bytes()), (*stage)->info().kv_type.c_str(),
      static_cast<long long>((*stage)->info().kv_bytes_per_token), pp, best(pp_runs), fmt(pp_runs).c_str(), tg,
      best(tg_runs), fmt(tg_runs).c_str(), static_cast<long long>(PeakRssKiB()));
  return 0;
}
