// Writes a synthetic Llama-family GGUF (llama, Llama 3, qwen2, qwen3) of any
// shape and weight type:
// deterministic pseudo-random weights (same options -> same bytes), scaled
// like shared/reference/mkgguf.py so greedy generation is not stuck on one
// token, metadata and tensor names as llama.cpp writes them, and llama.cpp's
// per-tensor quantization mix. Tensors are generated one at a time, rows in
// parallel (oneTBB), and streamed to disk. Used by shardlm-mkmodel and tests.
#ifndef SHARDLM_TOOLS_MODEL_MAKER_MODEL_MAKER_H_
#define SHARDLM_TOOLS_MODEL_MAKER_MODEL_MAKER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/ggml_type.h"

namespace shardlm {

struct ModelShape {
  int64_t n_vocab = 0;
  int64_t n_embd = 0;
  int64_t n_layer = 0;
  int64_t n_head = 0;
  int64_t n_head_kv = 0;
  int64_t n_ff = 0;
  int64_t n_ctx = 0;
  int64_t head_dim = 0;  // 0: n_embd / n_head; else written as attention.key_length
};

// The architecture written (llama.cpp's graphs, common/model/architecture.h):
//   kLlama   general.architecture "llama" (Llama 2 style)
//   kLlama3  "llama" plus rope_freqs.weight, Llama 3.1's RoPE factors
//            (factor 8, low 1, high 4, original context 8192)
//   kQwen2   "qwen2": q/k/v biases (std 0.2 N(0, 1)), NEOX RoPE
//   kQwen3   "qwen3": per-head q/k RMSNorm weights, NEOX RoPE
enum class MakerArch { kLlama, kLlama3, kQwen2, kQwen3 };
// Parses --arch llama|llama3|qwen2|qwen3.
absl::StatusOr<MakerArch> ParseMakerArch(std::string_view name);

// Weight distribution (mkgguf.py's): projections std gain/sqrt(fan_in)
// (attn_output and ffn_down resid_gain/sqrt(fan_in)); token_embd std
// embd_std x a per-row factor in [0.5, 1.5); output std out_gain/sqrt(n_embd)
// x a per-row factor, rows of <unk>/control tokens x 0.01 (never the argmax,
// no early EOS); norms 1 + norm_std N(0, 1).
struct WeightScales {
  double gain = 1.5;
  double resid_gain = 1.5;
  double embd_std = 0.5;
  double out_gain = 3.0;
  double norm_std = 0.1;
};

// "tiny": nano-README.md's shape (n_vocab 512, n_embd 256, 4 layers, 8/2
// heads, n_ff 768, ctx 2048) with gain 1.5, embd_std 0.5.
// "tinyllama-1.1b": TinyLlama's exact shape (32000, 2048, 22 layers, 32/4
// heads, 5632, ctx 2048) with mkgguf's tinyllama scales (gain 1.0,
// embd_std 2.0: a 22-layer random model needs a stronger embedding).
struct ModelPreset {
  ModelShape shape;
  WeightScales scales;
};
absl::StatusOr<ModelPreset> FindModelPreset(std::string_view name);

struct MakeProgress {
  uint64_t bytes_done = 0;  // of the whole file, header included
  uint64_t bytes_total = 0;
  int tensor_index = 0;  // tensor being written (0-based)
  int n_tensors = 0;
  std::string_view tensor_name;
};

struct ModelMakerOptions {
  ModelShape shape;  // every field must be set (the main applies a preset)
  WeightScales scales;
  std::string type = "f32";  // a --type value: f32|f16|bf16|q4_0|...|q4_k_m (see synthetic.h)
  uint64_t seed = 1234;
  float rope_theta = 10000.0f;
  float rms_eps = 1e-5f;
  MakerArch arch = MakerArch::kLlama;
  // No output.weight: the classifier is token_embd, then typed like output
  // (llama.cpp's rule) and with its control-token rows x 0.05.
  bool tied = false;
  // Copy every tokenizer.* key of this GGUF; shape.n_vocab must then be 0
  // (taken from the file) or equal its vocabulary size.
  std::string vocab_from;
  std::string name;                                   // general.name; default "synthetic-<type>"
  std::function<void(const MakeProgress&)> progress;  // called after each chunk
};

struct MakeReport {
  uint64_t file_size = 0;
  ModelShape shape;                             // as written (n_vocab resolved)
  std::map<std::string, int> tensors_per_type;  // "q4_K" -> 25
  std::vector<std::string> fallbacks;           // "blk.0.ffn_down.weight: q4_0 -> f16 (row 172)"
};

// Writes the model to `path` (atomically: PATH.tmp renamed at the end).
absl::StatusOr<MakeReport> MakeModel(const ModelMakerOptions& options, const std::string& path);

}  // namespace shardlm

#endif  // SHARDLM_TOOLS_MODEL_MAKER_MODEL_MAKER_H_
