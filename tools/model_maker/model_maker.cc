#include "tools/model_maker/model_maker.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>

#include <algorithm>
#include <cmath>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/kernels/tensor_format.h"
#include "common/model/gguf.h"
#include "common/model/gguf_writer.h"
#include "tools/model_maker/synthetic.h"

namespace shardlm {
namespace {

// Elements generated per chunk: bounds memory (one chunk of quantized rows)
// while giving oneTBB enough rows to spread over the cores.
constexpr int64_t kChunkElements = int64_t{1} << 22;

// One tensor to generate: a matrix [cols, rows] (ne order) of
// std x row_scale[r] x N(0, 1) values, or a vector (is_norm) of
// offset + std x N(0, 1) values (norms: offset 1; biases: 0), or given values.
struct TensorPlan {
  std::string name;
  GgmlType type = GgmlType::kF32;
  int64_t cols = 0;
  int64_t rows = 1;
  bool is_norm = false;
  double std = 0;
  std::vector<double> row_scale;  // empty: 1 for every row
  double offset = 1.0;            // vectors only
  std::vector<float> values;      // non-empty: these values (rope_freqs)
};

int64_t HeadDim(const ModelShape& s) { return s.head_dim != 0 ? s.head_dim : s.n_embd / s.n_head; }

const char* ArchName(MakerArch a) {
  return a == MakerArch::kQwen2 ? "qwen2" : a == MakerArch::kQwen3 ? "qwen3" : "llama";
}

// Llama 3.1's rope_freqs as llama.cpp's convert_hf_to_gguf.py computes them
// (float32 torch arithmetic): pair i of frequency f_i = 1 / base^(2i / dim)
// and wavelength 2 pi / f_i keeps its frequency (1) below 8192 / 4, is slowed
// by 8 above 8192, and in between by 1 / ((1 - s) / 8 + s) with
// s = (8192 / wavelength - 1) / (4 - 1).
std::vector<float> Llama3RopeFactors(int64_t dim, float base) {
  constexpr float kFactor = 8.0f, kLow = 1.0f, kHigh = 4.0f, kOldContext = 8192.0f;
  const float low_wavelen = kOldContext / kLow, high_wavelen = kOldContext / kHigh;
  std::vector<float> out;
  for (int64_t i = 0; i < dim; i += 2) {
    const float freq = 1.0f / std::pow(base, static_cast<float>(i) / static_cast<float>(dim));
    const float wavelen = static_cast<float>(2 * M_PI) / freq;
    if (wavelen < high_wavelen) {
      out.push_back(1.0f);
    } else if (wavelen > low_wavelen) {
      out.push_back(kFactor);
    } else {
      const float smooth = (kOldContext / wavelen - kLow) / (kHigh - kLow);
      out.push_back(1.0f / ((1.0f - smooth) / kFactor + smooth));
    }
  }
  return out;
}

struct VocabSource {
  std::vector<GgufKeyValue> keys;  // tokenizer.* metadata, in order
  int64_t n_vocab = 0;
  std::vector<bool> damp_row;  // <unk> and control tokens: tiny output rows
};

absl::Status ValidateShape(const ModelShape& s) {
  const std::pair<const char*, int64_t> fields[] = {
      {"n_vocab", s.n_vocab}, {"n_embd", s.n_embd},       {"n_layer", s.n_layer},
      {"n_head", s.n_head},   {"n_head_kv", s.n_head_kv}, {"n_ff", s.n_ff},
      {"ctx", s.n_ctx}};
  for (const auto& [name, value] : fields) {
    if (value <= 0 || value > (int64_t{1} << 31) - 1) {
      return absl::InvalidArgumentError(absl::StrCat(name, " = ", value, " must be in 1..2^31-1"));
    }
  }
  if (s.head_dim < 0 || s.head_dim > 4096) {
    return absl::InvalidArgumentError(absl::StrCat("head_dim ", s.head_dim, " must be in 0..4096"));
  }
  if (s.head_dim == 0 && s.n_embd % s.n_head != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("n_embd ", s.n_embd, " is not a multiple of n_head ", s.n_head));
  }
  if (s.n_head % s.n_head_kv != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("n_head ", s.n_head, " is not a multiple of n_head_kv ", s.n_head_kv));
  }
  if (HeadDim(s) % 2 != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("head_dim ", HeadDim(s), " must be even (RoPE pairs)"));
  }
  return absl::OkStatus();
}

absl::StatusOr<VocabSource> LoadVocab(const ModelMakerOptions& o) {
  VocabSource v;
  if (o.vocab_from.empty()) {
    ASSIGN_OR_RETURN(SyntheticVocab synth, MakeSyntheticVocab(o.shape.n_vocab));
    v.n_vocab = o.shape.n_vocab;
    for (int32_t t : synth.types) v.damp_row.push_back(t == kTokenUnknown || t == kTokenControl);
    auto add = [&](const char* key, GgufValue value) { v.keys.push_back({key, std::move(value)}); };
    GgufValue s;
    s.type = GgufValueType::kString;
    s.s = "llama";
    add("tokenizer.ggml.model", s);
    s.s = "default";
    add("tokenizer.ggml.pre", s);
    GgufValue arr;
    arr.type = GgufValueType::kArray;
    arr.elem_type = GgufValueType::kString;
    arr.arr_s = std::move(synth.tokens);
    add("tokenizer.ggml.tokens", std::move(arr));
    arr = GgufValue();
    arr.type = GgufValueType::kArray;
    arr.elem_type = GgufValueType::kFloat32;
    arr.arr_f.assign(synth.scores.begin(), synth.scores.end());
    add("tokenizer.ggml.scores", std::move(arr));
    arr = GgufValue();
    arr.type = GgufValueType::kArray;
    arr.elem_type = GgufValueType::kInt32;
    arr.arr_i.assign(synth.types.begin(), synth.types.end());
    add("tokenizer.ggml.token_type", std::move(arr));
    GgufValue u;
    u.type = GgufValueType::kUint32;
    for (auto [key, id] : {std::pair{"tokenizer.ggml.bos_token_id", 1},
                           {"tokenizer.ggml.eos_token_id", 2},
                           {"tokenizer.ggml.unknown_token_id", 0},
                           {"tokenizer.ggml.padding_token_id", 2}}) {
      u.u = static_cast<uint64_t>(id);
      add(key, u);
    }
    GgufValue b;
    b.type = GgufValueType::kBool;
    b.u = 1;
    add("tokenizer.ggml.add_bos_token", b);
    b.u = 0;
    add("tokenizer.ggml.add_eos_token", b);
    return v;
  }

  ASSIGN_OR_RETURN(auto src, GgufFile::Open(o.vocab_from));
  ASSIGN_OR_RETURN(const std::vector<std::string>* tokens,
                   src->GetStringArray("tokenizer.ggml.tokens"));
  v.n_vocab = static_cast<int64_t>(tokens->size());
  if (o.shape.n_vocab != 0 && o.shape.n_vocab != v.n_vocab) {
    return absl::InvalidArgumentError(absl::StrCat(
        "n_vocab ", o.shape.n_vocab, " differs from the ", v.n_vocab, " tokens of ", o.vocab_from));
  }
  for (const auto& kv : src->metadata()) {
    if (absl::StartsWith(kv.key, "tokenizer.")) v.keys.push_back(kv);
  }
  v.damp_row.assign(v.n_vocab, false);
  auto types = src->GetIntArray("tokenizer.ggml.token_type");
  if (types.ok() && static_cast<int64_t>(types->size()) == v.n_vocab) {
    for (int64_t t = 0; t < v.n_vocab; ++t) {
      v.damp_row[t] = (*types)[t] == kTokenUnknown || (*types)[t] == kTokenControl;
    }
  } else {  // no token types: damp the special ids the metadata names
    for (const char* key : {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                            "tokenizer.ggml.unknown_token_id"}) {
      auto id = src->GetUint32(key);
      if (id.ok() && *id < v.n_vocab) v.damp_row[*id] = true;
    }
  }
  return v;
}

std::vector<double> RowScales(uint64_t seed, const std::string& name, int64_t rows) {
  const SyntheticStream stream(seed, name + "#rowscale");
  std::vector<double> out(rows);
  for (int64_t r = 0; r < rows; ++r) out[r] = 0.5 + stream.Uniform(r);  // U[0.5, 1.5)
  return out;
}

// The model's tensors in llama.cpp's convert order, with types and scales.
std::vector<TensorPlan> PlanTensors(const ModelMakerOptions& o, const ModelShape& s,
                                    const WeightMix& mix, const VocabSource& vocab,
                                    MakeReport* report) {
  const int64_t head_dim = HeadDim(s), n_q = s.n_head * head_dim,
                n_embd_kv = s.n_head_kv * head_dim;
  const WeightScales& w = o.scales;
  std::vector<TensorPlan> plan;
  auto matrix = [&](std::string name, MatrixKind kind, int layer, int64_t cols, int64_t rows,
                    double std) {
    bool fell_back = false;
    TensorPlan t;
    t.name = name;
    t.type = MatrixType(mix, kind, layer, static_cast<int>(s.n_layer), cols, &fell_back);
    t.cols = cols;
    t.rows = rows;
    t.std = std;
    if (fell_back) {
      std::string note =
          absl::StrCat(name, ": row length ", cols, " does not fit the mix's type; written as ",
                       TypeInfo(t.type).name);
      SHARDLM_LOG(kWarning, "%s", note);
      report->fallbacks.push_back(std::move(note));
    }
    plan.push_back(std::move(t));
    return &plan.back();
  };
  auto vec = [&](std::string name, int64_t n, double offset, double std) {
    TensorPlan& t = plan.emplace_back();
    t.name = std::move(name);
    t.cols = n;
    t.is_norm = true;
    t.std = std;
    t.offset = offset;
  };
  auto norm = [&](std::string name) { vec(std::move(name), s.n_embd, 1.0, w.norm_std); };
  const double proj = w.gain / std::sqrt(static_cast<double>(s.n_embd));
  // A tied classifier is typed like output.weight (llama_tensor_get_type).
  TensorPlan* embd =
      matrix("token_embd.weight", o.tied ? MatrixKind::kOutput : MatrixKind::kTokenEmbd, 0,
             s.n_embd, s.n_vocab, w.embd_std);
  embd->row_scale = RowScales(o.seed, embd->name, s.n_vocab);
  if (o.tied) {
    for (int64_t r = 0; r < s.n_vocab; ++r) {
      if (vocab.damp_row[r]) embd->row_scale[r] *= 0.05;  // rarely the argmax
    }
  }
  if (o.arch == MakerArch::kLlama3) {
    TensorPlan& freqs = plan.emplace_back();
    freqs.name = "rope_freqs.weight";
    freqs.cols = head_dim / 2;
    freqs.is_norm = true;
    freqs.values = Llama3RopeFactors(head_dim, o.rope_theta);
  }
  for (int i = 0; i < s.n_layer; ++i) {
    const std::string p = absl::StrCat("blk.", i, ".");
    norm(p + "attn_norm.weight");
    matrix(p + "attn_q.weight", MatrixKind::kAttnQ, i, s.n_embd, n_q, proj);
    matrix(p + "attn_k.weight", MatrixKind::kAttnK, i, s.n_embd, n_embd_kv, proj);
    matrix(p + "attn_v.weight", MatrixKind::kAttnV, i, s.n_embd, n_embd_kv, proj);
    matrix(p + "attn_output.weight", MatrixKind::kAttnOutput, i, n_q, s.n_embd,
           w.resid_gain / std::sqrt(static_cast<double>(n_q)));
    if (o.arch == MakerArch::kQwen2) {  // mkgguf.py: 0.2 N(0, 1)
      vec(p + "attn_q.bias", n_q, 0.0, 0.2);
      vec(p + "attn_k.bias", n_embd_kv, 0.0, 0.2);
      vec(p + "attn_v.bias", n_embd_kv, 0.0, 0.2);
    }
    if (o.arch == MakerArch::kQwen3) {
      vec(p + "attn_q_norm.weight", head_dim, 1.0, w.norm_std);
      vec(p + "attn_k_norm.weight", head_dim, 1.0, w.norm_std);
    }
    norm(p + "ffn_norm.weight");
    matrix(p + "ffn_gate.weight", MatrixKind::kFfnGate, i, s.n_embd, s.n_ff, proj);
    matrix(p + "ffn_up.weight", MatrixKind::kFfnUp, i, s.n_embd, s.n_ff, proj);
    matrix(p + "ffn_down.weight", MatrixKind::kFfnDown, i, s.n_ff, s.n_embd,
           w.resid_gain / std::sqrt(static_cast<double>(s.n_ff)));
  }
  norm("output_norm.weight");
  if (o.tied) return plan;
  TensorPlan* out = matrix("output.weight", MatrixKind::kOutput, 0, s.n_embd, s.n_vocab,
                           w.out_gain / std::sqrt(static_cast<double>(s.n_embd)));
  out->row_scale = RowScales(o.seed, out->name, s.n_vocab);
  for (int64_t r = 0; r < s.n_vocab; ++r) {
    if (vocab.damp_row[r]) out->row_scale[r] = 0.01;  // never the argmax: no early EOS
  }
  return plan;
}

void SetModelMetadata(const ModelMakerOptions& o, const ModelShape& s, const WeightMix& mix,
                      const VocabSource& vocab, GgufWriter* w) {
  // Every hyper-parameter key carries the architecture's prefix.
  const std::string a = ArchName(o.arch);
  w->SetString("general.architecture", a);
  w->SetString("general.name", o.name.empty() ? absl::StrCat("synthetic-", mix.name) : o.name);
  w->SetUint32(a + ".vocab_size", static_cast<uint32_t>(s.n_vocab));
  w->SetUint32(a + ".context_length", static_cast<uint32_t>(s.n_ctx));
  w->SetUint32(a + ".embedding_length", static_cast<uint32_t>(s.n_embd));
  w->SetUint32(a + ".block_count", static_cast<uint32_t>(s.n_layer));
  w->SetUint32(a + ".feed_forward_length", static_cast<uint32_t>(s.n_ff));
  w->SetUint32(a + ".rope.dimension_count", static_cast<uint32_t>(HeadDim(s)));
  w->SetUint32(a + ".attention.head_count", static_cast<uint32_t>(s.n_head));
  w->SetUint32(a + ".attention.head_count_kv", static_cast<uint32_t>(s.n_head_kv));
  if (s.head_dim != 0) {
    w->SetUint32(a + ".attention.key_length", static_cast<uint32_t>(s.head_dim));
    w->SetUint32(a + ".attention.value_length", static_cast<uint32_t>(s.head_dim));
  }
  w->SetFloat32(a + ".attention.layer_norm_rms_epsilon", o.rms_eps);
  w->SetFloat32(a + ".rope.freq_base", o.rope_theta);
  w->SetUint32("general.file_type", mix.file_type);
  for (const auto& kv : vocab.keys) w->SetValue(kv.key, kv.value);
  w->SetUint32("general.quantization_version", 2);
}

// Generates, converts and streams one tensor, a chunk of rows at a time.
absl::Status WriteTensor(const TensorPlan& t, uint64_t seed, GgufWriter* w,
                         const std::function<void(uint64_t)>& on_bytes) {
  const TensorFormat& fmt = Format(t.type, KernelSet::kReference);
  if (fmt.quantize == nullptr) {
    return absl::UnimplementedError(absl::StrCat("tensor '", t.name,
                                                 "': this build cannot write type ",
                                                 TypeInfo(t.type).name, " (no quantize kernel)"));
  }
  const size_t row_bytes = *RowBytes(t.type, t.cols);
  const SyntheticStream stream(seed, t.name);
  const int64_t rows_per_chunk = std::max<int64_t>(1, kChunkElements / t.cols);
  std::vector<uint8_t> buf;
  for (int64_t r0 = 0; r0 < t.rows; r0 += rows_per_chunk) {
    const int64_t r1 = std::min(t.rows, r0 + rows_per_chunk);
    buf.resize(static_cast<size_t>(r1 - r0) * row_bytes);
    tbb::parallel_for(
        tbb::blocked_range<int64_t>(r0, r1), [&](const tbb::blocked_range<int64_t>& range) {
          std::vector<float> row(t.cols);
          for (int64_t r = range.begin(); r < range.end(); ++r) {
            const uint64_t base = static_cast<uint64_t>(r) * static_cast<uint64_t>(t.cols);
            if (!t.values.empty()) {
              std::copy(t.values.begin(), t.values.end(), row.begin());
            } else if (t.is_norm) {
              for (int64_t c = 0; c < t.cols; ++c)
                row[c] = static_cast<float>(t.offset + t.std * stream.Normal(base + c));
            } else {
              const double scale = t.std * (t.row_scale.empty() ? 1.0 : t.row_scale[r]);
              for (int64_t c = 0; c < t.cols; ++c)
                row[c] = static_cast<float>(scale * stream.Normal(base + c));
            }
            fmt.quantize(row.data(), buf.data() + static_cast<size_t>(r - r0) * row_bytes, t.cols);
          }
        });
    RETURN_IF_ERROR(w->WriteTensorData(t.name, buf.data(), buf.size()));
    on_bytes(buf.size());
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<MakerArch> ParseMakerArch(std::string_view name) {
  if (name == "llama") return MakerArch::kLlama;
  if (name == "llama3") return MakerArch::kLlama3;
  if (name == "qwen2") return MakerArch::kQwen2;
  if (name == "qwen3") return MakerArch::kQwen3;
  return absl::InvalidArgumentError(absl::StrCat("unknown architecture '", std::string(name),
                                                 "' (valid: llama|llama3|qwen2|qwen3)"));
}

absl::StatusOr<ModelPreset> FindModelPreset(std::string_view name) {
  if (name == "tiny") return ModelPreset{{512, 256, 4, 8, 2, 768, 2048}, WeightScales{}};
  if (name == "tinyllama-1.1b") {
    WeightScales scales;
    scales.gain = scales.resid_gain = 1.0;
    scales.embd_std = 2.0;
    return ModelPreset{{32000, 2048, 22, 32, 4, 5632, 2048}, scales};
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown preset '",
                                                 absl::string_view(name.data(), name.size()),
                                                 "' (valid: tiny|tinyllama-1.1b)"));
}

absl::StatusOr<MakeReport> MakeModel(const ModelMakerOptions& options, const std::string& path) {
  ASSIGN_OR_RETURN(const WeightMix mix, ParseWeightMix(options.type));
  ASSIGN_OR_RETURN(const VocabSource vocab, LoadVocab(options));
  MakeReport report;
  report.shape = options.shape;
  report.shape.n_vocab = vocab.n_vocab;
  RETURN_IF_ERROR(ValidateShape(report.shape));

  const std::vector<TensorPlan> plan = PlanTensors(options, report.shape, mix, vocab, &report);
  GgufWriter writer;
  SetModelMetadata(options, report.shape, mix, vocab, &writer);
  for (const TensorPlan& t : plan) {
    std::vector<int64_t> ne = {t.cols};
    if (!t.is_norm) ne.push_back(t.rows);
    RETURN_IF_ERROR(writer.AddTensorInfo(t.name, t.type, ne));
    report.tensors_per_type[TypeInfo(t.type).name] += 1;
  }
  report.file_size = writer.FileSize();
  RETURN_IF_ERROR(writer.Open(path));

  const uint64_t header_bytes = report.file_size - writer.DataSize();
  MakeProgress progress;
  progress.bytes_total = report.file_size;
  progress.bytes_done = header_bytes;
  progress.n_tensors = static_cast<int>(plan.size());
  for (size_t i = 0; i < plan.size(); ++i) {
    progress.tensor_index = static_cast<int>(i);
    progress.tensor_name = plan[i].name;
    RETURN_IF_ERROR(WriteTensor(plan[i], options.seed, &writer, [&](uint64_t n) {
      progress.bytes_done += n;
      if (options.progress) options.progress(progress);
    }));
    // Count the alignment padding the writer added after the tensor.
    progress.bytes_done =
        i + 1 < plan.size() ? header_bytes + writer.tensors()[i + 1].offset : report.file_size;
  }
  RETURN_IF_ERROR(writer.Finish());
  if (options.progress) {
    progress.bytes_done = progress.bytes_total;
    options.progress(progress);
  }
  return report;
}

}  // namespace shardlm
