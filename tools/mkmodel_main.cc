// shardlm-mkmodel: writes a synthetic Llama-family GGUF (llama, Llama 3 RoPE
// factors, qwen2, qwen3) of any shape and weight type
// (library: tools/model_maker/model_maker.h). This file only parses flags, applies the
// preset and draws the progress bar.
#include <tbb/global_control.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/cli_args.h"
#include "tools/model_maker/model_maker.h"
#include "tools/model_maker/synthetic.h"

namespace shardlm {
namespace {

using Clock = std::chrono::steady_clock;

// Draws "\r 45% [#####.....] 287.3/640.0 MB 85.2 MB/s ETA 4s tensor" on a
// terminal at most every 100 ms; on a pipe or file prints one line per 25%.
class ProgressPrinter {
 public:
  explicit ProgressPrinter(bool quiet) : quiet_(quiet), tty_(::isatty(2) == 1) {}

  void Update(const MakeProgress& p) {
    if (quiet_ || p.bytes_total == 0) return;
    const auto now = Clock::now();
    const double secs = std::chrono::duration<double>(now - start_).count();
    const double frac = static_cast<double>(p.bytes_done) / static_cast<double>(p.bytes_total);
    const double mbs = secs > 0 ? p.bytes_done / 1e6 / secs : 0;
    const double eta = frac > 0 ? secs * (1 - frac) / frac : 0;
    const bool done = p.bytes_done >= p.bytes_total;
    if (tty_) {
      if (!done && now - last_draw_ < std::chrono::milliseconds(100)) return;
      last_draw_ = now;
      constexpr int kWidth = 30;
      const int filled = static_cast<int>(frac * kWidth);
      std::fprintf(stderr, "\r%3d%% [%s%s] %.1f/%.1f MB %.1f MB/s ETA %.0fs %-28.28s",
                   static_cast<int>(frac * 100), std::string(filled, '#').c_str(),
                   std::string(kWidth - filled, '.').c_str(), p.bytes_done / 1e6,
                   p.bytes_total / 1e6, mbs, eta, done ? "" : std::string(p.tensor_name).c_str());
      if (done) std::fputc('\n', stderr);
      return;
    }
    const int quarter = static_cast<int>(frac * 4);
    if (quarter <= last_quarter_) return;
    last_quarter_ = quarter;
    std::fprintf(stderr, "%3d%% %.1f/%.1f MB %.1f MB/s ETA %.0fs (tensor %d/%d)\n", quarter * 25,
                 p.bytes_done / 1e6, p.bytes_total / 1e6, mbs, eta, p.tensor_index + 1,
                 p.n_tensors);
  }

  double Seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

 private:
  bool quiet_, tty_;
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_draw_{};
  int last_quarter_ = 0;
};

// Parses an optional numeric flag given as text ("" = not given).
template <typename T>
absl::Status ParseOptional(const std::string& flag, const std::string& text, T* out) {
  if (text.empty()) return absl::OkStatus();
  bool ok;
  if constexpr (std::is_floating_point_v<T>) {
    double v;
    ok = absl::SimpleAtod(text, &v);
    *out = static_cast<T>(v);
  } else {
    ok = absl::SimpleAtoi(text, out);
  }
  if (!ok) return absl::InvalidArgumentError(absl::StrCat(flag, ": '", text, "' is not a number"));
  return absl::OkStatus();
}

int Run(int argc, char** argv) {
  std::string preset = "tiny", type = "f32", vocab_from, output, name;
  std::string n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff, ctx, gain, embd_std;
  std::string arch = "llama", head_dim, resid_gain, rope_theta, rms_eps;
  bool tied = false;
  int64_t seed = 1234;
  int threads = 0;
  bool quiet = false;
  CliArgs args(
      "shardlm-mkmodel [flags] -o OUT.gguf",
      "Writes a Llama-family GGUF with deterministic pseudo-random weights (same flags,\n"
      "same bytes), llama.cpp's metadata, tensor names and quantization mix. Shape flags\n"
      "override the preset. Without --vocab-from a byte-level llama vocabulary is made up.");
  args.AddString("--preset", &preset, "tiny (512/256/4 layers/8:2 heads/768) or tinyllama-1.1b");
  args.AddString("--n-vocab", &n_vocab, "vocabulary size (with --vocab-from: that file's)");
  args.AddString("--n-embd", &n_embd, "embedding width");
  args.AddString("--n-layer", &n_layer, "number of blocks");
  args.AddString("--n-head", &n_head, "attention heads");
  args.AddString("--n-head-kv", &n_head_kv, "key/value heads (grouped-query attention)");
  args.AddString("--n-ff", &n_ff, "feed-forward width");
  args.AddString(
      "--arch", &arch,
      "llama | llama3 (llama + Llama 3.1 rope_freqs) | qwen2 (q/k/v biases, NEOX RoPE) |\n"
      "qwen3 (q/k norms, NEOX RoPE)");
  args.AddString("--head-dim", &head_dim,
                 "head size (default n_embd/n_head; written as key_length)");
  args.AddBool("--tied", &tied, "no output.weight: the classifier is token_embd");
  args.AddString("--rope-theta", &rope_theta, "rope.freq_base (default 10000)");
  args.AddString("--rms-eps", &rms_eps, "attention.layer_norm_rms_epsilon (default 1e-5)");
  args.AddString("--ctx", &ctx, "llama.context_length");
  args.AddString("--type", &type, WeightMixNames());
  args.AddInt64("--seed", &seed, "weights seed");
  args.AddString("--vocab-from", &vocab_from, "copy every tokenizer.* key of this GGUF");
  args.AddString("--name", &name, "general.name (default synthetic-PRESET-TYPE)");
  args.AddString("--gain", &gain, "projection std gain/sqrt(fan_in) (default from preset)");
  args.AddString("--embd-std", &embd_std, "token_embd std (default from preset)");
  args.AddString("--resid-gain", &resid_gain, "attn_output / ffn_down gain (default --gain)");
  args.AddInt("--threads", &threads, "worker threads (0: all cores)");
  args.AddBool("-q,--quiet", &quiet, "no progress output");
  args.AddString("-o,--output", &output, "output file");
  if (std::optional<int> exit = args.ParseForMain(argc, argv, "shardlm-mkmodel")) return *exit;
  if (output.empty()) {
    std::fprintf(stderr, "shardlm-mkmodel: -o OUT.gguf is required (see --help)\n");
    return 2;
  }
  auto p = FindModelPreset(preset);
  if (!p.ok()) {
    std::fprintf(stderr, "shardlm-mkmodel: %s\n", std::string(p.status().message()).c_str());
    return 2;
  }
  auto parsed_arch = ParseMakerArch(arch);
  if (!parsed_arch.ok()) {
    std::fprintf(stderr, "shardlm-mkmodel: %s\n",
                 std::string(parsed_arch.status().message()).c_str());
    return 2;
  }
  ModelMakerOptions o;
  o.arch = *parsed_arch;
  o.tied = tied;
  o.shape = p->shape;
  o.scales = p->scales;
  o.type = type;
  o.seed = static_cast<uint64_t>(seed);
  o.vocab_from = vocab_from;
  o.name = name.empty() ? absl::StrCat("synthetic-", preset, "-", type) : name;
  if (!vocab_from.empty()) o.shape.n_vocab = 0;  // from the file unless --n-vocab insists
  for (absl::Status st :
       {ParseOptional("--n-vocab", n_vocab, &o.shape.n_vocab),
        ParseOptional("--n-embd", n_embd, &o.shape.n_embd),
        ParseOptional("--n-layer", n_layer, &o.shape.n_layer),
        ParseOptional("--n-head", n_head, &o.shape.n_head),
        ParseOptional("--n-head-kv", n_head_kv, &o.shape.n_head_kv),
        ParseOptional("--n-ff", n_ff, &o.shape.n_ff), ParseOptional("--ctx", ctx, &o.shape.n_ctx),
        ParseOptional("--gain", gain, &o.scales.gain),
        ParseOptional("--embd-std", embd_std, &o.scales.embd_std),
        ParseOptional("--head-dim", head_dim, &o.shape.head_dim),
        ParseOptional("--rope-theta", rope_theta, &o.rope_theta),
        ParseOptional("--rms-eps", rms_eps, &o.rms_eps)}) {
    if (!st.ok()) {
      std::fprintf(stderr, "shardlm-mkmodel: %s\n", std::string(st.message()).c_str());
      return 2;
    }
  }
  if (!gain.empty()) o.scales.resid_gain = o.scales.gain;
  if (absl::Status st = ParseOptional("--resid-gain", resid_gain, &o.scales.resid_gain); !st.ok()) {
    std::fprintf(stderr, "shardlm-mkmodel: %s\n", std::string(st.message()).c_str());
    return 2;
  }

  // oneTBB does not see container CPU limits: an explicit --threads wins.
  std::optional<tbb::global_control> limit;
  if (threads > 0) limit.emplace(tbb::global_control::max_allowed_parallelism, threads);
  ProgressPrinter printer(quiet);
  o.progress = [&printer](const MakeProgress& progress) { printer.Update(progress); };

  auto report = MakeModel(o, output);
  if (!report.ok()) {
    std::fprintf(stderr, "shardlm-mkmodel: %s\n", report.status().ToString().c_str());
    return 1;
  }
  std::string types;
  for (const auto& [t, n] : report->tensors_per_type)
    absl::StrAppend(&types, types.empty() ? "" : ", ", t, " x", n);
  const ModelShape& s = report->shape;
  std::fprintf(stderr,
               "wrote %s: %lu bytes in %.1f s; n_vocab %ld n_embd %ld n_layer %ld heads %ld/%ld "
               "n_ff %ld; %s\n",
               output.c_str(), static_cast<unsigned long>(report->file_size), printer.Seconds(),
               static_cast<long>(s.n_vocab), static_cast<long>(s.n_embd),
               static_cast<long>(s.n_layer), static_cast<long>(s.n_head),
               static_cast<long>(s.n_head_kv), static_cast<long>(s.n_ff), types.c_str());
  for (const std::string& f : report->fallbacks)
    std::fprintf(stderr, "  fallback: %s\n", f.c_str());
  return 0;
}

}  // namespace
}  // namespace shardlm

int main(int argc, char** argv) { return shardlm::Run(argc, argv); }
