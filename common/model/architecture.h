// The GGUF architectures shardlm runs (general.architecture), and what each
// adds to the Llama block, as llama.cpp's graph for it does:
//
//   llama   x += Wo·attn(RoPE_norm(Wq·rms(x)), RoPE_norm(Wk·rms(x)), Wv·rms(x)); optional
//           q/k/v biases; optional rope_freqs.weight (Llama 3.1 RoPE scaling).
//   qwen2   as llama with q/k/v biases (required) and NEOX RoPE.
//   qwen3   as llama with NEOX RoPE and a per-head RMSNorm of q and k
//           (attn_q_norm / attn_k_norm, [head_dim]) between projection and RoPE;
//           head_dim from attention.key_length may differ from n_embd / n_head.
//
// Every metadata key carries the architecture as its prefix
// ("qwen2.embedding_length"). The file does not name the RoPE type: like
// llama.cpp (llama_model_rope_type) it follows from the architecture.
#ifndef SHARDLM_COMMON_MODEL_ARCHITECTURE_H_
#define SHARDLM_COMMON_MODEL_ARCHITECTURE_H_

#include <string>
#include <string_view>

namespace shardlm {

// Which values of a head RoPE rotates together (ggml's rope modes).
enum class RopeType {
  kNorm,  // adjacent pairs (2i, 2i + 1): llama ("rope type 0")
  kNeox,  // pairs (i, i + n_rot / 2): GPT-NeoX, Qwen ("rope type 2")
};

// Whether an architecture reads an optional kind of tensor.
enum class TensorUse {
  kUnused,    // never read, even if present
  kOptional,  // used when present
  kRequired,  // loading fails without it
};

struct ArchFeatures {
  const char* name = "";  // general.architecture
  RopeType rope_type = RopeType::kNorm;
  TensorUse qkv_bias = TensorUse::kUnused;    // blk.N.attn_{q,k,v}.bias, F32
  TensorUse qk_norm = TensorUse::kUnused;     // blk.N.attn_{q,k}_norm.weight [head_dim]
  TensorUse rope_freqs = TensorUse::kUnused;  // rope_freqs.weight [n_rot / 2]
};

// The features of `architecture`, or nullptr when shardlm cannot run it.
const ArchFeatures* FindArchitecture(std::string_view architecture);

// "llama, qwen2, qwen3": for error messages.
std::string SupportedArchitectures();

std::string_view RopeTypeName(RopeType type);  // "norm" / "neox"

}  // namespace shardlm

#endif  // SHARDLM_COMMON_MODEL_ARCHITECTURE_H_
