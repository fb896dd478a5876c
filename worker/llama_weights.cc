#include "worker/llama_weights.h"

#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/base/status_macros.h"
#include "common/kernels/tensor_format.h"

namespace shardlm {
namespace {

absl::StatusOr<const GgufTensorInfo*> FindShaped(const GgufFile& file, const std::string& name,
                                                 int64_t ne0, int64_t ne1) {
  const GgufTensorInfo* t = file.FindTensor(name);
  if (t == nullptr) {
    return absl::NotFoundError(absl::StrCat(file.path(), ": tensor '", name, "' is missing"));
  }
  const bool is_vector = ne1 == 0;
  if (t->ne[0] != ne0 || (is_vector ? t->n_elements() != ne0 : t->ne[1] != ne1) || t->ne[2] != 1 ||
      t->ne[3] != 1) {
    return absl::InvalidArgumentError(absl::StrCat(file.path(), ": tensor '", name, "' has shape [",
                                                   t->ne[0], ", ", t->ne[1], "], expected [", ne0,
                                                   is_vector ? "" : absl::StrCat(", ", ne1), "]"));
  }
  return t;
}

absl::StatusOr<WeightMatrix> BindMatrix(const GgufFile& file, const std::string& name, int64_t cols,
                                        int64_t rows) {
  ASSIGN_OR_RETURN(const GgufTensorInfo* t, FindShaped(file, name, cols, rows));
  const TensorFormat& f = Format(t->type);
  if (f.vec_dot == nullptr) {
    return absl::UnimplementedError(absl::StrCat(file.path(), ": tensor '", name, "' has type ",
                                                 f.info.name,
                                                 ", which is not supported as a weight matrix"));
  }
  WeightMatrix w;
  w.data = file.TensorData(*t);
  w.type = t->type;
  w.cols = cols;
  w.rows = rows;
  w.row_bytes = *RowBytes(t->type, cols);
  file.Prefetch(*t);
  return w;
}

absl::StatusOr<std::vector<float>> LoadVector(const GgufFile& file, const std::string& name,
                                              int64_t n) {
  ASSIGN_OR_RETURN(const GgufTensorInfo* t, FindShaped(file, name, n, 0));
  std::vector<float> out(n);
  Format(t->type).dequantize(file.TensorData(*t), out.data(), n);
  return out;
}

// Loads `name` into *out when `use` asks for it: kRequired fails without it,
// kOptional leaves *out empty.
absl::Status LoadExtra(const GgufFile& file, TensorUse use, const std::string& name, int64_t n,
                       std::vector<float>* out) {
  if (use == TensorUse::kUnused) return absl::OkStatus();
  if (use == TensorUse::kOptional && file.FindTensor(name) == nullptr) return absl::OkStatus();
  ASSIGN_OR_RETURN(*out, LoadVector(file, name, n));
  return absl::OkStatus();
}

// The extras of layer `p` ("blk.N."): biases after the projections, q/k norms.
absl::Status LoadLayerExtras(const GgufFile& file, const ModelConfig& c, const std::string& p,
                             LayerWeights* lw) {
  const ArchFeatures& f = c.features;
  RETURN_IF_ERROR(LoadExtra(file, f.qkv_bias, p + "attn_q.bias", c.n_embd_q(), &lw->bq));
  RETURN_IF_ERROR(LoadExtra(file, f.qkv_bias, p + "attn_k.bias", c.n_embd_kv(), &lw->bk));
  RETURN_IF_ERROR(LoadExtra(file, f.qkv_bias, p + "attn_v.bias", c.n_embd_kv(), &lw->bv));
  RETURN_IF_ERROR(LoadExtra(file, f.qk_norm, p + "attn_q_norm.weight", c.head_dim, &lw->q_norm));
  RETURN_IF_ERROR(LoadExtra(file, f.qk_norm, p + "attn_k_norm.weight", c.head_dim, &lw->k_norm));
  return absl::OkStatus();
}

// Llama 3.1's RoPE factors divide angles: each must be a positive finite number.
absl::Status LoadRopeFreqs(const GgufFile& file, const ModelConfig& c, std::vector<float>* out) {
  RETURN_IF_ERROR(LoadExtra(file, c.features.rope_freqs, "rope_freqs.weight", c.n_rot / 2, out));
  for (float f : *out) {
    if (!(f > 0.0f && std::isfinite(f))) {
      return absl::InvalidArgumentError(
          absl::StrCat(file.path(), ": rope_freqs.weight holds ", f, ", not a positive factor"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<StageWeights> StageWeights::Load(const GgufFile& file, const ModelConfig& c,
                                                int first, int last, bool interleave) {
  if (first < 0 || last > c.n_layer || first >= last) {
    return absl::InvalidArgumentError(absl::StrCat("layer range ", first, ":", last,
                                                   " is not within the model's ", c.n_layer,
                                                   " layers (FIRST:LAST, FIRST < LAST)"));
  }
  StageWeights w;
  RETURN_IF_ERROR(LoadRopeFreqs(file, c, &w.rope_freqs));
  const int64_t n_embd = c.n_embd, n_q = c.n_embd_q(), n_kv = c.n_embd_kv();
  if (first == 0) {
    ASSIGN_OR_RETURN(w.token_embd, BindMatrix(file, "token_embd.weight", n_embd, c.n_vocab));
  }
  for (int l = first; l < last; ++l) {
    const std::string p = absl::StrCat("blk.", l, ".");
    LayerWeights lw;
    ASSIGN_OR_RETURN(lw.attn_norm, LoadVector(file, p + "attn_norm.weight", n_embd));
    ASSIGN_OR_RETURN(lw.wq, BindMatrix(file, p + "attn_q.weight", n_embd, n_q));
    ASSIGN_OR_RETURN(lw.wk, BindMatrix(file, p + "attn_k.weight", n_embd, n_kv));
    ASSIGN_OR_RETURN(lw.wv, BindMatrix(file, p + "attn_v.weight", n_embd, n_kv));
    ASSIGN_OR_RETURN(lw.wo, BindMatrix(file, p + "attn_output.weight", n_q, n_embd));
    RETURN_IF_ERROR(LoadLayerExtras(file, c, p, &lw));
    ASSIGN_OR_RETURN(lw.ffn_norm, LoadVector(file, p + "ffn_norm.weight", n_embd));
    ASSIGN_OR_RETURN(lw.ffn_gate, BindMatrix(file, p + "ffn_gate.weight", n_embd, c.n_ff));
    ASSIGN_OR_RETURN(lw.ffn_up, BindMatrix(file, p + "ffn_up.weight", n_embd, c.n_ff));
    ASSIGN_OR_RETURN(lw.ffn_down, BindMatrix(file, p + "ffn_down.weight", c.n_ff, n_embd));
    if (interleave) {
      for (WeightMatrix* m :
           {&lw.wq, &lw.wk, &lw.wv, &lw.wo, &lw.ffn_gate, &lw.ffn_up, &lw.ffn_down}) {
        w.InterleaveMatrix(file, m, /*evict=*/true);
      }
    }
    w.layers.push_back(std::move(lw));
  }
  if (last == c.n_layer) {
    ASSIGN_OR_RETURN(w.output_norm, LoadVector(file, "output_norm.weight", n_embd));
    // Tied embeddings: without output.weight the head reuses token_embd.
    const char* head = c.tied_output ? "token_embd.weight" : "output.weight";
    ASSIGN_OR_RETURN(w.output, BindMatrix(file, head, n_embd, c.n_vocab));
    // A tied head's rows are also the embedding table: keep them mapped.
    if (interleave) w.InterleaveMatrix(file, &w.output, /*evict=*/!c.tied_output);
  }
  return w;
}

void StageWeights::InterleaveMatrix(const GgufFile& file, WeightMatrix* m, bool evict) {
  const uint8_t* original = m->data;
  std::unique_ptr<uint8_t[]> storage;
  if (!Interleave(m, &storage)) return;
  interleaved_storage.push_back(std::move(storage));
  if (evict) file.Evict(original, m->rows * m->row_bytes);
}

int64_t StageWeights::bytes() const {
  auto m = [](const WeightMatrix& w) {
    return static_cast<int64_t>(w.interleaved() ? w.rows / 8 * w.group_bytes
                                                : w.rows * w.row_bytes);
  };
  int64_t total = m(token_embd) + m(output);
  for (const LayerWeights& l : layers) {
    total += m(l.wq) + m(l.wk) + m(l.wv) + m(l.wo) + m(l.ffn_gate) + m(l.ffn_up) + m(l.ffn_down);
  }
  return total;
}

}  // namespace shardlm
