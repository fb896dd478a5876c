// GGUF reader: the shared model files, and one test per kind of malformed
// file. The malformed files are built byte by byte (RawGguf below) so each
// test states exactly which field lies.
#include "common/model/gguf.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>
#include <vector>

#include "tests/test_data.h"

namespace shardlm {
namespace {

using ::testing::HasSubstr;

// ---------------------------------------------------------------- raw files

template <typename T>
void Put(std::string* out, T v) {
  out->append(reinterpret_cast<const char*>(&v), sizeof(v));
}
void PutStr(std::string* out, const std::string& s) {
  Put<uint64_t>(out, s.size());
  *out += s;
}

std::string KvU32(const std::string& key, uint32_t v) {
  std::string out;
  PutStr(&out, key);
  Put<uint32_t>(&out, 4);
  Put<uint32_t>(&out, v);
  return out;
}
std::string KvStr(const std::string& key, const std::string& v) {
  std::string out;
  PutStr(&out, key);
  Put<uint32_t>(&out, 8);
  PutStr(&out, v);
  return out;
}
std::string KvRaw(const std::string& key, uint32_t type, const std::string& payload) {
  std::string out;
  PutStr(&out, key);
  Put<uint32_t>(&out, type);
  return out + payload;
}

struct RawTensor {
  std::string name;
  std::vector<uint64_t> ne;
  uint32_t type = 0;  // f32
  uint64_t offset = 0;
  std::optional<uint32_t> n_dims;  // default ne.size()
};

struct RawGguf {
  uint32_t version = 3;
  std::optional<uint64_t> n_tensors, n_kv;  // default: the real counts
  std::vector<std::string> kvs;
  std::vector<RawTensor> tensors;
  uint64_t alignment = 32;
  std::optional<uint64_t> data_bytes;  // default: enough for every f32 tensor

  std::string Build() const {
    std::string out = "GGUF";
    Put<uint32_t>(&out, version);
    Put<uint64_t>(&out, n_tensors.value_or(tensors.size()));
    Put<uint64_t>(&out, n_kv.value_or(kvs.size()));
    for (const auto& kv : kvs) out += kv;
    uint64_t end = 0;
    for (const auto& t : tensors) {
      PutStr(&out, t.name);
      Put<uint32_t>(&out, t.n_dims.value_or(static_cast<uint32_t>(t.ne.size())));
      uint64_t n = 1;
      for (uint64_t d : t.ne) {
        Put<uint64_t>(&out, d);
        n *= d;
      }
      Put<uint32_t>(&out, t.type);
      Put<uint64_t>(&out, t.offset);
      end = std::max(end, t.offset + 4 * n);
    }
    out.append((alignment - out.size() % alignment) % alignment, '\0');
    out.append(data_bytes.value_or(end), '\x01');
    return out;
  }
};

// A small valid file: two metadata keys and two f32 tensors.
RawGguf ValidRaw() {
  RawGguf g;
  g.kvs = {KvStr("general.architecture", "llama"), KvU32("llama.block_count", 2)};
  g.tensors = {{"a.weight", {8, 2}, 0, 0, std::nullopt}, {"b.weight", {8}, 0, 64, std::nullopt}};
  return g;
}

class GgufFileTest : public ::testing::Test {
 protected:
  // Writes `bytes` to a fresh file and opens it with GgufFile::Open.
  absl::StatusOr<std::unique_ptr<GgufFile>> OpenBytes(const std::string& bytes) {
    path_ = dir_ + "/case" + std::to_string(counter_++) + ".gguf";
    std::ofstream(path_, std::ios::binary) << bytes;
    return GgufFile::Open(path_);
  }
  // Expects `raw` to be refused with `code` and a message naming the file
  // and containing `needle`.
  void ExpectRefused(const RawGguf& raw, absl::StatusCode code, const std::string& needle) {
    auto f = OpenBytes(raw.Build());
    ASSERT_FALSE(f.ok()) << "accepted a file that should fail with: " << needle;
    EXPECT_EQ(f.status().code(), code) << f.status();
    EXPECT_THAT(std::string(f.status().message()), HasSubstr(path_));
    EXPECT_THAT(std::string(f.status().message()), HasSubstr(needle));
  }

  std::string dir_ = testing::TempDir();
  std::string path_;
  int counter_ = 0;
};

// ------------------------------------------------------------- shared files

TEST(GgufSharedFilesTest, EveryModelAndVocabularyOpens) {
  int opened = 0;
  for (const char* sub : {"models", "tokenizer"}) {
    for (const auto& entry : std::filesystem::directory_iterator(testing::TestDataPath(sub))) {
      if (entry.path().extension() != ".gguf") continue;
      const std::string path = entry.path().string();
      auto f = GgufFile::Open(path);
      if (entry.path().filename() == "tinyllamas-stories-260k-f32.gguf") {
        ASSERT_FALSE(f.ok());
        EXPECT_EQ(f.status().code(), absl::StatusCode::kUnimplemented);
        EXPECT_THAT(std::string(f.status().message()), HasSubstr("version 1"));
        EXPECT_THAT(std::string(f.status().message()), HasSubstr("re-convert"));
        continue;
      }
      ASSERT_TRUE(f.ok()) << path << ": " << f.status();
      for (const auto& t : (*f)->tensors()) {
        EXPECT_LE(t.offset + t.n_bytes, (*f)->file_size() - (*f)->data_offset()) << t.name;
      }
      ++opened;
    }
  }
  EXPECT_GE(opened, 14);
}

TEST(GgufSharedFilesTest, Stories260K) {
  auto f = GgufFile::Open(testing::TestDataPath("models/stories260K.gguf"));
  ASSERT_TRUE(f.ok()) << f.status();
  const GgufFile& g = **f;
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.alignment(), 32u);
  EXPECT_EQ(g.metadata().size(), 19u);
  EXPECT_EQ(g.data_offset(), 14176u);  // 14152 bytes of header, padded to 32
  EXPECT_EQ(g.GetString("general.architecture").value(), "llama");
  EXPECT_EQ(g.GetUint32("llama.block_count").value(), 5u);
  EXPECT_EQ(g.GetUint32("llama.embedding_length").value(), 64u);
  EXPECT_EQ(g.GetUint32("llama.attention.head_count").value(), 8u);
  EXPECT_EQ(g.GetUint32("llama.attention.head_count_kv").value(), 4u);
  EXPECT_EQ(g.GetUint32("llama.feed_forward_length").value(), 172u);
  EXPECT_FLOAT_EQ(g.GetFloat("llama.attention.layer_norm_rms_epsilon").value(), 1e-5f);
  auto tokens = g.GetStringArray("tokenizer.ggml.tokens");
  ASSERT_TRUE(tokens.ok());
  ASSERT_EQ((*tokens)->size(), 512u);
  EXPECT_EQ((**tokens)[1], "<s>");
  EXPECT_EQ(g.GetFloatArray("tokenizer.ggml.scores")->size(), 512u);
  auto types = g.GetIntArray("tokenizer.ggml.token_type");
  ASSERT_TRUE(types.ok());
  EXPECT_EQ((*types)[0], 2);  // unknown
  EXPECT_EQ((*types)[3], 6);  // byte <0x00>

  ASSERT_EQ(g.tensors().size(), 48u);
  EXPECT_EQ(g.tensors()[0].name, "token_embd.weight");
  auto shape = [&](const std::string& name) {
    const GgufTensorInfo* t = g.FindTensor(name);
    EXPECT_NE(t, nullptr) << name;
    if (t == nullptr) return std::vector<int64_t>{};
    EXPECT_EQ(t->type, GgmlType::kF32) << name;
    return std::vector<int64_t>(t->ne.begin(), t->ne.begin() + t->n_dims);
  };
  using V = std::vector<int64_t>;
  EXPECT_EQ(shape("token_embd.weight"), (V{64, 512}));
  EXPECT_EQ(shape("output.weight"), (V{64, 512}));
  EXPECT_EQ(shape("output_norm.weight"), (V{64}));
  for (int b = 0; b < 5; ++b) {
    const std::string p = "blk." + std::to_string(b) + ".";
    EXPECT_EQ(shape(p + "attn_q.weight"), (V{64, 64}));
    EXPECT_EQ(shape(p + "attn_k.weight"), (V{64, 32}));
    EXPECT_EQ(shape(p + "attn_v.weight"), (V{64, 32}));
    EXPECT_EQ(shape(p + "attn_output.weight"), (V{64, 64}));
    EXPECT_EQ(shape(p + "attn_norm.weight"), (V{64}));
    EXPECT_EQ(shape(p + "ffn_gate.weight"), (V{64, 172}));
    EXPECT_EQ(shape(p + "ffn_up.weight"), (V{64, 172}));
    EXPECT_EQ(shape(p + "ffn_down.weight"), (V{172, 64}));
    EXPECT_EQ(shape(p + "ffn_norm.weight"), (V{64}));
  }
  // output.weight equals token_embd.weight in this file (tied in llama2.c).
  const GgufTensorInfo* emb = g.FindTensor("token_embd.weight");
  const GgufTensorInfo* out = g.FindTensor("output.weight");
  EXPECT_EQ(emb->n_bytes, 64u * 512 * 4);
  EXPECT_EQ(std::memcmp(g.TensorData(*emb), g.TensorData(*out), emb->n_bytes), 0);
  g.Prefetch(*emb);  // must not crash; advisory only
}

// Per-tensor types of the nano quantized files, as nano-README.md lists them.
TEST(GgufSharedFilesTest, NanoQuantizedTensorTypes) {
  auto q40 = GgufFile::Open(testing::TestDataPath("models/nano-q4_0.gguf"));
  ASSERT_TRUE(q40.ok()) << q40.status();
  auto q4km = GgufFile::Open(testing::TestDataPath("models/nano-q4_k_m.gguf"));
  ASSERT_TRUE(q4km.ok()) << q4km.status();
  for (const auto& t : (*q40)->tensors()) {
    const bool norm = t.name.find("norm") != std::string::npos;
    const GgmlType want = norm ? GgmlType::kF32 : t.name == "output.weight" ? GgmlType::kQ6_K : GgmlType::kQ4_0;
    EXPECT_EQ(t.type, want) << t.name;
  }
  EXPECT_EQ((*q40)->tensors().size(), 39u);
  for (const auto& t : (*q4km)->tensors()) {
    const bool norm = t.name.find("norm") != std::string::npos;
    const bool more_bits = t.name == "output.weight" || t.name == "blk.2.attn_v.weight" ||
                           t.name == "blk.3.attn_v.weight" || t.name == "blk.2.ffn_down.weight" ||
                           t.name == "blk.3.ffn_down.weight";
    const GgmlType want = norm ? GgmlType::kF32 : more_bits ? GgmlType::kQ6_K : GgmlType::kQ4_K;
    EXPECT_EQ(t.type, want) << t.name;
  }
  const GgufTensorInfo* down = (*q4km)->FindTensor("blk.0.ffn_down.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->ne[0], 768);
  EXPECT_EQ(down->ne[1], 256);
  EXPECT_EQ(down->n_bytes, 768u / 256 * 144 * 256);
  EXPECT_EQ((*q4km)->GetUint32("general.file_type").value(), 15u);  // LLAMA_FTYPE_MOSTLY_Q4_K_M
}

TEST(GgufSharedFilesTest, LargeVocabularyAndF16) {
  auto f = GgufFile::Open(testing::TestDataPath("models/llama-2-tiny-random.gguf"));
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->GetStringArray("tokenizer.ggml.tokens").value()->size(), 32000u);
  EXPECT_EQ((*f)->FindTensor("token_embd.weight")->type, GgmlType::kF16);
  EXPECT_EQ((*f)->FindTensor("output_norm.weight")->type, GgmlType::kF32);
}

// Resident KiB of this process's mapping that contains `addr`
// (/proc/self/smaps), or -1.
int64_t MappingRssKiB(const void* addr) {
  std::ifstream smaps("/proc/self/smaps");
  const auto a = reinterpret_cast<uintptr_t>(addr);
  bool inside = false;
  std::string line;
  while (std::getline(smaps, line)) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2) {  // a mapping's header line
      inside = lo <= a && a < hi;
    } else if (inside && line.rfind("Rss:", 0) == 0) {
      return std::atoll(line.c_str() + 4);
    }
  }
  return -1;
}

// A worker that copies a tensor into another layout drops the mapped pages.
TEST(GgufSharedFilesTest, EvictDropsATensorsPagesFromThisProcess) {
  auto f = GgufFile::Open(testing::TestDataPath("models/mini-shape-q4_0.gguf"));
  ASSERT_TRUE(f.ok()) << f.status();
  const GgufTensorInfo* t = (*f)->FindTensor("output.weight");
  ASSERT_NE(t, nullptr);
  ASSERT_GT(t->n_bytes, 4u << 20);
  const uint8_t* data = (*f)->TensorData(*t);
  volatile uint8_t sink = 0;  // touch every page
  for (size_t i = 0; i < t->n_bytes; i += 4096) sink = sink + data[i];
  const int64_t before = MappingRssKiB(data);
  ASSERT_GE(before, static_cast<int64_t>(t->n_bytes / 1024) - 8);
  const uint8_t elsewhere[64] = {};
  (*f)->Evict(elsewhere, sizeof(elsewhere));  // not in the mapping: ignored
  EXPECT_EQ(MappingRssKiB(data), before);
  (*f)->Evict(data, t->n_bytes);
  EXPECT_LE(MappingRssKiB(data), before - static_cast<int64_t>(t->n_bytes / 1024) + 8);
}

TEST(GgufSharedFilesTest, MissingFileIsNotFound) {
  auto f = GgufFile::Open("/nonexistent/model.gguf");
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("/nonexistent/model.gguf"));
}

// ------------------------------------------------------- hand-built files

TEST_F(GgufFileTest, ValidRawFileOpens) {
  auto f = OpenBytes(ValidRaw().Build());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->tensors().size(), 2u);
  EXPECT_EQ((*f)->FindTensor("b.weight")->n_bytes, 32u);
  EXPECT_EQ((*f)->TensorData(*(*f)->FindTensor("b.weight"))[0], 1);
}

TEST_F(GgufFileTest, Version2IsAccepted) {
  RawGguf g = ValidRaw();
  g.version = 2;
  auto f = OpenBytes(g.Build());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->version(), 2u);
}

TEST_F(GgufFileTest, Version1IsRefusedAsObsolete) {
  RawGguf g = ValidRaw();
  g.version = 1;
  ExpectRefused(g, absl::StatusCode::kUnimplemented, "GGUF version 1 is obsolete");
}

TEST_F(GgufFileTest, FutureVersionIsRefused) {
  RawGguf g = ValidRaw();
  g.version = 4;
  ExpectRefused(g, absl::StatusCode::kUnimplemented, "unsupported GGUF version 4");
}

TEST_F(GgufFileTest, BadMagic) {
  std::string bytes = ValidRaw().Build();
  bytes[0] = 'g';
  auto f = OpenBytes(bytes);
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(f.status().message()), HasSubstr("not a GGUF file"));
}

TEST_F(GgufFileTest, EmptyFileIsDataLoss) {
  auto f = OpenBytes("");
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kDataLoss);
}

// Every proper prefix of a valid file is refused as truncated, never read
// past its end (the ASan build checks the "never").
TEST_F(GgufFileTest, EveryTruncationIsDataLoss) {
  const std::string bytes = ValidRaw().Build();
  for (size_t n = 0; n < bytes.size(); ++n) {
    std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + n);  // exact-size heap block
    auto f = GgufFile::OpenFromMemory(prefix.data(), prefix.size(), "prefix");
    ASSERT_FALSE(f.ok()) << "prefix of " << n << " bytes accepted";
    EXPECT_EQ(f.status().code(), absl::StatusCode::kDataLoss) << n << ": " << f.status();
  }
  auto truncated = OpenBytes(bytes.substr(0, bytes.size() - 1));
  ASSERT_FALSE(truncated.ok());
  EXPECT_THAT(std::string(truncated.status().message()), HasSubstr("'b.weight'"));
}

TEST_F(GgufFileTest, AbsurdTensorCount) {
  RawGguf g = ValidRaw();
  g.n_tensors = uint64_t{1} << 60;
  ExpectRefused(g, absl::StatusCode::kDataLoss, "absurd tensor count");
}

TEST_F(GgufFileTest, AbsurdMetadataCount) {
  RawGguf g = ValidRaw();
  g.n_kv = ~uint64_t{0};
  ExpectRefused(g, absl::StatusCode::kDataLoss, "absurd metadata count");
}

TEST_F(GgufFileTest, AbsurdArrayLength) {
  RawGguf g = ValidRaw();
  std::string payload;
  Put<uint32_t>(&payload, 8);  // array of strings
  Put<uint64_t>(&payload, uint64_t{1} << 61);
  g.kvs.push_back(KvRaw("tokenizer.ggml.tokens", 9, payload));
  ExpectRefused(g, absl::StatusCode::kDataLoss, "'tokenizer.ggml.tokens' claims 2305843009213693952");
}

TEST_F(GgufFileTest, AbsurdStringLength) {
  RawGguf g = ValidRaw();
  std::string payload;
  Put<uint64_t>(&payload, ~uint64_t{0} - 3);
  g.kvs.push_back(KvRaw("general.name", 8, payload));
  ExpectRefused(g, absl::StatusCode::kDataLoss, "'general.name'");
}

TEST_F(GgufFileTest, NDimsOutOfRange) {
  for (uint32_t n_dims : {0u, 5u}) {
    RawGguf g = ValidRaw();
    g.tensors[1].n_dims = n_dims;
    ExpectRefused(g, absl::StatusCode::kInvalidArgument,
                  "tensor 'b.weight' has n_dims " + std::to_string(n_dims));
  }
}

TEST_F(GgufFileTest, ZeroDimension) {
  RawGguf g = ValidRaw();
  g.tensors[0].ne = {8, 0};
  ExpectRefused(g, absl::StatusCode::kInvalidArgument, "tensor 'a.weight' has invalid dimension ne[1] = 0");
}

TEST_F(GgufFileTest, NegativeDimension) {
  RawGguf g = ValidRaw();
  g.tensors[0].ne = {8, ~uint64_t{0}};  // -1 as int64
  g.data_bytes = 96;
  ExpectRefused(g, absl::StatusCode::kInvalidArgument, "tensor 'a.weight' has invalid dimension ne[1] = -1");
}

TEST_F(GgufFileTest, ElementCountOverflow) {
  RawGguf g = ValidRaw();
  g.tensors[0].ne = {uint64_t{1} << 32, uint64_t{1} << 32};
  g.data_bytes = 0;
  ExpectRefused(g, absl::StatusCode::kInvalidArgument, "'a.weight' has too many elements");
}

TEST_F(GgufFileTest, ByteSizeOverflow) {
  RawGguf g = ValidRaw();
  g.tensors[0].ne = {uint64_t{1} << 31, uint64_t{1} << 31};  // 2^62 f32 elements = 2^64 bytes
  g.data_bytes = 0;
  ExpectRefused(g, absl::StatusCode::kInvalidArgument, "'a.weight' byte size overflows");
}

TEST_F(GgufFileTest, RowNotMultipleOfBlockSize) {
  RawGguf g = ValidRaw();
  g.tensors[0].type = 2;  // q4_0, blocks of 32
  g.tensors[0].ne = {48, 2};
  ExpectRefused(g, absl::StatusCode::kInvalidArgument,
                "tensor 'a.weight' of type q4_0 has row length ne[0] = 48, not a multiple of the block size 32");
}

TEST_F(GgufFileTest, UnknownTensorType) {
  RawGguf g = ValidRaw();
  g.tensors[1].type = 4;  // q4_2, removed from ggml
  ExpectRefused(g, absl::StatusCode::kUnimplemented, "tensor 'b.weight' has unknown or unsupported ggml type 4");
}

TEST_F(GgufFileTest, TensorDataOutOfBounds) {
  RawGguf g = ValidRaw();
  g.tensors[1].offset = 1 << 20;
  g.data_bytes = 96;
  ExpectRefused(g, absl::StatusCode::kDataLoss, "tensor 'b.weight' data [1048576, +32)");
  RawGguf huge = ValidRaw();
  huge.tensors[1].offset = ~uint64_t{0} - 31;  // aligned, and offset + size wraps
  huge.data_bytes = 96;
  ExpectRefused(huge, absl::StatusCode::kDataLoss, "tensor 'b.weight'");
}

TEST_F(GgufFileTest, MisalignedTensorOffset) {
  RawGguf g = ValidRaw();
  g.tensors[1].offset = 68;
  ExpectRefused(g, absl::StatusCode::kInvalidArgument,
                "tensor 'b.weight' data offset 68 is not a multiple of the alignment 32");
}

TEST_F(GgufFileTest, DuplicateTensorName) {
  RawGguf g = ValidRaw();
  g.tensors[1].name = "a.weight";
  ExpectRefused(g, absl::StatusCode::kInvalidArgument, "duplicate tensor name 'a.weight'");
}

TEST_F(GgufFileTest, DuplicateMetadataKey) {
  RawGguf g = ValidRaw();
  g.kvs.push_back(KvU32("llama.block_count", 3));
  ExpectRefused(g, absl::StatusCode::kInvalidArgument, "duplicate metadata key 'llama.block_count'");
}

TEST_F(GgufFileTest, UnknownValueType) {
  RawGguf g = ValidRaw();
  g.kvs.push_back(KvRaw("x.weird", 13, "\0\0\0\0"));
  ExpectRefused(g, absl::StatusCode::kInvalidArgument, "key 'x.weird' has unknown value type 13");
}

TEST_F(GgufFileTest, NestedArraysAreRefused) {
  RawGguf g = ValidRaw();
  std::string payload;
  Put<uint32_t>(&payload, 9);  // array of arrays
  Put<uint64_t>(&payload, 1);
  Put<uint32_t>(&payload, 4);  // inner: array of 2 uint32
  Put<uint64_t>(&payload, 2);
  Put<uint32_t>(&payload, 7);
  Put<uint32_t>(&payload, 8);
  g.kvs.push_back(KvRaw("x.nested", 9, payload));
  ExpectRefused(g, absl::StatusCode::kUnimplemented, "array 'x.nested' holds arrays");
}

TEST_F(GgufFileTest, AlignmentMustBeAPowerOfTwo) {
  for (uint32_t a : {0u, 48u}) {
    RawGguf g = ValidRaw();
    g.kvs.push_back(KvU32("general.alignment", a));
    ExpectRefused(g, absl::StatusCode::kInvalidArgument,
                  "general.alignment = " + std::to_string(a) + " is not a non-zero power of two");
  }
  RawGguf wrong_type = ValidRaw();
  wrong_type.kvs.push_back(KvStr("general.alignment", "32"));
  ExpectRefused(wrong_type, absl::StatusCode::kInvalidArgument, "general.alignment has type string");
}

TEST_F(GgufFileTest, CustomAlignment) {
  RawGguf g = ValidRaw();
  g.kvs.push_back(KvU32("general.alignment", 64));
  g.alignment = 64;
  auto f = OpenBytes(g.Build());
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->alignment(), 64u);
  EXPECT_EQ((*f)->data_offset() % 64, 0u);
  RawGguf bad = g;
  bad.tensors[1].offset = 96;  // a multiple of 32 but not of 64
  ExpectRefused(bad, absl::StatusCode::kInvalidArgument, "not a multiple of the alignment 64");
}

TEST_F(GgufFileTest, VocabOnlyFileWithoutPaddingOpens) {
  RawGguf g;
  g.kvs = {KvStr("general.architecture", "llama"), KvStr("tokenizer.ggml.model", "llamax")};
  std::string bytes = g.Build();
  bytes.resize(bytes.find("llamax") + 6);  // no padding after the header
  auto f = OpenBytes(bytes);
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->tensors().size(), 0u);
}

// ----------------------------------------------------------------- getters

TEST_F(GgufFileTest, TypedGetters) {
  RawGguf g = ValidRaw();
  std::string neg;
  Put<int32_t>(&neg, -5);
  std::string big;
  Put<uint64_t>(&big, ~uint64_t{0});
  std::string f64;
  Put<double>(&f64, 0.25);
  std::string yes("\x01", 1);
  std::string ints;
  Put<uint32_t>(&ints, 5);  // array of int32
  Put<uint64_t>(&ints, 2);
  Put<int32_t>(&ints, -1);
  Put<int32_t>(&ints, 7);
  g.kvs.push_back(KvRaw("k.neg", 5, neg));
  g.kvs.push_back(KvRaw("k.big", 10, big));
  g.kvs.push_back(KvRaw("k.f64", 12, f64));
  g.kvs.push_back(KvRaw("k.bool", 7, yes));
  g.kvs.push_back(KvRaw("k.ints", 9, ints));
  auto file = OpenBytes(g.Build());
  ASSERT_TRUE(file.ok()) << file.status();
  const GgufFile& f = **file;

  EXPECT_EQ(f.GetUint32("llama.block_count").value(), 2u);
  EXPECT_EQ(f.GetInt64("llama.block_count").value(), 2);
  EXPECT_EQ(f.GetInt64("k.neg").value(), -5);
  EXPECT_FLOAT_EQ(f.GetFloat("k.f64").value(), 0.25f);
  EXPECT_TRUE(f.GetBool("k.bool").value());
  EXPECT_EQ(f.GetIntArray("k.ints").value(), (std::vector<int64_t>{-1, 7}));
  EXPECT_EQ(f.Find("k.ints")->array_size(), 2u);
  EXPECT_EQ(f.Find("nope"), nullptr);

  auto expect_error = [&](auto status_or, absl::StatusCode code, const std::string& needle) {
    ASSERT_FALSE(status_or.ok());
    EXPECT_EQ(status_or.status().code(), code) << status_or.status();
    EXPECT_THAT(std::string(status_or.status().message()), HasSubstr(needle));
    EXPECT_THAT(std::string(status_or.status().message()), HasSubstr(path_));
  };
  expect_error(f.GetString("nope"), absl::StatusCode::kNotFound, "'nope' not found");
  expect_error(f.GetString("llama.block_count"), absl::StatusCode::kInvalidArgument,
               "'llama.block_count' is uint32, expected a string");
  expect_error(f.GetUint32("k.neg"), absl::StatusCode::kInvalidArgument, "'k.neg' = -5 does not fit in uint32");
  expect_error(f.GetUint32("k.big"), absl::StatusCode::kInvalidArgument, "does not fit in uint32");
  expect_error(f.GetInt64("k.big"), absl::StatusCode::kInvalidArgument, "does not fit in int64");
  expect_error(f.GetInt64("general.architecture"), absl::StatusCode::kInvalidArgument, "expected an integer");
  expect_error(f.GetFloat("llama.block_count"), absl::StatusCode::kInvalidArgument, "expected float32 or float64");
  expect_error(f.GetBool("k.neg"), absl::StatusCode::kInvalidArgument, "expected bool");
  expect_error(f.GetStringArray("k.ints"), absl::StatusCode::kInvalidArgument,
               "'k.ints' is array of int32, expected array of string");
  expect_error(f.GetFloatArray("k.ints"), absl::StatusCode::kInvalidArgument, "expected array of float");
  expect_error(f.GetIntArray("general.architecture"), absl::StatusCode::kInvalidArgument,
               "expected array of integers");
  expect_error(f.GetIntArray("missing.array"), absl::StatusCode::kNotFound, "'missing.array' not found");
}

}  // namespace
}  // namespace shardlm
