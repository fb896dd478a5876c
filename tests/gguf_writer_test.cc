#include "common/model/gguf_writer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "common/model/gguf.h"
#include "tests/test_data.h"

namespace shardlm {
namespace {

using ::testing::HasSubstr;

std::vector<uint8_t> Bytes(size_t n, uint8_t seed) {
  std::vector<uint8_t> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(seed + i * 7);
  return out;
}

TEST(GgufWriterTest, RoundTripsEveryValueTypeAndTensorData) {
  GgufWriter w;
  w.SetUint8("t.u8", 200);
  w.SetInt8("t.i8", -100);
  w.SetUint16("t.u16", 60000);
  w.SetInt16("t.i16", -30000);
  w.SetUint32("t.u32", 4000000000u);
  w.SetInt32("t.i32", -2000000000);
  w.SetUint64("t.u64", ~uint64_t{0});
  w.SetInt64("t.i64", -(int64_t{1} << 60));
  w.SetFloat32("t.f32", 1e-5f);
  w.SetFloat64("t.f64", 0.1);
  w.SetBool("t.bool", true);
  w.SetString("t.str", "héllo\n");
  w.SetStringArray("t.strs", {"<unk>", "", "▁the"});
  w.SetFloatArray("t.floats", {0.5f, -1.25f});
  w.SetInt32Array("t.ints", {1, -2, 3});
  w.SetUint32("t.u32", 7);  // replaces in place, keeps the position
  ASSERT_TRUE(w.AddTensorInfo("m.weight", GgmlType::kQ4_0, {64, 3}).ok());
  ASSERT_TRUE(w.AddTensorInfo("v.weight", GgmlType::kF32, {5}).ok());
  const auto m = Bytes(2 * 18 * 3, 1);
  const auto v = Bytes(20, 9);

  const std::string path = testing::TempDir() + "/rt.gguf";
  ASSERT_TRUE(w.Open(path).ok());
  // Any chunking is fine as long as the order is kept.
  ASSERT_TRUE(w.WriteTensorData("m.weight", m.data(), 10).ok());
  ASSERT_TRUE(w.WriteTensorData("m.weight", m.data() + 10, m.size() - 10).ok());
  ASSERT_TRUE(w.WriteTensorData("v.weight", v.data(), v.size()).ok());
  ASSERT_TRUE(w.Finish().ok());
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  EXPECT_EQ(std::filesystem::file_size(path), w.FileSize());

  auto f = GgufFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status();
  const GgufFile& g = **f;
  EXPECT_EQ(g.version(), 3u);
  ASSERT_EQ(g.metadata().size(), 15u);
  EXPECT_EQ(g.metadata()[4].key, "t.u32");
  EXPECT_EQ(g.GetUint32("t.u32").value(), 7u);
  EXPECT_EQ(g.Find("t.u8")->u, 200u);
  EXPECT_EQ(g.Find("t.i8")->i, -100);
  EXPECT_EQ(g.Find("t.u16")->u, 60000u);
  EXPECT_EQ(g.Find("t.i16")->i, -30000);
  EXPECT_EQ(g.GetInt64("t.i32").value(), -2000000000);
  EXPECT_EQ(g.Find("t.u64")->u, ~uint64_t{0});
  EXPECT_EQ(g.GetInt64("t.i64").value(), -(int64_t{1} << 60));
  EXPECT_EQ(g.GetFloat("t.f32").value(), 1e-5f);
  EXPECT_EQ(g.Find("t.f64")->f, 0.1);
  EXPECT_EQ(g.Find("t.f64")->type, GgufValueType::kFloat64);
  EXPECT_TRUE(g.GetBool("t.bool").value());
  EXPECT_EQ(g.GetString("t.str").value(), "héllo\n");
  EXPECT_EQ(*g.GetStringArray("t.strs").value(), (std::vector<std::string>{"<unk>", "", "▁the"}));
  EXPECT_EQ(g.GetFloatArray("t.floats").value(), (std::vector<float>{0.5f, -1.25f}));
  EXPECT_EQ(g.GetIntArray("t.ints").value(), (std::vector<int64_t>{1, -2, 3}));

  ASSERT_EQ(g.tensors().size(), 2u);
  const GgufTensorInfo* mt = g.FindTensor("m.weight");
  EXPECT_EQ(mt->type, GgmlType::kQ4_0);
  EXPECT_EQ(mt->ne[0], 64);
  EXPECT_EQ(mt->ne[1], 3);
  EXPECT_EQ(std::memcmp(g.TensorData(*mt), m.data(), m.size()), 0);
  const GgufTensorInfo* vt = g.FindTensor("v.weight");
  EXPECT_EQ(vt->offset % 32, 0u);
  EXPECT_EQ(std::memcmp(g.TensorData(*vt), v.data(), v.size()), 0);
}

TEST(GgufWriterTest, InMemoryEqualsFileAndCustomAlignment) {
  auto make = [](GgufWriter* w) {
    w->SetString("general.architecture", "llama");
    ASSERT_TRUE(w->AddTensorInfo("a", GgmlType::kF16, {3}).ok());
    ASSERT_TRUE(w->AddTensorInfo("b", GgmlType::kF32, {2, 2}).ok());
  };
  GgufWriter mem_writer(64), file_writer(64);
  make(&mem_writer);
  make(&file_writer);
  std::string mem;
  const auto a = Bytes(6, 1), b = Bytes(16, 2);
  ASSERT_TRUE(mem_writer.OpenInMemory(&mem).ok());
  const std::string path = testing::TempDir() + "/a64.gguf";
  ASSERT_TRUE(file_writer.Open(path).ok());
  for (GgufWriter* w : {&mem_writer, &file_writer}) {
    ASSERT_TRUE(w->WriteTensorData("a", a.data(), a.size()).ok());
    ASSERT_TRUE(w->WriteTensorData("b", b.data(), b.size()).ok());
    ASSERT_TRUE(w->Finish().ok());
  }
  EXPECT_EQ(mem, testing::ReadFileOrDie(path));
  auto f = GgufFile::OpenFromMemory(reinterpret_cast<const uint8_t*>(mem.data()), mem.size(), "mem");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ((*f)->alignment(), 64u);
  EXPECT_EQ((*f)->GetUint32("general.alignment").value(), 64u);
  EXPECT_EQ((*f)->FindTensor("b")->offset, 64u);
  EXPECT_EQ((*f)->data_offset() % 64, 0u);
}

// Re-writing stories260K.gguf (all metadata copied with SetValue, tensors in
// file order) reproduces it byte for byte: our layout is llama.cpp's.
TEST(GgufWriterTest, RewritesStories260KByteForByte) {
  const std::string src_path = testing::TestDataPath("models/stories260K.gguf");
  auto src = GgufFile::Open(src_path);
  ASSERT_TRUE(src.ok()) << src.status();
  GgufWriter w;
  for (const auto& kv : (*src)->metadata()) w.SetValue(kv.key, kv.value);
  for (const auto& t : (*src)->tensors()) {
    ASSERT_TRUE(w.AddTensorInfo(t.name, t.type, std::vector<int64_t>(t.ne.begin(), t.ne.begin() + t.n_dims)).ok());
  }
  std::string out;
  ASSERT_TRUE(w.OpenInMemory(&out).ok());
  for (const auto& t : (*src)->tensors()) {
    ASSERT_TRUE(w.WriteTensorData(t.name, (*src)->TensorData(t), t.n_bytes).ok());
  }
  ASSERT_TRUE(w.Finish().ok());
  EXPECT_TRUE(out == testing::ReadFileOrDie(src_path));
}

TEST(GgufWriterTest, RefusesBadTensorInfos) {
  GgufWriter w;
  EXPECT_THAT(std::string(w.AddTensorInfo("x", GgmlType::kF32, {}).message()), HasSubstr("must be 1..4"));
  EXPECT_THAT(std::string(w.AddTensorInfo("x", GgmlType::kF32, {1, 1, 1, 1, 1}).message()),
              HasSubstr("must be 1..4"));
  EXPECT_THAT(std::string(w.AddTensorInfo("x", GgmlType::kF32, {4, 0}).message()),
              HasSubstr("invalid dimension ne[1] = 0"));
  EXPECT_THAT(std::string(w.AddTensorInfo("x", GgmlType::kQ8_0, {172, 2}).message()),
              HasSubstr("row length 172 is not a multiple of q8_0's block size 32"));
  ASSERT_TRUE(w.AddTensorInfo("x", GgmlType::kF32, {4}).ok());
  EXPECT_THAT(std::string(w.AddTensorInfo("x", GgmlType::kF32, {4}).message()), HasSubstr("duplicate tensor 'x'"));
}

TEST(GgufWriterTest, EnforcesOrderAndSizesAndLeavesNoPartialFile) {
  GgufWriter w;
  ASSERT_TRUE(w.AddTensorInfo("first", GgmlType::kF32, {4}).ok());
  ASSERT_TRUE(w.AddTensorInfo("second", GgmlType::kF32, {4}).ok());
  const std::string path = testing::TempDir() + "/partial.gguf";
  ASSERT_TRUE(w.Open(path).ok());
  const auto data = Bytes(32, 0);
  auto wrong_order = w.WriteTensorData("second", data.data(), 16);
  EXPECT_THAT(std::string(wrong_order.message()), HasSubstr("expected 'first'"));
  // The first error sticks: a writer that went wrong never produces a file.
  EXPECT_FALSE(w.WriteTensorData("first", data.data(), 16).ok());
  EXPECT_FALSE(w.Finish().ok());
  EXPECT_FALSE(std::filesystem::exists(path));

  GgufWriter w2;
  ASSERT_TRUE(w2.AddTensorInfo("only", GgmlType::kF32, {4}).ok());
  const std::string path2 = testing::TempDir() + "/short.gguf";
  ASSERT_TRUE(w2.Open(path2).ok());
  EXPECT_THAT(std::string(w2.WriteTensorData("only", data.data(), 17).message()), HasSubstr("17 bytes written"));

  GgufWriter w3;
  ASSERT_TRUE(w3.AddTensorInfo("only", GgmlType::kF32, {4}).ok());
  const std::string path3 = testing::TempDir() + "/incomplete.gguf";
  ASSERT_TRUE(w3.Open(path3).ok());
  ASSERT_TRUE(w3.WriteTensorData("only", data.data(), 8).ok());
  EXPECT_THAT(std::string(w3.Finish().message()), HasSubstr("tensor 'only' has 8 of 16 bytes"));
  EXPECT_FALSE(std::filesystem::exists(path3));
}

TEST(GgufWriterTest, AlignmentKeyKeepsItsPlaceAndMustAgree) {
  GgufWriter copy(64);
  copy.SetString("general.architecture", "llama");
  copy.SetUint32("general.alignment", 64);  // as a copied file would have it
  std::string out;
  ASSERT_TRUE(copy.OpenInMemory(&out).ok());
  ASSERT_TRUE(copy.Finish().ok());
  auto f = GgufFile::OpenFromMemory(reinterpret_cast<const uint8_t*>(out.data()), out.size(), "copy");
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ((*f)->metadata().size(), 2u);
  EXPECT_EQ((*f)->metadata()[1].key, "general.alignment");

  GgufWriter liar(64);
  liar.SetUint32("general.alignment", 32);
  EXPECT_THAT(std::string(liar.OpenInMemory(&out).message()), HasSubstr("general.alignment is set to 32"));
}

TEST(GgufWriterTest, OpenFailsCleanlyOnBadPath) {
  GgufWriter w;
  auto s = w.Open("/nonexistent-dir/x.gguf");
  EXPECT_FALSE(s.ok());
  EXPECT_THAT(std::string(s.message()), HasSubstr("/nonexistent-dir/x.gguf.tmp"));
}

}  // namespace
}  // namespace shardlm
