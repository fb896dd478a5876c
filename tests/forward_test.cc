// The forward pass on stories260K (a real trained model) against llama2.c's
// expected text and an independent float64 reference, and the properties
// that catch KV-cache bugs: incremental decoding equals a full recompute,
// batched equals unbatched, a layer split equals the whole model.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "tests/golden.h"
#include "tests/test_data.h"

namespace shardlm::testing {
namespace {

std::string Stories() { return TestDataPath("models/stories260K.gguf"); }

nlohmann::json Reference() {
  return nlohmann::json::parse(ReadFileOrDie(TestDataPath("models/stories260K.reference.json")));
}

TEST(ForwardTest, StoriesLogitsMatchFloat64Reference) {
  auto stage = OpenStage(Stories(), KvType::kF32);
  ASSERT_NE(stage, nullptr);
  const auto ref = Reference();
  const auto expected = ref.at("full_logits_first_steps").at("logits").get<std::vector<std::vector<float>>>();
  const std::vector<int32_t> inputs = {1, 403, 407, 261};  // BOS + the first greedy tokens
  std::vector<float> logits = ChunkedLogits(stage.get(), 1, inputs, 1);
  const int v = stage->info().n_vocab;
  for (size_t step = 0; step < expected.size(); ++step) {
    // The reference is float64 rounded to 6 significant digits (|logit| < 20:
    // rounding error < 1e-4 / 2), float32 arithmetic adds ~2e-5.
    EXPECT_LE(MaxAbsDiff(&logits[step * v], expected[step].data(), v), 1e-4f) << "step " << step;
  }
}

TEST(ForwardTest, StoriesHiddenStatesAfterEveryBlockMatchReference) {
  const auto ref = Reference().at("residual_after_each_block");
  const auto tokens = ref.at("input_tokens").get<std::vector<int32_t>>();
  const auto x = ref.at("x").get<std::vector<std::vector<std::vector<float>>>>();  // [pos][layer][64]
  ASSERT_EQ(x.size(), tokens.size());
  for (int layer = 0; layer + 1 < static_cast<int>(x[0].size()); ++layer) {
    // A stage of layers [0, layer+1) that is not the last returns the
    // residual stream (the last block's output is covered by the logits).
    auto stage = OpenStage(Stories(), KvType::kF32, 0, layer + 1);
    ASSERT_NE(stage, nullptr);
    ForwardRequest r;
    for (size_t i = 0; i < tokens.size(); ++i) {
      r.seq_ids.push_back(7);
      r.positions.push_back(static_cast<int32_t>(i));
      r.tokens.push_back(tokens[i]);
    }
    ForwardResult res;
    ASSERT_TRUE(stage->Forward(r, &res).ok());
    ASSERT_EQ(res.hidden.size(), tokens.size() * 64);
    for (size_t p = 0; p < tokens.size(); ++p) {
      EXPECT_LE(MaxAbsDiff(&res.hidden[p * 64], x[p][layer].data(), 64), 1e-4f)
          << "layer " << layer << " position " << p;
    }
  }
}

// Incremental decoding equals full recompute, the bug behind
// "ragmentragment...": logits at every position of a 40-token sequence fed
// one token at a time and in chunks of 7 equal one batched forward of it.
void ExpectIncrementalEqualsFull(const std::string& model, KvType kv) {
  auto stage = OpenStage(model, kv);
  ASSERT_NE(stage, nullptr);
  const auto ids = Reference().at("greedy_token_ids").at("ids").get<std::vector<int32_t>>();
  std::vector<int32_t> tokens = {1};
  tokens.insert(tokens.end(), ids.begin(), ids.begin() + 39);
  const std::vector<float> full = BatchLogits(stage.get(), 1, tokens);
  const int v = stage->info().n_vocab;
  for (int chunk : {1, 7}) {
    const std::vector<float> inc = ChunkedLogits(stage.get(), 100 + chunk, tokens, chunk);
    ASSERT_EQ(inc.size(), full.size());
    for (size_t p = 0; p < tokens.size(); ++p) {
      for (int i = 0; i < v; ++i) {
        const float a = inc[p * v + i], b = full[p * v + i];
        ASSERT_LE(std::fabs(a - b), 1e-4f * std::max(1.0f, std::fabs(b)))
            << "chunk " << chunk << " position " << p << " token " << i;
      }
    }
  }
}

TEST(ForwardTest, IncrementalEqualsFullRecomputeF32) {
  ExpectIncrementalEqualsFull(Stories(), KvType::kF32);
}

TEST(ForwardTest, IncrementalEqualsFullRecomputeQuantizedF16Cache) {
  // q4_0: llama.cpp (and so shardlm) computes q4_K rows in groups of 4 tokens,
  // whose sums depend on how a sequence is chunked; q4_0 rows do not.
  ExpectIncrementalEqualsFull(TestDataPath("models/nano-q4_0.gguf"), KvType::kF16);
}

// Sequences of different lengths decoded together in shared batches get, bit
// for bit, the logits they get alone, whichever tokens share a kernel call:
// five one-token sequences per decode step make a call of 4 and one of 1 on
// the x8 / interleaved / tile kernels. Per type, and with interleaved weights
// off (plain x8 kernels) and on.
class BatchedTest : public ::testing::TestWithParam<std::tuple<const char*, bool>> {};

TEST_P(BatchedTest, BatchedEqualsUnbatched) {
  StageOptions o;
  o.kv_type = KvType::kF32;
  o.interleave_weights = std::get<1>(GetParam());
  auto opened = LlamaStage::Open(TestDataPath(std::get<0>(GetParam())), o);
  ASSERT_TRUE(opened.ok()) << opened.status();
  Stage* stage = opened->get();
  const int v = stage->info().n_vocab;
  const std::vector<std::vector<int32_t>> prompts = {{1, 403, 407, 261, 378},
                                                     {1, 317},
                                                     {1, 317, 394, 261, 370, 352, 266, 268, 388},
                                                     {1, 266, 268, 388, 403, 407},
                                                     {1, 370}};
  constexpr int kSteps = 8;
  // Logits of each step: the prompt's last token, then one decoded token each.
  auto run = [&](const std::vector<size_t>& which, SeqId first_seq) {
    std::vector<std::vector<float>> logits(prompts.size());
    ForwardRequest r;
    for (size_t i : which) {
      for (size_t p = 0; p < prompts[i].size(); ++p) {
        r.seq_ids.push_back(first_seq + i);
        r.positions.push_back(static_cast<int32_t>(p));
        r.tokens.push_back(prompts[i][p]);
      }
    }
    for (int s = 0; s < kSteps; ++s) {
      ForwardResult res;
      EXPECT_TRUE(stage->Forward(r, &res).ok());
      EXPECT_EQ(res.logit_rows.size(), which.size());
      if (res.logit_rows.size() != which.size()) return logits;
      r = ForwardRequest{};
      for (size_t k = 0; k < which.size(); ++k) {
        const size_t i = which[k];
        const float* row = &res.logits[k * v];
        logits[i].insert(logits[i].end(), row, row + v);
        r.seq_ids.push_back(first_seq + i);
        r.positions.push_back(static_cast<int32_t>(prompts[i].size() + s));
        r.tokens.push_back(Argmax(row, v));
      }
    }
    return logits;
  };
  std::vector<size_t> all;
  for (size_t i = 0; i < prompts.size(); ++i) all.push_back(i);
  const std::vector<std::vector<float>> together = run(all, 100);
  for (size_t i = 0; i < prompts.size(); ++i) {
    const std::vector<float> alone = run({i}, 10 * (i + 1))[i];
    ASSERT_EQ(alone.size(), together[i].size()) << "sequence " << i;
    EXPECT_EQ(std::memcmp(alone.data(), together[i].data(), alone.size() * sizeof(float)), 0)
        << "sequence " << i << ": max diff " << MaxAbsDiff(alone.data(), together[i].data(), alone.size());
  }
}

INSTANTIATE_TEST_SUITE_P(
    Types, BatchedTest,
    ::testing::Combine(::testing::Values("models/nano-q4_0.gguf", "models/nano-q4_k_m.gguf",
                                         "models/nano-q8_0.gguf", "models/nano-q6_k.gguf",
                                         "models/nano-f32.gguf"),
                       ::testing::Bool()),
    [](const ::testing::TestParamInfo<BatchedTest::ParamType>& info) {
      std::string name = std::get<0>(info.param);
      name = name.substr(name.find('/') + 1);
      name = name.substr(0, name.find('.'));
      for (char& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
      return name + (std::get<1>(info.param) ? "_interleaved" : "_mapped");
    });

// Interleaved weights (q4_0, q4_K) give exactly the logits of the plain
// mapped ones, for a prompt batch (gemm order) and single decode tokens.
TEST(ForwardTest, InterleavedWeightsGiveIdenticalLogits) {
  for (const char* model : {"models/nano-q4_0.gguf", "models/nano-q4_k_m.gguf"}) {
    SCOPED_TRACE(model);
    std::vector<float> logits[2];
    for (bool interleave : {false, true}) {
      StageOptions o;
      o.kv_type = KvType::kF32;
      o.interleave_weights = interleave;
      auto stage = LlamaStage::Open(TestDataPath(model), o);
      ASSERT_TRUE(stage.ok()) << stage.status();
      logits[interleave] = ChunkedLogits(stage->get(), 1, {1, 403, 407, 261, 378, 317, 394, 261}, 5);
    }
    ASSERT_EQ(logits[0].size(), logits[1].size());
    EXPECT_EQ(std::memcmp(logits[0].data(), logits[1].data(), logits[0].size() * sizeof(float)), 0);
  }
}

// A pipeline of in-process stages equals the whole model: the hidden state
// handed from stage to stage is all a later stage needs.
TEST(ForwardTest, SplitStagesEqualWholeModel) {
  auto whole = OpenStage(Stories(), KvType::kF32);
  auto a = OpenStage(Stories(), KvType::kF32, 0, 1);
  auto b = OpenStage(Stories(), KvType::kF32, 1, 5);
  ASSERT_TRUE(whole && a && b);
  const std::vector<int32_t> tokens = {1, 403, 407, 261, 378, 432};
  const std::vector<float> expected = BatchLogits(whole.get(), 1, tokens);
  ForwardRequest r;
  for (size_t i = 0; i < tokens.size(); ++i) {
    r.seq_ids.push_back(1);
    r.positions.push_back(static_cast<int32_t>(i));
    r.tokens.push_back(tokens[i]);
    r.want_logits.push_back(1);
  }
  ForwardResult mid, out;
  ASSERT_TRUE(a->Forward(r, &mid).ok());
  r.tokens.clear();
  r.hidden = mid.hidden;
  ASSERT_TRUE(b->Forward(r, &out).ok());
  ASSERT_EQ(out.logits.size(), expected.size());
  EXPECT_EQ(MaxAbsDiff(out.logits.data(), expected.data(), static_cast<int>(expected.size())), 0.0f);
}

TEST(ForwardTest, MalformedBatchesAreRejectedWithoutHarm) {
  auto stage = OpenStage(Stories(), KvType::kF32);
  ASSERT_NE(stage, nullptr);
  ForwardResult res;
  ForwardRequest ok{{1, 1}, {0, 1}, {1, 403}, {}, {}};
  ASSERT_TRUE(stage->Forward(ok, &res).ok());
  const KvStats before = stage->kv_stats();
  const std::vector<ForwardRequest> bad = {
      {{}, {}, {}, {}, {}},                   // empty
      {{1}, {5}, {403}, {}, {}},              // gap after 2 cached positions
      {{2}, {0}, {512}, {}, {}},              // token outside the vocabulary
      {{2, 2}, {0, 2}, {1, 2}, {}, {}},       // positions not consecutive
      {{2, 3, 2}, {0, 0, 1}, {1, 1, 1}, {}, {}},  // sequence split in two runs
      {{2}, {0}, {}, {}, {}},                 // no token ids on the first stage
      {{2}, {-1}, {1}, {}, {}},               // negative position
  };
  for (size_t i = 0; i < bad.size(); ++i) {
    absl::Status st = stage->Forward(bad[i], &res);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << "case " << i << ": " << st;
  }
  const KvStats after = stage->kv_stats();
  EXPECT_EQ(after.tokens, before.tokens);
  EXPECT_EQ(after.sequences, before.sequences);
}

TEST(ForwardTest, KvBudgetIsEnforcedAndReleased) {
  StageOptions o;
  o.kv_type = KvType::kF32;
  // One sequence grows to 64 positions first: 2 (K,V) x 5 layers x 64 x 32 x 4 bytes = 81920.
  o.kv_budget_bytes = 100000;  // room for one sequence, not two
  auto stage = LlamaStage::Open(Stories(), o);
  ASSERT_TRUE(stage.ok()) << stage.status();
  ForwardResult res;
  ASSERT_TRUE((*stage)->Forward({{1}, {0}, {1}, {}, {}}, &res).ok());
  absl::Status st = (*stage)->Forward({{2}, {0}, {1}, {}, {}}, &res);
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << st;
  ASSERT_TRUE((*stage)->Release(1).ok());
  EXPECT_EQ((*stage)->kv_stats().bytes_used, 0);
  EXPECT_TRUE((*stage)->Forward({{2}, {0}, {1}, {}, {}}, &res).ok());
}

}  // namespace
}  // namespace shardlm::testing
