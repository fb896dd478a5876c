#include "common/model/tensor_plan.h"

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace shardlm {

std::vector<PlannedTensor> PlanTensors(const ModelConfig& c) {
  const ArchFeatures& f = c.features;
  const int64_t n_embd = c.n_embd, n_q = c.n_embd_q(), n_kv = c.n_embd_kv();
  std::vector<PlannedTensor> plan = {
      {"token_embd.weight", n_embd, c.n_vocab},
      {"output_norm.weight", n_embd, 0},
  };
  // Tied classifier: without output.weight the head is token_embd.
  if (!c.tied_output) plan.push_back({"output.weight", n_embd, c.n_vocab});
  if (f.rope_freqs != TensorUse::kUnused) {
    plan.push_back({"rope_freqs.weight", c.n_rot / 2, 0, f.rope_freqs});
  }
  for (int l = 0; l < c.n_layer; ++l) {
    const std::string p = absl::StrCat("blk.", l, ".");
    plan.push_back({p + "attn_norm.weight", n_embd, 0});
    plan.push_back({p + "attn_q.weight", n_embd, n_q});   // [n_embd] -> [n_head * head_dim]
    plan.push_back({p + "attn_k.weight", n_embd, n_kv});  // [n_embd] -> [n_head_kv * head_dim]
    plan.push_back({p + "attn_v.weight", n_embd, n_kv});
    plan.push_back({p + "attn_output.weight", n_q, n_embd});
    if (f.qkv_bias != TensorUse::kUnused) {
      plan.push_back({p + "attn_q.bias", n_q, 0, f.qkv_bias});
      plan.push_back({p + "attn_k.bias", n_kv, 0, f.qkv_bias});
      plan.push_back({p + "attn_v.bias", n_kv, 0, f.qkv_bias});
    }
    if (f.qk_norm != TensorUse::kUnused) {
      plan.push_back({p + "attn_q_norm.weight", c.head_dim, 0, f.qk_norm});
      plan.push_back({p + "attn_k_norm.weight", c.head_dim, 0, f.qk_norm});
    }
    plan.push_back({p + "ffn_norm.weight", n_embd, 0});
    plan.push_back({p + "ffn_gate.weight", n_embd, c.n_ff});
    plan.push_back({p + "ffn_up.weight", n_embd, c.n_ff});
    plan.push_back({p + "ffn_down.weight", c.n_ff, n_embd});
  }
  return plan;
}

TensorCheck CheckTensors(const GgufFile& file, const ModelConfig& c) {
  TensorCheck check;
  if (file.tensors().empty()) {
    check.problems.push_back("no tensors: a vocabulary-only file");
    return check;
  }
  absl::flat_hash_set<std::string> planned;
  for (const PlannedTensor& p : PlanTensors(c)) {
    planned.insert(p.name);
    const GgufTensorInfo* t = file.FindTensor(p.name);
    if (t == nullptr) {
      if (p.use == TensorUse::kRequired) {
        check.problems.push_back(absl::StrCat("tensor '", p.name, "' is missing"));
      }
      continue;
    }
    const bool fits =
        p.matrix() ? t->ne[0] == p.ne0 && t->n_rows() == p.ne1 && t->ne[2] == 1 && t->ne[3] == 1
                   : t->n_elements() == p.ne0;
    if (!fits) {
      std::string shape;
      for (int d = 0; d < t->n_dims; ++d) absl::StrAppend(&shape, d > 0 ? ", " : "", t->ne[d]);
      check.problems.push_back(absl::StrCat("tensor '", p.name, "' has shape [", shape,
                                            "], expected [", p.ne0,
                                            p.matrix() ? absl::StrCat(", ", p.ne1) : "", "]"));
    }
  }
  for (const GgufTensorInfo& t : file.tensors()) {
    if (!planned.contains(t.name)) check.ignored.push_back(t.name);
  }
  return check;
}

}  // namespace shardlm
