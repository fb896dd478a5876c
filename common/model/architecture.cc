#include "common/model/architecture.h"

#include "absl/strings/str_join.h"

namespace shardlm {
namespace {

// llama.cpp's llm_arch / llama_model_rope_type and its tensor loading
// (llama-model.cpp) for these architectures.
constexpr ArchFeatures kArchitectures[] = {
    {.name = "llama",
     .rope_type = RopeType::kNorm,
     .qkv_bias = TensorUse::kOptional,
     .qk_norm = TensorUse::kUnused,
     .rope_freqs = TensorUse::kOptional},
    {.name = "qwen2",
     .rope_type = RopeType::kNeox,
     .qkv_bias = TensorUse::kRequired,
     .qk_norm = TensorUse::kUnused,
     .rope_freqs = TensorUse::kUnused},
    {.name = "qwen3",
     .rope_type = RopeType::kNeox,
     .qkv_bias = TensorUse::kUnused,
     .qk_norm = TensorUse::kRequired,
     .rope_freqs = TensorUse::kUnused},
};

}  // namespace

const ArchFeatures* FindArchitecture(std::string_view architecture) {
  for (const ArchFeatures& a : kArchitectures) {
    if (architecture == a.name) return &a;
  }
  return nullptr;
}

std::string SupportedArchitectures() {
  return absl::StrJoin(kArchitectures, ", ",
                       [](std::string* out, const ArchFeatures& a) { out->append(a.name); });
}

std::string_view RopeTypeName(RopeType type) { return type == RopeType::kNeox ? "neox" : "norm"; }

}  // namespace shardlm
