// Model maker: files open with GgufFile and have llama.cpp's shapes,
// metadata and quantization mix; the bytes are deterministic; quantized
// tensors decode to the same weights as the f32 file; --vocab-from copies a
// vocabulary. Also runs the shardlm-mkmodel and shardlm-inspect binaries.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/kernels/tensor_format.h"
#include "common/model/gguf.h"
#include "common/model/model_config.h"
#include "common/model/tensor_plan.h"
#include "tests/test_data.h"
#include "tools/model_maker/model_maker.h"
#include "tools/model_maker/synthetic.h"

namespace shardlm {
namespace {

using ::testing::HasSubstr;

ModelMakerOptions Tiny(const std::string& type) {
  ModelMakerOptions o;
  o.shape = {300, 256, 2, 4, 2, 512, 128};  // n_vocab 300 (synthetic vocab), head_dim 64
  o.type = type;
  return o;
}

std::unique_ptr<GgufFile> MakeAndOpen(const ModelMakerOptions& o, const std::string& path,
                                      MakeReport* report = nullptr) {
  auto r = MakeModel(o, path);
  EXPECT_TRUE(r.ok()) << r.status();
  if (r.ok() && report != nullptr) *report = *r;
  auto f = GgufFile::Open(path);
  EXPECT_TRUE(f.ok()) << f.status();
  return f.ok() ? std::move(*f) : nullptr;
}

// Dequantized values of a whole tensor.
std::vector<float> Decode(const GgufFile& f, const std::string& name) {
  const GgufTensorInfo* t = f.FindTensor(name);
  EXPECT_NE(t, nullptr) << name;
  std::vector<float> out(t->n_elements());
  const size_t row_bytes = *RowBytes(t->type, t->ne[0]);
  for (int64_t r = 0; r < t->n_rows(); ++r) {
    Format(t->type, KernelSet::kReference)
        .dequantize(f.TensorData(*t) + r * row_bytes, out.data() + r * t->ne[0], t->ne[0]);
  }
  return out;
}

double Rms(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += double{x} * x;
  return std::sqrt(s / v.size());
}

class MkModelTypeTest : public ::testing::TestWithParam<const char*> {};

TEST_P(MkModelTypeTest, ShapesTypesAndMetadata) {
  const std::string type = GetParam();
  const std::string path = testing::TempDir() + "/tiny-" + type + ".gguf";
  MakeReport report;
  auto f = MakeAndOpen(Tiny(type), path, &report);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(report.file_size, f->file_size());
  EXPECT_EQ(f->GetString("general.architecture").value(), "llama");
  EXPECT_EQ(f->GetUint32("llama.block_count").value(), 2u);
  EXPECT_EQ(f->GetUint32("llama.embedding_length").value(), 256u);
  EXPECT_EQ(f->GetUint32("llama.feed_forward_length").value(), 512u);
  EXPECT_EQ(f->GetUint32("llama.attention.head_count").value(), 4u);
  EXPECT_EQ(f->GetUint32("llama.attention.head_count_kv").value(), 2u);
  EXPECT_EQ(f->GetUint32("llama.rope.dimension_count").value(), 64u);
  EXPECT_EQ(f->GetUint32("llama.context_length").value(), 128u);
  EXPECT_FLOAT_EQ(f->GetFloat("llama.attention.layer_norm_rms_epsilon").value(), 1e-5f);
  EXPECT_FLOAT_EQ(f->GetFloat("llama.rope.freq_base").value(), 10000.0f);
  EXPECT_EQ(f->GetUint32("general.quantization_version").value(), 2u);
  EXPECT_EQ(f->GetUint32("general.file_type").value(), ParseWeightMix(type)->file_type);
  EXPECT_EQ(f->GetString("tokenizer.ggml.model").value(), "llama");
  const auto* tokens = f->GetStringArray("tokenizer.ggml.tokens").value();
  ASSERT_EQ(tokens->size(), 300u);
  EXPECT_EQ((*tokens)[0], "<unk>");
  EXPECT_EQ((*tokens)[3], "<0x00>");
  EXPECT_EQ((*tokens)[259], "\xe2\x96\x81");
  EXPECT_EQ(f->GetIntArray("tokenizer.ggml.token_type")->size(), 300u);
  EXPECT_EQ(f->GetFloatArray("tokenizer.ggml.scores")->size(), 300u);

  ASSERT_EQ(f->tensors().size(), 3u + 9 * 2);
  const WeightMix mix = *ParseWeightMix(type);
  auto check = [&](const std::string& name, std::vector<int64_t> ne, MatrixKind kind, int layer) {
    const GgufTensorInfo* t = f->FindTensor(name);
    ASSERT_NE(t, nullptr) << name;
    EXPECT_EQ(std::vector<int64_t>(t->ne.begin(), t->ne.begin() + t->n_dims), ne) << name;
    EXPECT_EQ(t->type, MatrixType(mix, kind, layer, 2, ne[0], nullptr)) << name;
  };
  check("token_embd.weight", {256, 300}, MatrixKind::kTokenEmbd, 0);
  check("output.weight", {256, 300}, MatrixKind::kOutput, 0);
  for (int i = 0; i < 2; ++i) {
    const std::string p = absl::StrCat("blk.", i, ".");
    check(p + "attn_q.weight", {256, 256}, MatrixKind::kAttnQ, i);
    check(p + "attn_k.weight", {256, 128}, MatrixKind::kAttnK, i);
    check(p + "attn_v.weight", {256, 128}, MatrixKind::kAttnV, i);
    check(p + "attn_output.weight", {256, 256}, MatrixKind::kAttnOutput, i);
    check(p + "ffn_gate.weight", {256, 512}, MatrixKind::kFfnGate, i);
    check(p + "ffn_up.weight", {256, 512}, MatrixKind::kFfnUp, i);
    check(p + "ffn_down.weight", {512, 256}, MatrixKind::kFfnDown, i);
    for (const char* norm : {"attn_norm.weight", "ffn_norm.weight"}) {
      EXPECT_EQ(f->FindTensor(p + norm)->type, GgmlType::kF32);
      EXPECT_EQ(f->FindTensor(p + norm)->n_dims, 1);
    }
  }
  EXPECT_EQ(f->FindTensor("output_norm.weight")->type, GgmlType::kF32);
  EXPECT_TRUE(report.fallbacks.empty());
}

INSTANTIATE_TEST_SUITE_P(Types, MkModelTypeTest,
                         ::testing::Values("f32", "f16", "bf16", "q4_0", "q4_1", "q5_0", "q5_1",
                                           "q8_0", "q4_k", "q5_k", "q6_k", "q4_k_m", "q5_k_m"));

TEST(MkModelTest, QuantizedFilesDecodeToTheSameWeights) {
  const std::string dir = testing::TempDir();
  auto f32 = MakeAndOpen(Tiny("f32"), dir + "/f32.gguf");
  ASSERT_NE(f32, nullptr);
  // Relative RMS error bounds per type (Q4 ~ 0.1, Q8 ~ 0.005).
  for (auto [type, bound] :
       {std::pair{"f16", 1e-3}, {"q8_0", 0.02}, {"q4_0", 0.2}, {"q4_k_m", 0.15}}) {
    auto q = MakeAndOpen(Tiny(type), dir + "/" + type + ".gguf");
    ASSERT_NE(q, nullptr);
    for (const char* name :
         {"token_embd.weight", "blk.1.attn_v.weight", "blk.0.ffn_down.weight", "output.weight"}) {
      const std::vector<float> a = Decode(*f32, name), b = Decode(*q, name);
      ASSERT_EQ(a.size(), b.size());
      std::vector<float> diff(a.size());
      for (size_t i = 0; i < a.size(); ++i) diff[i] = a[i] - b[i];
      EXPECT_LT(Rms(diff) / Rms(a), bound) << type << " " << name;
    }
  }
}

TEST(MkModelTest, WeightDistribution) {
  auto f = MakeAndOpen(Tiny("f32"), testing::TempDir() + "/dist.gguf");
  ASSERT_NE(f, nullptr);
  // Projections: std gain / sqrt(fan_in) = 1.5 / 16.
  EXPECT_NEAR(Rms(Decode(*f, "blk.0.attn_q.weight")), 1.5 / 16, 0.005);
  EXPECT_NEAR(Rms(Decode(*f, "blk.0.ffn_down.weight")), 1.5 / std::sqrt(512.0), 0.005);
  // Norms: 1 + 0.1 N(0, 1).
  const std::vector<float> norm = Decode(*f, "blk.1.ffn_norm.weight");
  double mean = 0;
  for (float x : norm) mean += x / norm.size();
  EXPECT_NEAR(mean, 1.0, 0.03);
  // Output rows of <unk>, <s>, </s> are damped 100x so they are never the argmax.
  const std::vector<float> out = Decode(*f, "output.weight");
  auto row_rms = [&](int r) {
    return Rms(std::vector<float>(out.begin() + r * 256, out.begin() + (r + 1) * 256));
  };
  for (int r : {0, 1, 2}) EXPECT_LT(row_rms(r), 0.05 * row_rms(100)) << r;
}

TEST(MkModelTest, DeterministicBytes) {
  const std::string dir = testing::TempDir();
  ModelMakerOptions o = Tiny("q4_k_m");
  ASSERT_TRUE(MakeModel(o, dir + "/a.gguf").ok());
  ASSERT_TRUE(MakeModel(o, dir + "/b.gguf").ok());
  o.seed = 99;
  ASSERT_TRUE(MakeModel(o, dir + "/c.gguf").ok());
  const std::string a = testing::ReadFileOrDie(dir + "/a.gguf");
  EXPECT_TRUE(a == testing::ReadFileOrDie(dir + "/b.gguf"));
  EXPECT_FALSE(a == testing::ReadFileOrDie(dir + "/c.gguf"));
}

TEST(MkModelTest, VocabFromStories260K) {
  const std::string src_path = testing::TestDataPath("models/stories260K.gguf");
  ModelMakerOptions o = Tiny("q4_0");
  o.shape.n_vocab = 0;
  o.vocab_from = src_path;
  auto f = MakeAndOpen(o, testing::TempDir() + "/vocab.gguf");
  ASSERT_NE(f, nullptr);
  auto src = GgufFile::Open(src_path);
  ASSERT_TRUE(src.ok());
  int copied = 0;
  for (const auto& kv : (*src)->metadata()) {
    if (kv.key.rfind("tokenizer.", 0) != 0) continue;
    const GgufValue* v = f->Find(kv.key);
    ASSERT_NE(v, nullptr) << kv.key;
    EXPECT_EQ(v->type, kv.value.type) << kv.key;
    EXPECT_EQ(v->u, kv.value.u) << kv.key;
    EXPECT_EQ(v->s, kv.value.s) << kv.key;
    EXPECT_EQ(v->arr_s, kv.value.arr_s) << kv.key;
    EXPECT_EQ(v->arr_f, kv.value.arr_f) << kv.key;
    EXPECT_EQ(v->arr_i, kv.value.arr_i) << kv.key;
    ++copied;
  }
  EXPECT_EQ(copied, 9);  // tokens, scores, token_type, model, 5 special ids
  EXPECT_EQ(f->GetUint32("llama.vocab_size").value(), 512u);
  EXPECT_EQ(f->FindTensor("token_embd.weight")->ne[1], 512);
  EXPECT_EQ(f->FindTensor("output.weight")->ne[1], 512);

  o.shape.n_vocab = 1000;
  auto mismatch = MakeModel(o, testing::TempDir() + "/mismatch.gguf");
  ASSERT_FALSE(mismatch.ok());
  EXPECT_THAT(std::string(mismatch.status().message()), HasSubstr("differs from the 512 tokens"));
}

TEST(MkModelTest, MoreBitsLayersOfQ4KM) {
  ModelMakerOptions o = Tiny("q4_k_m");
  o.shape.n_layer = 8;  // n/8 = 1, 7n/8 = 7: layers 0, 3, 6, 7 get Q6_K
  auto f = MakeAndOpen(o, testing::TempDir() + "/q4km8.gguf");
  ASSERT_NE(f, nullptr);
  for (int i = 0; i < 8; ++i) {
    const bool more = i == 0 || i == 3 || i == 6 || i == 7;
    const GgmlType want = more ? GgmlType::kQ6_K : GgmlType::kQ4_K;
    EXPECT_EQ(f->FindTensor(absl::StrCat("blk.", i, ".attn_v.weight"))->type, want) << i;
    EXPECT_EQ(f->FindTensor(absl::StrCat("blk.", i, ".ffn_down.weight"))->type, want) << i;
    EXPECT_EQ(f->FindTensor(absl::StrCat("blk.", i, ".attn_k.weight"))->type, GgmlType::kQ4_K) << i;
  }
  EXPECT_EQ(f->FindTensor("output.weight")->type, GgmlType::kQ6_K);
  EXPECT_EQ(f->FindTensor("token_embd.weight")->type, GgmlType::kQ4_K);
}

TEST(MkModelTest, RowsThatDoNotFitFallBack) {
  ModelMakerOptions o = Tiny("q4_0");
  o.shape.n_ff = 172;  // like stories260K: not a multiple of 32
  MakeReport report;
  auto f = MakeAndOpen(o, testing::TempDir() + "/fallback.gguf", &report);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->FindTensor("blk.0.ffn_down.weight")->type, GgmlType::kF16);
  EXPECT_EQ(f->FindTensor("blk.0.ffn_up.weight")->type, GgmlType::kQ4_0);  // rows of n_embd
  ASSERT_EQ(report.fallbacks.size(), 2u);
  EXPECT_THAT(report.fallbacks[0], HasSubstr("blk.0.ffn_down.weight: row length 172"));
  EXPECT_EQ(MatrixType(*ParseWeightMix("q4_k_m"), MatrixKind::kAttnQ, 0, 1, 64, nullptr),
            GgmlType::kQ5_0);
  EXPECT_EQ(MatrixType(*ParseWeightMix("q6_k"), MatrixKind::kAttnQ, 0, 1, 96, nullptr),
            GgmlType::kQ8_0);
}

TEST(MkModelTest, RefusesBadOptions) {
  const std::string path = testing::TempDir() + "/bad.gguf";
  auto bad_type = MakeModel(Tiny("q3_x"), path);
  EXPECT_THAT(std::string(bad_type.status().message()),
              HasSubstr("unknown weight type 'q3_x' (valid: f32|"));
  ModelMakerOptions heads = Tiny("f32");
  heads.shape.n_head = 3;
  EXPECT_THAT(std::string(MakeModel(heads, path).status().message()),
              HasSubstr("not a multiple of n_head 3"));
  ModelMakerOptions small = Tiny("f32");
  small.shape.n_vocab = 100;
  EXPECT_THAT(std::string(MakeModel(small, path).status().message()), HasSubstr("too small"));
  EXPECT_FALSE(FindModelPreset("huge").ok());
  EXPECT_EQ(FindModelPreset("tinyllama-1.1b")->shape.n_ff, 5632);
}

// --arch: the families' architectures with their keys and tensors, which
// ModelConfig reads and whose tensor table has nothing missing or ignored.
TEST(MkModelTest, FamilyArchitectures) {
  struct Case {
    MakerArch arch;
    const char* name;
    int64_t head_dim;
    std::vector<std::string> extra;  // tensors of block 0 beyond the Llama ones
  };
  const Case cases[] = {
      {MakerArch::kLlama3, "llama", 0, {}},
      {MakerArch::kQwen2, "qwen2", 0, {"attn_q.bias", "attn_k.bias", "attn_v.bias"}},
      {MakerArch::kQwen3, "qwen3", 128, {"attn_q_norm.weight", "attn_k_norm.weight"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ModelMakerOptions o = Tiny("q4_k_m");
    o.arch = c.arch;
    o.tied = true;
    o.shape.head_dim = c.head_dim;
    o.rope_theta = 500000.0f;
    auto f = MakeAndOpen(o, testing::TempDir() + "/" + c.name + ".gguf");
    ASSERT_NE(f, nullptr);
    EXPECT_EQ(f->GetString("general.architecture").value(), c.name);
    EXPECT_EQ(f->FindTensor("output.weight"), nullptr);
    EXPECT_EQ(f->FindTensor("token_embd.weight")->type, GgmlType::kQ6_K);  // typed like output
    for (const std::string& t : c.extra) EXPECT_NE(f->FindTensor("blk.0." + t), nullptr) << t;
    auto config = ModelConfig::FromGguf(*f);
    ASSERT_TRUE(config.ok()) << config.status();
    EXPECT_TRUE(config->tied_output);
    EXPECT_EQ(config->head_dim, c.head_dim != 0 ? c.head_dim : 64);
    EXPECT_EQ(config->rope_freq_base, 500000.0f);
    const TensorCheck check = CheckTensors(*f, *config);
    EXPECT_TRUE(check.problems.empty()) << check.problems[0];
    EXPECT_TRUE(check.ignored.empty()) << check.ignored[0];
  }
  EXPECT_FALSE(ParseMakerArch("gemma").ok());
}

// Llama 3.1's RoPE factors as llama.cpp's converter writes them: equal to
// the shared llama3-nano's (head_dim 32, theta 500000) bit for bit.
TEST(MkModelTest, Llama3RopeFactorsMatchLlamaCpp) {
  ModelMakerOptions o = Tiny("f32");
  o.arch = MakerArch::kLlama3;
  o.shape.n_head = 8;  // head_dim 32
  o.rope_theta = 500000.0f;
  auto f = MakeAndOpen(o, testing::TempDir() + "/llama3.gguf");
  ASSERT_NE(f, nullptr);
  auto ref = GgufFile::Open(testing::TestDataPath("models/llama3-nano-q4_k_m.gguf"));
  ASSERT_TRUE(ref.ok()) << ref.status();
  const std::vector<float> ours = Decode(*f, "rope_freqs.weight");
  const std::vector<float> theirs = Decode(**ref, "rope_freqs.weight");
  ASSERT_EQ(ours.size(), 16u);
  EXPECT_EQ(ours, theirs);
}

// --vocab-from a byte-level BPE vocabulary (Qwen's, "gpt2"): its tokens,
// merges and pre-tokenizer are copied; with a tied classifier the control
// tokens' embedding rows are damped (x 0.05), so they rarely win the argmax.
TEST(MkModelTest, BpeVocabularyWithTiedClassifier) {
  ModelMakerOptions o = Tiny("q8_0");
  o.arch = MakerArch::kQwen2;
  o.tied = true;
  o.shape = {0, 64, 1, 2, 1, 128, 256};
  o.vocab_from = testing::TestDataPath("tokenizer/ggml-vocab-qwen2.gguf");
  auto f = MakeAndOpen(o, testing::TempDir() + "/qwen2-bpe.gguf");
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->GetString("tokenizer.ggml.model").value(), "gpt2");
  EXPECT_EQ(f->GetString("tokenizer.ggml.pre").value(), "qwen2");
  EXPECT_EQ(f->GetStringArray("tokenizer.ggml.merges").value()->size(), 151387u);
  EXPECT_EQ(f->GetUint32("qwen2.vocab_size").value(), 151936u);
  const std::vector<float> embd = Decode(*f, "token_embd.weight");
  auto row_rms = [&](int64_t r) {
    return Rms(std::vector<float>(embd.begin() + r * 64, embd.begin() + (r + 1) * 64));
  };
  EXPECT_LT(row_rms(151643), 0.1 * row_rms(12522));  // <|endoftext|> vs "Once"
}

TEST(MkModelTest, CommandLineTools) {
  const std::string dir = testing::TempDir();
  const std::string out = dir + "/cli.gguf";
  const std::string mk =
      absl::StrCat(SHARDLM_MKMODEL_BIN, " -q --n-layer 1 --n-embd 64 --n-head 2 --n-head-kv 1",
                   " --n-ff 128 --n-vocab 260 --type q8_0 -o ", out);
  ASSERT_EQ(std::system(mk.c_str()), 0) << mk;
  const std::string inspect =
      absl::StrCat(SHARDLM_INSPECT_BIN, " ", out, " > ", dir, "/inspect.txt");
  ASSERT_EQ(std::system(inspect.c_str()), 0);
  const std::string text = testing::ReadFileOrDie(dir + "/inspect.txt");
  EXPECT_THAT(text, HasSubstr("[260 strings] [\"<unk>\", \"<s>\", \"</s>\", ...]"));
  EXPECT_THAT(text, HasSubstr("blk.0.ffn_down.weight"));
  EXPECT_THAT(text, HasSubstr("q8_0"));
  EXPECT_THAT(text, HasSubstr("shardlm runs   yes"));
  const std::string qwen = dir + "/qwen3.gguf";
  const std::string mk_qwen = absl::StrCat(
      SHARDLM_MKMODEL_BIN, " -q --arch qwen3 --tied --head-dim 64 --n-layer 1 --n-embd 64",
      " --n-head 4 --n-head-kv 2 --n-ff 128 --n-vocab 260 --type q8_0 -o ", qwen);
  ASSERT_EQ(std::system(mk_qwen.c_str()), 0) << mk_qwen;
  ASSERT_EQ(std::system(absl::StrCat(SHARDLM_INSPECT_BIN, " ", qwen, " > ", dir, "/q.txt").c_str()),
            0);
  const std::string qtext = testing::ReadFileOrDie(dir + "/q.txt");
  EXPECT_THAT(qtext, HasSubstr("architecture   qwen3"));
  EXPECT_THAT(qtext, HasSubstr("q/k RMSNorm per head, head size 64 (attention.key_length)"));
  EXPECT_THAT(qtext, HasSubstr("tied classifier"));
  EXPECT_NE(
      std::system(
          absl::StrCat(SHARDLM_MKMODEL_BIN, " -q --arch gemma -o ", qwen, " 2> /dev/null").c_str()),
      0);
  EXPECT_EQ(std::system(absl::StrCat(SHARDLM_MKMODEL_BIN, " --help > /dev/null").c_str()), 0);
  EXPECT_EQ(std::system(absl::StrCat(SHARDLM_INSPECT_BIN, " --help > /dev/null").c_str()), 0);
  // A refused file: exit code 1 and the status message on stderr.
  const std::string v1 = testing::TestDataPath("models/tinyllamas-stories-260k-f32.gguf");
  const int rc =
      std::system(absl::StrCat(SHARDLM_INSPECT_BIN, " ", v1, " 2> ", dir, "/err.txt").c_str());
  EXPECT_EQ(WEXITSTATUS(rc), 1);
  EXPECT_THAT(testing::ReadFileOrDie(dir + "/err.txt"), HasSubstr("GGUF version 1 is obsolete"));
  // --split: the balanced --layers per worker (mini-shape's head outweighs 3 of its 4 layers).
  const std::string mini = testing::TestDataPath("models/mini-shape-q4_0.gguf");
  ASSERT_EQ(
      std::system(
          absl::StrCat(SHARDLM_INSPECT_BIN, " --split 2 ", mini, " > ", dir, "/split.txt").c_str()),
      0);
  EXPECT_EQ(testing::ReadFileOrDie(dir + "/split.txt"),
            "worker 0: --layers 0:3\nworker 1: --layers 3:4\n");
  EXPECT_EQ(
      WEXITSTATUS(std::system(
          absl::StrCat(SHARDLM_INSPECT_BIN, " --split 5 ", mini, " 2> ", dir, "/err.txt").c_str())),
      2);
  EXPECT_THAT(testing::ReadFileOrDie(dir + "/err.txt"), HasSubstr("at least one layer"));
}

}  // namespace
}  // namespace shardlm
