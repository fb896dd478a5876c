// shardlm-inspect MODEL.gguf [--json]: prints a GGUF file's header, whether
// shardlm can run the model (its architecture, what that architecture adds,
// and anything that stops it: unsupported architecture or hyper-parameters,
// missing or mis-shaped tensors, weight types without a kernel), all of its
// metadata (like llama.cpp's gguf-dump), its tensor table and the bytes per
// tensor type. Exit code 1 with the error message when the file is refused
// as GGUF, so it doubles as a validator.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/text_escape.h"
#include "absl/strings/str_format.h"
#include "common/fetch/model_source.h"
#include "common/kernels/tensor_format.h"
#include "common/model/ggml_type.h"
#include "common/model/gguf.h"
#include "common/model/layer_split.h"
#include "common/model/model_config.h"
#include "common/model/tensor_plan.h"

namespace shardlm {
namespace {

constexpr char kUsage[] =
    "usage: shardlm-inspect [--json | --split N] [--model-cache-dir DIR] [--model-token-file F]\n"
    "                       MODEL.gguf | URL\n"
    "\n"
    "Validates a GGUF file (v2/v3) and prints its header, whether shardlm can run\n"
    "the model (architecture; what stops it), metadata, tensor table and the bytes\n"
    "per tensor type. Exits 1 with the error if the file is refused.\n"
    "\n"
    "  --json      machine-readable output (arrays shown as count + first elements)\n"
    "  --split N   instead: the --layers of N workers that do about the same work\n"
    "              (weight bytes, the output head on the last; what shardlm serve uses)\n"
    "  --model-cache-dir DIR, --model-token-file FILE\n"
    "              for a URL (http(s)://..., hf://OWNER/REPO/FILE.gguf[@REVISION]): only\n"
    "              its header is fetched, into DIR (default ~/.cache/shardlm/models)\n"
    "  --help      this message\n";

constexpr size_t kArrayHead = 3;        // elements shown for a long array
constexpr size_t kMaxStringShown = 80;  // bytes of a long string shown

// Text that came from the file (names, keys, messages quoting them), made
// safe for a terminal: a tensor named "\x1b[2J" must not clear the screen
// of the person vetting the file.
std::string Show(std::string_view s) { return EscapeNonPrintable(s); }

// Quotes a string for display: JSON escapes for quotes, backslashes and
// control bytes; bytes that are not valid UTF-8 become U+FFFD so --json
// output stays valid.
std::string Quote(std::string_view s, size_t max_bytes = std::string::npos) {
  std::string out = "\"";
  size_t i = 0;
  while (i < s.size() && i < max_bytes) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      out += absl::StrFormat("\\u%04x", c);
    } else if (c < 0x80) {
      out += static_cast<char>(c);
    } else {
      // Length of a well-formed UTF-8 sequence starting here, or 0.
      size_t len = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? 3 : c >= 0xc2 && c < 0xe0 ? 2 : 0;
      if (c >= 0xf5) len = 0;
      bool ok = len > 0 && i + len <= s.size();
      for (size_t k = 1; ok && k < len; ++k)
        ok = (static_cast<unsigned char>(s[i + k]) & 0xc0) == 0x80;
      if (ok && c == 0xc2 && static_cast<unsigned char>(s[i + 1]) < 0xa0) {
        // U+0080..U+009F: C1 controls (0x9b is CSI on some terminals).
        out += absl::StrFormat("\\u%04x", static_cast<unsigned char>(s[i + 1]));
        i += len;
        continue;
      }
      if (ok) {
        out.append(s.substr(i, len));
        i += len;
        continue;
      }
      out += "\xef\xbf\xbd";  // U+FFFD
    }
    ++i;
  }
  if (i < s.size()) absl::StrAppend(&out, "...");
  out += '"';
  return out;
}

// Fewest significant digits that read back as the same value (1e-05, not
// 9.99999975e-06, for a float32 1e-5).
std::string ShortestFloat(double x, bool is_float32) {
  std::string out;
  for (int digits = 6; digits <= 17; ++digits) {
    out = absl::StrFormat("%.*g", digits, x);
    const double back = std::strtod(out.c_str(), nullptr);
    if (is_float32 ? static_cast<float>(back) == static_cast<float>(x) : back == x) break;
  }
  return out;
}

std::string Scalar(const GgufValue& v, GgufValueType type, size_t max_string) {
  switch (type) {
    case GgufValueType::kBool:
      return v.u ? "true" : "false";
    case GgufValueType::kString:
      return Quote(v.s, max_string);
    case GgufValueType::kFloat32:
    case GgufValueType::kFloat64:
      return ShortestFloat(v.f, type == GgufValueType::kFloat32);
    case GgufValueType::kInt8:
    case GgufValueType::kInt16:
    case GgufValueType::kInt32:
    case GgufValueType::kInt64:
      return absl::StrCat(v.i);
    default:
      return absl::StrCat(v.u);
  }
}

std::string Element(const GgufValue& v, size_t j, size_t max_string) {
  GgufValue e;
  switch (v.elem_type) {
    case GgufValueType::kString:
      e.s = v.arr_s[j];
      break;
    case GgufValueType::kFloat32:
    case GgufValueType::kFloat64:
      e.f = v.arr_f[j];
      break;
    case GgufValueType::kInt8:
    case GgufValueType::kInt16:
    case GgufValueType::kInt32:
    case GgufValueType::kInt64:
      e.i = v.arr_i[j];
      break;
    default:
      e.u = v.arr_u[j];
      break;
  }
  return Scalar(e, v.elem_type, max_string);
}

// "[a, b, c, ...]" with at most `head` elements (all if head == npos); JSON
// output passes mark_elided = false.
std::string ArrayList(const GgufValue& v, size_t head, size_t max_string, bool mark_elided = true) {
  const size_t n = v.array_size();
  std::string out = "[";
  for (size_t j = 0; j < n && j < head; ++j) {
    if (j > 0) out += ", ";
    out += Element(v, j, max_string);
  }
  if (n > head && mark_elided) out += ", ...";
  return out + "]";
}

std::string TypeLabel(const GgufValue& v) {
  if (v.type != GgufValueType::kArray) return std::string(GgufValueTypeName(v.type));
  return absl::StrCat("[", std::string(GgufValueTypeName(v.elem_type)), "]");
}

std::string Shape(const GgufTensorInfo& t) {
  std::string out = "[";
  for (int d = 0; d < t.n_dims; ++d) absl::StrAppend(&out, d > 0 ? ", " : "", t.ne[d]);
  return out + "]";
}

// Bytes and tensor count per type name, in type-number order.
std::map<uint32_t, std::pair<uint64_t, int>> BytesPerType(const GgufFile& f) {
  std::map<uint32_t, std::pair<uint64_t, int>> out;
  for (const auto& t : f.tensors()) {
    auto& e = out[static_cast<uint32_t>(t.type)];
    e.first += t.n_bytes;
    e.second += 1;
  }
  return out;
}

std::string TypeName(uint32_t raw) { return std::string(LookupGgmlType(raw)->name); }

// What shardlm makes of the file as a model: the architecture, what it adds
// to the Llama block, and everything that keeps shardlm from running it.
struct ModelReport {
  std::string architecture;  // general.architecture, "" if absent
  bool runs = false;
  std::string features;  // "NEOX RoPE, q/k/v biases, ..." when the config reads
  std::vector<std::string> problems;
  std::vector<std::string> ignored;  // tensors the architecture does not read
};

std::string Features(const ModelConfig& c, const GgufFile& f) {
  std::string out =
      absl::StrCat(c.rope_type() == RopeType::kNeox ? "NEOX" : "NORM", " RoPE (", c.n_rot, " of ",
                   c.head_dim, " dims, theta ", ShortestFloat(c.rope_freq_base, true), ")");
  if (c.rope_freq_scale != 1.0f) {
    absl::StrAppend(&out, ", linear RoPE scale ", ShortestFloat(c.rope_freq_scale, true));
  }
  if (f.FindTensor("rope_freqs.weight") != nullptr && c.features.rope_freqs != TensorUse::kUnused) {
    absl::StrAppend(&out, ", rope_freqs factors");
  }
  if (c.features.qkv_bias != TensorUse::kUnused && f.FindTensor("blk.0.attn_q.bias") != nullptr) {
    absl::StrAppend(&out, ", q/k/v biases");
  }
  if (c.features.qk_norm != TensorUse::kUnused) absl::StrAppend(&out, ", q/k RMSNorm per head");
  absl::StrAppend(&out, ", head size ", c.head_dim,
                  c.head_dim * c.n_head != c.n_embd ? " (attention.key_length)" : "");
  absl::StrAppend(&out, ", ", c.n_head, "/", c.n_head_kv, " heads, rms eps ",
                  ShortestFloat(c.rms_eps, true));
  if (c.tied_output) absl::StrAppend(&out, ", tied classifier (token_embd)");
  return out;
}

ModelReport InspectModel(const GgufFile& f) {
  ModelReport r;
  if (auto arch = f.GetString("general.architecture"); arch.ok()) r.architecture = *arch;
  absl::StatusOr<ModelConfig> config = ModelConfig::FromGguf(f);
  if (!config.ok()) {
    r.problems.push_back(std::string(config.status().message()));
    return r;
  }
  r.features = Features(*config, f);
  TensorCheck check = CheckTensors(f, *config);
  r.problems = std::move(check.problems);
  r.ignored = std::move(check.ignored);
  for (const PlannedTensor& p : PlanTensors(*config)) {
    const GgufTensorInfo* t = f.FindTensor(p.name);
    if (t == nullptr) continue;
    if (p.matrix() && Format(t->type).vec_dot == nullptr) {
      r.problems.push_back(absl::StrCat("tensor '", p.name, "' has type ",
                                        std::string(TypeInfo(t->type).name),
                                        ", which is not supported as a weight matrix"));
    }
  }
  r.runs = r.problems.empty();
  return r;
}

std::string JoinNames(const std::vector<std::string>& names, size_t head) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < head; ++i) {
    absl::StrAppend(&out, i > 0 ? ", " : "", names[i]);
  }
  if (names.size() > head) absl::StrAppend(&out, ", ...");
  return out;
}

void PrintModelText(const ModelReport& r) {
  std::printf("\nModel:\n");
  std::printf("  architecture   %s\n", r.architecture.empty() ? "(none)" : Show(r.architecture).c_str());
  std::printf("  shardlm runs   %s\n", r.runs ? "yes" : "no");
  if (!r.features.empty()) std::printf("  features       %s\n", Show(r.features).c_str());
  constexpr size_t kShown = 12;  // --json lists all
  for (size_t i = 0; i < r.problems.size() && i < kShown; ++i) {
    std::printf("  cannot run     %s\n", Show(r.problems[i]).c_str());
  }
  if (r.problems.size() > kShown) {
    std::printf("  cannot run     ... and %zu more\n", r.problems.size() - kShown);
  }
  if (!r.ignored.empty()) {
    std::printf("  ignored        %zu tensors: %s\n", r.ignored.size(),
                Show(JoinNames(r.ignored, 8)).c_str());
  }
}

void PrintText(const GgufFile& f) {
  std::printf("%s\n", Show(f.path()).c_str());
  std::printf("  GGUF version   %u\n", f.version());
  std::printf("  file size      %lu bytes\n", static_cast<unsigned long>(f.file_size()));
  std::printf("  tensors        %zu\n", f.tensors().size());
  std::printf("  metadata       %zu key/value pairs\n", f.metadata().size());
  std::printf("  alignment      %lu\n", static_cast<unsigned long>(f.alignment()));
  std::printf("  data offset    %lu\n", static_cast<unsigned long>(f.data_offset()));
  PrintModelText(InspectModel(f));

  std::printf("\nMetadata (%zu):\n", f.metadata().size());
  std::printf("  %5s  %-10s  %-44s %s\n", "#", "type", "key", "value");
  for (size_t k = 0; k < f.metadata().size(); ++k) {
    const GgufKeyValue& kv = f.metadata()[k];
    std::string value;
    if (kv.value.type == GgufValueType::kArray) {
      const size_t n = kv.value.array_size();
      value = n <= 8 ? ArrayList(kv.value, n, kMaxStringShown)
                     : absl::StrCat("[", n, " ", std::string(GgufValueTypeName(kv.value.elem_type)),
                                    "s] ", ArrayList(kv.value, kArrayHead, kMaxStringShown));
    } else {
      value = Scalar(kv.value, kv.value.type, kMaxStringShown);
    }
    std::printf("  %5zu  %-10s  %-44s %s\n", k + 1, TypeLabel(kv.value).c_str(), Show(kv.key).c_str(),
                value.c_str());
  }

  std::printf("\nTensors (%zu):\n", f.tensors().size());
  std::printf("  %5s  %-32s %-6s %-22s %12s %12s %12s\n", "#", "name", "type", "shape", "elements",
              "bytes", "offset");
  for (size_t t = 0; t < f.tensors().size(); ++t) {
    const GgufTensorInfo& ti = f.tensors()[t];
    std::printf("  %5zu  %-32s %-6s %-22s %12ld %12lu %12lu\n", t + 1, Show(ti.name).c_str(),
                std::string(TypeInfo(ti.type).name).c_str(), Shape(ti).c_str(),
                static_cast<long>(ti.n_elements()), static_cast<unsigned long>(ti.n_bytes),
                static_cast<unsigned long>(ti.offset));
  }

  uint64_t total = 0;
  for (const auto& t : f.tensors()) total += t.n_bytes;
  std::printf("\nBytes per tensor type:\n");
  for (const auto& [raw, e] : BytesPerType(f)) {
    std::printf("  %-6s %4d tensors %14lu bytes %6.2f%%\n", TypeName(raw).c_str(), e.second,
                static_cast<unsigned long>(e.first), total ? 100.0 * e.first / total : 0.0);
  }
  std::printf("  %-6s %4zu tensors %14lu bytes\n", "total", f.tensors().size(),
              static_cast<unsigned long>(total));
}

void PrintJson(const GgufFile& f) {
  std::printf(
      "{\"path\": %s, \"version\": %u, \"file_size\": %lu, \"alignment\": %lu, "
      "\"data_offset\": %lu,\n \"metadata\": [\n",
      Quote(f.path()).c_str(), f.version(), static_cast<unsigned long>(f.file_size()),
      static_cast<unsigned long>(f.alignment()), static_cast<unsigned long>(f.data_offset()));
  for (size_t k = 0; k < f.metadata().size(); ++k) {
    const GgufKeyValue& kv = f.metadata()[k];
    std::string value;
    if (kv.value.type == GgufValueType::kArray) {
      value = absl::StrCat("{\"elem_type\": \"", std::string(GgufValueTypeName(kv.value.elem_type)),
                           "\", \"count\": ", kv.value.array_size(),
                           ", \"head\": ", ArrayList(kv.value, 8, std::string::npos, false), "}");
    } else {
      value = Scalar(kv.value, kv.value.type, std::string::npos);
      // JSON has no NaN/Inf literals.
      if (value == "nan" || value == "inf" || value == "-inf") value = Quote(value);
    }
    std::printf("  {\"key\": %s, \"type\": \"%s\", \"value\": %s}%s\n", Quote(kv.key).c_str(),
                std::string(GgufValueTypeName(kv.value.type)).c_str(), value.c_str(),
                k + 1 < f.metadata().size() ? "," : "");
  }
  std::printf(" ],\n \"tensors\": [\n");
  for (size_t t = 0; t < f.tensors().size(); ++t) {
    const GgufTensorInfo& ti = f.tensors()[t];
    std::printf(
        "  {\"name\": %s, \"type\": \"%s\", \"shape\": %s, \"n_elements\": %ld, "
        "\"bytes\": %lu, \"offset\": %lu}%s\n",
        Quote(ti.name).c_str(), std::string(TypeInfo(ti.type).name).c_str(), Shape(ti).c_str(),
        static_cast<long>(ti.n_elements()), static_cast<unsigned long>(ti.n_bytes),
        static_cast<unsigned long>(ti.offset), t + 1 < f.tensors().size() ? "," : "");
  }
  std::printf(" ],\n \"bytes_per_type\": {");
  bool first = true;
  for (const auto& [raw, e] : BytesPerType(f)) {
    std::printf("%s\"%s\": {\"tensors\": %d, \"bytes\": %lu}", first ? "" : ", ",
                TypeName(raw).c_str(), e.second, static_cast<unsigned long>(e.first));
    first = false;
  }
  const ModelReport r = InspectModel(f);
  auto list = [](const std::vector<std::string>& v) {
    std::string out = "[";
    for (size_t i = 0; i < v.size(); ++i) absl::StrAppend(&out, i > 0 ? ", " : "", Quote(v[i]));
    return out + "]";
  };
  std::printf(
      "},\n \"model\": {\"architecture\": %s, \"runs\": %s, \"features\": %s, "
      "\"problems\": %s, \"ignored\": %s}}\n",
      Quote(r.architecture).c_str(), r.runs ? "true" : "false", Quote(r.features).c_str(),
      list(r.problems).c_str(), list(r.ignored).c_str());
}

// One line per worker: its --layers range and the weight bytes it multiplies by.
int PrintSplit(const GgufFile& f, int n_workers) {
  absl::StatusOr<ModelConfig> config = ModelConfig::FromGguf(f);
  if (!config.ok()) {
    std::fprintf(stderr, "shardlm-inspect: %s\n", Show(config.status().ToString()).c_str());
    return 1;
  }
  absl::StatusOr<std::vector<LayerRange>> ranges =
      BalancedLayerRanges(f, config->n_layer, n_workers);
  if (!ranges.ok()) {
    std::fprintf(stderr, "shardlm-inspect: --split: %s\n", ranges.status().ToString().c_str());
    return 2;
  }
  for (size_t i = 0; i < ranges->size(); ++i) {
    std::printf("worker %zu: --layers %d:%d\n", i, (*ranges)[i].first, (*ranges)[i].second);
  }
  return 0;
}

}  // namespace
}  // namespace shardlm

int main(int argc, char** argv) {
  bool json = false;
  int split = 0;
  std::string path;
  shardlm::ModelSourceOptions source;
  source.client = "shardlm-inspect";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::fputs(shardlm::kUsage, stdout);
      return 0;
    } else if ((arg == "--model-cache-dir" || arg == "--model-token-file") && i + 1 < argc) {
      (arg == "--model-cache-dir" ? source.cache_dir : source.token_file) = argv[++i];
    } else if (arg == "--json") {
      json = true;
    } else if (arg == "--split") {
      if (i + 1 >= argc || !absl::SimpleAtoi(argv[i + 1], &split) || split < 1) {
        std::fprintf(stderr, "shardlm-inspect: --split needs a number of workers >= 1\n\n%s",
                     shardlm::kUsage);
        return 2;
      }
      ++i;
    } else if (!arg.empty() && arg[0] == '-') {
      std::fprintf(stderr, "shardlm-inspect: unknown flag %s\n\n%s", argv[i], shardlm::kUsage);
      return 2;
    } else if (path.empty()) {
      path = argv[i];
    } else {
      std::fprintf(stderr, "shardlm-inspect: one file at a time\n\n%s", shardlm::kUsage);
      return 2;
    }
  }
  if (path.empty()) {
    std::fputs(shardlm::kUsage, stderr);
    return 2;
  }
  // A URL: the header is all inspect reads.
  absl::StatusOr<std::string> local =
      shardlm::ResolveModelPath(path, shardlm::ModelPart::Header(), source);
  if (!local.ok()) {
    std::fprintf(stderr, "shardlm-inspect: %s\n", local.status().ToString().c_str());
    return 1;
  }
  auto file = shardlm::GgufFile::Open(*local);
  if (!file.ok()) {
    std::fprintf(stderr, "shardlm-inspect: %s\n", shardlm::Show(file.status().ToString()).c_str());
    return 1;
  }
  if (split > 0) return shardlm::PrintSplit(**file, split);
  if (json) {
    shardlm::PrintJson(**file);
  } else {
    shardlm::PrintText(**file);
  }
  return 0;
}
