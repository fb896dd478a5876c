// The quantized KV caches (q8_0, q4_0): the flash-attention kernel
// (worker/flash_attention.h) of every kernel set against its scalar
// reference and against exact attention, its row accessor, the cache's bytes
// per position, the flag values, and (data) a whole stage: refusing a head
// size they cannot hold, the bytes it reports, and a prompt batch equal to
// token-by-token decoding. Agreement with llama.cpp itself: golden_test over
// golden/kv-q8_0.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/metrics.h"
#include "common/kernels/tensor_format.h"
#include "tests/golden.h"
#include "tests/test_data.h"
#include "worker/attention.h"
#include "worker/flash_attention.h"
#include "worker/kv_cache.h"
#include "worker/llama_stage.h"

namespace shardlm::testing {
namespace {

// n_pos positions of keys and values for `shape`, quantized to `type` as the
// stage stores them, plus the float values they came from.
struct Cache {
  KvType type = KvType::kQ8_0;
  AttentionShape shape;
  int n_pos = 0;
  std::vector<float> k, v, q;              // floats: [n_pos][row], q [n_head * head_dim]
  std::vector<uint8_t> k_q8, v_q8;         // [n_pos][row_bytes]
  size_t row_bytes = 0;
  int row() const { return shape.n_head_kv * shape.head_dim; }
};

Cache MakeCache(KvType type, AttentionShape shape, int n_pos, uint32_t seed) {
  Cache c;
  c.type = type;
  c.shape = shape;
  c.n_pos = n_pos;
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int row = c.row();
  c.k.resize(static_cast<size_t>(n_pos) * row);
  c.v.resize(c.k.size());
  c.q.resize(static_cast<size_t>(shape.n_head) * shape.head_dim);
  for (float& x : c.k) x = normal(rng);
  for (float& x : c.v) x = normal(rng);
  for (float& x : c.q) x = 2.0f * normal(rng);  // peaked enough to move the running max
  c.row_bytes = KvRowBytes(type, row);
  c.k_q8.resize(c.row_bytes * n_pos);
  c.v_q8.resize(c.k_q8.size());
  for (int j = 0; j < n_pos; ++j) {
    StoreKv(&c.k[static_cast<size_t>(j) * row], &c.v[static_cast<size_t>(j) * row], row,
            type, &c.k_q8[j * c.row_bytes], &c.v_q8[j * c.row_bytes]);
  }
  return c;
}

// The addresses of n rows `row_bytes` apart from `base` (KvRows' view).
std::vector<const void*> RowsAt(const uint8_t* base, size_t row_bytes, int n) {
  std::vector<const void*> rows(n);
  for (int j = 0; j < n; ++j) rows[j] = base + static_cast<size_t>(j) * row_bytes;
  return rows;
}

std::vector<float> Flash(const Cache& c, KernelSet set) {
  std::vector<float> out(c.q.size(), NAN), scratch;
  const std::vector<const void*> k = RowsAt(c.k_q8.data(), c.row_bytes, c.n_pos),
                                 v = RowsAt(c.v_q8.data(), c.row_bytes, c.n_pos);
  const KvRows keys{k.data()}, values{v.data()};
  for (int h = 0; h < c.shape.n_head; ++h) {
    FlashAttendHead(c.q.data(), keys, values, c.type, c.n_pos, c.shape, h, out.data(), &scratch,
                    set);
  }
  return out;
}

const AttentionShape kShapes[] = {{8, 2, 32}, {4, 4, 64}, {8, 2, 128}};
constexpr KvType kQuantized[] = {KvType::kQ8_0, KvType::kQ4_0};

TEST(FlashAttentionTest, EveryKernelSetEqualsTheScalarReferenceToTheBit) {
  uint32_t seed = 1;
  for (KvType type : kQuantized) {
  for (const AttentionShape& shape : kShapes) {
    for (int n_pos : {1, 2, 17, 300}) {
      const Cache c = MakeCache(type, shape, n_pos, seed++);
      const std::vector<float> ref = Flash(c, KernelSet::kReference);
      for (KernelSet set : AvailableKernelSets()) {
        SCOPED_TRACE(::testing::Message() << KernelSetName(set) << " " << KvTypeName(type)
                                          << " head_dim " << shape.head_dim << " n_pos " << n_pos);
        const std::vector<float> got = Flash(c, set);
        EXPECT_EQ(std::memcmp(got.data(), ref.data(), ref.size() * sizeof(float)), 0);
      }
    }
  }
  }
}

// The q8_0 rounding of q, k and v moves the result by about 1% of |v|
// (q4_0's by several times that), far less than the spread of the values.
TEST(FlashAttentionTest, CloseToExactAttentionOverTheUnquantizedRows) {
  for (KvType type : kQuantized) {
  for (const AttentionShape& shape : kShapes) {
    const Cache c = MakeCache(type, shape, 120, 7);
    const std::vector<float> got = Flash(c, KernelSet::kBest);
    const int hd = shape.head_dim, row = c.row();
    double worst = 0;
    for (int h = 0; h < shape.n_head; ++h) {
      const int kvh = h / (shape.n_head / shape.n_head_kv);
      std::vector<double> score(c.n_pos);
      double max = -INFINITY, sum = 0;
      for (int j = 0; j < c.n_pos; ++j) {
        double dot = 0;
        for (int i = 0; i < hd; ++i) dot += double{c.q[h * hd + i]} * c.k[j * row + kvh * hd + i];
        score[j] = dot / std::sqrt(static_cast<double>(hd));
        max = std::max(max, score[j]);
      }
      for (double& s : score) sum += s = std::exp(s - max);
      for (int i = 0; i < hd; ++i) {
        double want = 0;
        for (int j = 0; j < c.n_pos; ++j) want += score[j] / sum * c.v[j * row + kvh * hd + i];
        worst = std::max(worst, std::abs(want - got[h * hd + i]));
      }
    }
    EXPECT_LT(worst, type == KvType::kQ8_0 ? 0.1 : 0.5) << KvTypeName(type) << " head_dim " << hd;
    EXPECT_GT(worst, 0.0) << "rounding: exact equality would mean the floats were read";
  }
  }
}

// Positions are read only through KvRows::row: rows placed further apart
// give the same bits.
TEST(FlashAttentionTest, ReadsRowsThroughTheAccessor) {
  const Cache c = MakeCache(KvType::kQ8_0, {8, 2, 64}, 40, 3);
  const size_t spread = c.row_bytes + 50;
  std::vector<uint8_t> k(spread * c.n_pos, 0xAB), v(k.size(), 0xCD);
  for (int j = 0; j < c.n_pos; ++j) {
    std::memcpy(&k[j * spread], &c.k_q8[j * c.row_bytes], c.row_bytes);
    std::memcpy(&v[j * spread], &c.v_q8[j * c.row_bytes], c.row_bytes);
  }
  std::vector<float> out(c.q.size()), scratch;
  for (int h = 0; h < c.shape.n_head; ++h) {
    const std::vector<const void*> kr = RowsAt(k.data(), spread, c.n_pos),
                                   vr = RowsAt(v.data(), spread, c.n_pos);
    FlashAttendHead(c.q.data(), KvRows{kr.data()}, KvRows{vr.data()}, c.type, c.n_pos, c.shape,
                    h, out.data(), &scratch);
  }
  const std::vector<float> packed = Flash(c, KernelSet::kBest);
  EXPECT_EQ(std::memcmp(out.data(), packed.data(), out.size() * sizeof(float)), 0);
}

TEST(QuantizedKvCacheTest, RowBytesAndBytesPerTokenAgainstF16) {
  const int layers = 3, row = 256;
  KvCache f16(layers, row, 64, KvType::kF16, 0), q8(layers, row, 64, KvType::kQ8_0, 0),
      q4(layers, row, 64, KvType::kQ4_0, 0);
  EXPECT_EQ(q8.row_bytes(), 272u);  // 8 blocks of 34 bytes
  EXPECT_EQ(q4.row_bytes(), 144u);  // 8 blocks of 18 bytes
  EXPECT_EQ(f16.row_bytes(), 512u);
  EXPECT_LE(q4.bytes_per_token(), 0.3 * f16.bytes_per_token());
  EXPECT_EQ(q8.bytes_per_token(), 2 * layers * 272);
  EXPECT_LE(q8.bytes_per_token(), 0.55 * f16.bytes_per_token());
  // The budget counts q8_0 rows: 64 positions fit exactly, 65 do not.
  KvCache tight(layers, row, 128, KvType::kQ8_0, 64 * q8.bytes_per_token());
  int64_t extra = 0;
  EXPECT_TRUE(tight.CheckAppend(1, 0, 64, &extra).ok());
  tight.Prepare(1, 0, 64);
  extra = 0;
  EXPECT_EQ(tight.CheckAppend(1, 64, 1, &extra).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(tight.stats().bytes_used, 64 * q8.bytes_per_token());
}

TEST(KvTypeTest, ParsesTheFlagValuesAndRefusesOthers) {
  for (KvType t : {KvType::kF16, KvType::kF32, KvType::kQ8_0, KvType::kQ4_0}) {
    absl::StatusOr<KvType> parsed = ParseKvType(KvTypeName(t));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, t);
  }
  absl::StatusOr<KvType> bad = ParseKvType("q4_1");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("q8_0"), std::string::npos) << bad.status();
  EXPECT_TRUE(CheckKvTypeFits(KvType::kQ8_0, 64).ok());
  EXPECT_TRUE(CheckKvTypeFits(KvType::kF16, 8).ok());
  EXPECT_FALSE(CheckKvTypeFits(KvType::kQ4_0, 48).ok());
  const absl::Status st = CheckKvTypeFits(KvType::kQ8_0, 8);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("divisible by 32"), std::string::npos) << st;
}

// stories260K's heads are 8 wide: llama.cpp refuses a q8_0 cache there too.
TEST(QuantizedKvStageTest, RefusesAHeadSizeNotDivisibleBy32) {
  StageOptions o;
  o.kv_type = KvType::kQ8_0;
  auto stage = LlamaStage::Open(TestDataPath("models/stories260K.gguf"), o);
  ASSERT_FALSE(stage.ok());
  EXPECT_EQ(stage.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(stage.status().message().find("head size"), std::string::npos) << stage.status();
}

TEST(QuantizedKvStageTest, ReportsItsTypeAndBytesPerToken) {
  auto f16 = OpenStage(TestDataPath("models/nano-q4_0.gguf"), KvType::kF16);
  auto q8 = OpenStage(TestDataPath("models/nano-q4_0.gguf"), KvType::kQ8_0, 1, 3);
  ASSERT_NE(f16, nullptr);
  ASSERT_NE(q8, nullptr);
  EXPECT_EQ(q8->info().kv_type, "q8_0");
  EXPECT_EQ(f16->info().kv_type, "f16");
  const ModelConfig& c = q8->config();
  EXPECT_EQ(q8->info().kv_bytes_per_token, 2 * 2 * (c.n_embd_kv() / 32) * 34);  // layers 1, 2
  EXPECT_EQ(f16->info().kv_bytes_per_token, 2 * c.n_layer * c.n_embd_kv() * 2);
  EXPECT_LE(q8->info().kv_bytes_per_token / 2.0,  // per layer, against f16's per layer
            0.55 * f16->info().kv_bytes_per_token / c.n_layer);
  MetricsPage page;
  q8->RenderMetrics(&page);
  EXPECT_NE(page.text().find(absl::StrCat("shardlm_worker_kv_bytes_per_token{layers=\"1:3\",type=\"q8_0\"} ",
                                          q8->info().kv_bytes_per_token)),
            std::string::npos)
      << page.text();
  // Bytes used follow: one sequence of 10 positions.
  ForwardRequest r;
  for (int i = 0; i < 10; ++i) {
    r.seq_ids.push_back(5);
    r.positions.push_back(i);
  }
  r.hidden.assign(10 * static_cast<size_t>(c.n_embd), 0.25f);
  ForwardResult res;
  ASSERT_TRUE(q8->Forward(r, &res).ok());
  EXPECT_EQ(q8->kv_stats().tokens, 10);
  EXPECT_GE(q8->kv_stats().bytes_used, 10 * q8->info().kv_bytes_per_token);
}

// Flash attention attends a prompt batch and single tokens the same way,
// and q4_0's matmuls do not depend on the chunking: a q8_0-KV prompt in one
// batch and fed token by token give the same logits to the bit.
TEST(QuantizedKvStageTest, PromptBatchEqualsTokenByToken) {
  for (KvType type : kQuantized) {
    SCOPED_TRACE(KvTypeName(type));
    auto stage = OpenStage(TestDataPath("models/nano-q4_0.gguf"), type);
    ASSERT_NE(stage, nullptr);
    const std::vector<int32_t> tokens = {1, 403, 407, 261, 378, 317, 394, 261, 370, 352, 266, 268};
    const std::vector<float> batch = BatchLogits(stage.get(), 1, tokens);
    const std::vector<float> single = ChunkedLogits(stage.get(), 2, tokens, 1);
    ASSERT_EQ(batch.size(), single.size());
    ASSERT_FALSE(batch.empty());
    EXPECT_EQ(std::memcmp(batch.data(), single.data(), batch.size() * sizeof(float)), 0)
        << "max diff " << MaxAbsDiff(batch.data(), single.data(), static_cast<int>(batch.size()));
  }
}

}  // namespace
}  // namespace shardlm::testing
