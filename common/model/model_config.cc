#include "common/model/model_config.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/base/status_macros.h"

namespace shardlm {
namespace {

absl::Status Invalid(const GgufFile& file, const std::string& what) {
  return absl::InvalidArgumentError(absl::StrCat(file.path(), ": ", what));
}

// Reads a required positive integer hyper-parameter `{arch}.<suffix>`.
absl::StatusOr<int> RequiredInt(const GgufFile& file, const std::string& arch,
                                const std::string& suffix) {
  const std::string key = arch + "." + suffix;
  ASSIGN_OR_RETURN(uint32_t v, file.GetUint32(key));
  if (v == 0 || v > (1u << 24)) {
    return Invalid(file, absl::StrCat("metadata key '", key, "' has an implausible value ", v));
  }
  return static_cast<int>(v);
}

// Reads an optional float `{arch}.suffix` into *out (left alone when absent).
absl::Status OptionalFloat(const GgufFile& file, const std::string& arch, const std::string& suffix,
                           float* out) {
  const std::string key = arch + "." + suffix;
  if (file.Find(key) == nullptr) return absl::OkStatus();
  ASSIGN_OR_RETURN(*out, file.GetFloat(key));
  return absl::OkStatus();
}

// RoPE scaling as llama.cpp reads it: freq_scale = 1 / rope.scaling.factor
// (older files: rope.scale_linear), applied to every angle ("linear"). YaRN
// and LongRoPE change the angles and their magnitude (ggml's rope_yarn with
// ext_factor != 0): refused rather than run wrong. Llama 3.1's scaling needs
// no key: its factors are the rope_freqs.weight tensor.
absl::Status ReadRopeScaling(const GgufFile& file, const std::string& a, ModelConfig* c) {
  const std::string type_key = a + ".rope.scaling.type";
  if (file.Find(type_key) != nullptr) {
    ASSIGN_OR_RETURN(std::string type, file.GetString(type_key));
    if (type != "none" && type != "linear") {
      return absl::UnimplementedError(absl::StrCat(file.path(), ": RoPE scaling '", type, "' (",
                                                   type_key, ") is not supported (none, linear)"));
    }
  }
  float factor = 0.0f;
  RETURN_IF_ERROR(OptionalFloat(file, a, "rope.scale_linear", &factor));
  RETURN_IF_ERROR(OptionalFloat(file, a, "rope.scaling.factor", &factor));
  if (factor != 0.0f) {
    if (!(factor > 0.0f && factor < 1e6f)) {
      return Invalid(file, absl::StrCat("rope scaling factor ", factor, " out of range"));
    }
    c->rope_freq_scale = 1.0f / factor;
  }
  return absl::OkStatus();
}

// head_dim: attention.key_length when present (Qwen3: 64 while n_embd /
// n_head = 16; q is then n_head * head_dim wide), else n_embd / n_head.
absl::Status ReadHeadDim(const GgufFile& file, const std::string& a, ModelConfig* c) {
  if (file.Find(a + ".attention.key_length") == nullptr) {
    if (c->n_embd % c->n_head != 0) {
      return Invalid(file, absl::StrCat("embedding_length ", c->n_embd,
                                        " is not a multiple of head_count ", c->n_head));
    }
    c->head_dim = c->n_embd / c->n_head;
  } else {
    ASSIGN_OR_RETURN(c->head_dim, RequiredInt(file, a, "attention.key_length"));
  }
  if (file.Find(a + ".attention.value_length") != nullptr) {
    ASSIGN_OR_RETURN(int value_length, RequiredInt(file, a, "attention.value_length"));
    if (value_length != c->head_dim) {
      return absl::UnimplementedError(absl::StrCat(file.path(), ": attention.value_length ",
                                                   value_length, " differs from the key length ",
                                                   c->head_dim, " (not supported)"));
    }
  }
  if (c->head_dim > 4096)
    return Invalid(file, absl::StrCat("head size ", c->head_dim, " too large"));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ModelConfig> ModelConfig::FromGguf(const GgufFile& file) {
  ModelConfig c;
  ASSIGN_OR_RETURN(c.architecture, file.GetString("general.architecture"));
  const ArchFeatures* features = FindArchitecture(c.architecture);
  if (features == nullptr) {
    return absl::UnimplementedError(absl::StrCat(file.path(), ": architecture '", c.architecture,
                                                 "' is not supported (shardlm runs ",
                                                 SupportedArchitectures(), ")"));
  }
  c.features = *features;
  const std::string& a = c.architecture;
  if (auto name = file.GetString("general.name"); name.ok()) c.name = *name;
  ASSIGN_OR_RETURN(c.n_ctx_train, RequiredInt(file, a, "context_length"));
  ASSIGN_OR_RETURN(c.n_embd, RequiredInt(file, a, "embedding_length"));
  ASSIGN_OR_RETURN(c.n_layer, RequiredInt(file, a, "block_count"));
  ASSIGN_OR_RETURN(c.n_ff, RequiredInt(file, a, "feed_forward_length"));
  ASSIGN_OR_RETURN(c.n_head, RequiredInt(file, a, "attention.head_count"));
  c.n_head_kv = c.n_head;
  if (file.Find(a + ".attention.head_count_kv") != nullptr) {
    ASSIGN_OR_RETURN(c.n_head_kv, RequiredInt(file, a, "attention.head_count_kv"));
  }
  if (c.n_head % c.n_head_kv != 0) {
    return Invalid(file, absl::StrCat("head_count ", c.n_head,
                                      " is not a multiple of head_count_kv ", c.n_head_kv));
  }
  RETURN_IF_ERROR(ReadHeadDim(file, a, &c));
  c.n_rot = c.head_dim;
  if (file.Find(a + ".rope.dimension_count") != nullptr) {
    ASSIGN_OR_RETURN(c.n_rot, RequiredInt(file, a, "rope.dimension_count"));
  }
  if (c.n_rot > c.head_dim || c.n_rot % 2 != 0 || c.n_rot > kMaxRopeDims) {
    return Invalid(
        file, absl::StrCat("rope.dimension_count ", c.n_rot,
                           " must be even, at most ", kMaxRopeDims,
                           " and at most the head size ", c.head_dim));
  }
  RETURN_IF_ERROR(OptionalFloat(file, a, "attention.layer_norm_rms_epsilon", &c.rms_eps));
  RETURN_IF_ERROR(OptionalFloat(file, a, "rope.freq_base", &c.rope_freq_base));
  if (!(c.rms_eps > 0.0f && c.rms_eps < 1.0f) || !(c.rope_freq_base > 1.0f)) {
    return Invalid(file, "rms epsilon or rope freq_base out of range");
  }
  RETURN_IF_ERROR(ReadRopeScaling(file, a, &c));
  const GgufTensorInfo* embd = file.FindTensor("token_embd.weight");
  if (embd != nullptr) {
    c.n_vocab = static_cast<int>(embd->ne[1]);
  } else if (auto tokens = file.GetStringArray("tokenizer.ggml.tokens"); tokens.ok()) {
    c.n_vocab = static_cast<int>((*tokens)->size());  // a vocabulary-only file
  }
  if (file.Find(a + ".vocab_size") != nullptr && c.n_vocab == 0) {
    ASSIGN_OR_RETURN(c.n_vocab, RequiredInt(file, a, "vocab_size"));
  }
  if (c.n_vocab <= 0)
    return Invalid(file, "cannot tell the vocabulary size (no token_embd.weight)");
  c.tied_output = file.FindTensor("output.weight") == nullptr;
  return c;
}

// FNV-1a: absl::Hash is salted per process, and a fingerprint must be equal
// across processes and machines.
class Fnv1a {
 public:
  void Add(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    for (size_t i = 0; i < n; ++i) h_ = (h_ ^ p[i]) * 1099511628211ull;
  }
  template <typename T>
  void AddValue(const T& v) {
    Add(&v, sizeof(v));
  }
  void AddString(const std::string& s) {
    AddValue(s.size());
    Add(s.data(), s.size());
  }
  uint64_t value() const { return h_; }

 private:
  uint64_t h_ = 14695981039346656037ull;
};

std::string ModelFingerprint(const GgufFile& file) {
  Fnv1a h;
  h.AddValue(file.file_size());
  h.AddValue(file.tensors().size());
  for (const GgufTensorInfo& t : file.tensors()) {
    h.AddString(t.name);
    h.AddValue(static_cast<uint32_t>(t.type));
    for (int64_t d : t.ne) h.AddValue(d);
    h.AddValue(t.offset);
  }
  for (const GgufKeyValue& kv : file.metadata()) {
    h.AddString(kv.key);
    if (kv.value.type != GgufValueType::kArray) {
      h.AddValue(kv.value.u);
      h.AddValue(kv.value.i);
      h.AddValue(kv.value.f);
      h.AddString(kv.value.s);
    } else {
      h.AddValue(kv.value.array_size());
    }
  }
  return absl::StrFormat("%016x", h.value());
}

}  // namespace shardlm
