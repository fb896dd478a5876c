// The scheduler end to end in one process: stories260K's greedy story equal
// to llama2.c's expected text, the Llama 3 / Qwen family models' greedy
// continuations from text equal to llama.cpp's, concurrent requests equal to
// lone ones, cancellation, queue limits and validation.
#include "coordinator/engine.h"

#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/model/gguf.h"
#include "common/tokenizer/tokenizer.h"
#include "tests/engine_collector.h"
#include "tests/golden.h"
#include "tests/test_data.h"

namespace shardlm::testing {
namespace {

GenerationRequest Req(std::vector<int32_t> prompt, SamplingParams params) {
  GenerationRequest r;
  r.prompt = std::move(prompt);
  r.params = std::move(params);
  return r;
}

class EngineTest : public InProcessPipelineTest {
 protected:
  void Open(const std::string& model, const std::vector<std::pair<int, int>>& split,
            EngineOptions eo = {}) {
    OpenPipeline(model, split);
    if (HasFatalFailure()) return;
    engine_ = std::make_unique<Engine>(pipeline_.get(), tokenizer_.get(), eo);
  }
  std::shared_ptr<Collector> Run(const std::vector<int32_t>& prompt, SamplingParams params) {
    auto c = std::make_shared<Collector>();
    auto id = engine_->Submit(Req(prompt, params), c);
    EXPECT_TRUE(id.ok()) << id.status();
    return c;
  }
  std::unique_ptr<Engine> engine_;
};

TEST(EngineOptionsTest, OutOfRangeOptionsNameTheFlag) {
  EXPECT_TRUE(ValidateEngineOptions(EngineOptions{}).ok());
  EngineOptions o;
  o.micro_batches = 4;
  EXPECT_TRUE(ValidateEngineOptions(o).ok());
  o.micro_batches = -1;
  absl::Status st = ValidateEngineOptions(o);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("--micro-batches is -1"), std::string::npos) << st;
  o = EngineOptions{};
  o.max_active = 0;
  EXPECT_NE(ValidateEngineOptions(o).message().find("--max-active"), std::string::npos);
  o = EngineOptions{};
  o.prefill_chunk = 0;
  EXPECT_NE(ValidateEngineOptions(o).message().find("--prefill-chunk"), std::string::npos);
  o = EngineOptions{};
  o.prefix_cache_tokens = -1;
  EXPECT_NE(ValidateEngineOptions(o).message().find("--prefix-cache-tokens is -1"),
            std::string::npos);
}

TEST_F(EngineTest, StoriesGreedy200TokensIsLlama2cExpectedText) {
  Open(TestDataPath("models/stories260K.gguf"), {{0, 5}});
  SamplingParams p = SamplingParams::Greedy();
  p.max_tokens = 200;
  auto c = Run({1}, p);
  c->Wait();
  EXPECT_EQ(c->reason_, FinishReason::kLength);
  EXPECT_EQ(c->ids_.size(), 200u);
  EXPECT_EQ(c->text_, ReadFileOrDie(TestDataPath("models/stories260K.expected_greedy.txt")));
  ExpectKvFreedEventually();  // released at the end
}

// The Llama 3 / Qwen2 / Qwen3 test models through a 3-stage pipeline with
// their byte-level BPE tokenizers: every golden/families prompt tokenizes to
// llama.cpp's ids and greedy decoding gives llama.cpp's 32 tokens (f32 KV
// cache, like the goldens; a prompt is one batch, as in llama.cpp).
TEST_F(EngineTest, FamilyModelsGreedyEqualsLlamaCppFromText) {
  const std::string family_prefix = "families/";
  std::string open_model;
  for (const std::string& name : GoldenNames()) {
    if (!name.starts_with(family_prefix)) continue;
    SCOPED_TRACE(name);
    const auto json =
        nlohmann::json::parse(ReadFileOrDie(TestDataPath("golden/" + name + ".json")));
    const Golden g = LoadGolden(name);
    if (g.model_path != open_model) {
      engine_.reset();
      Open(g.model_path, {{0, 1}, {1, 3}, {3, 4}});
      open_model = g.model_path;
    }
    const bool parse_special = json.value("parse_special", false);
    const std::vector<int32_t> prompt = tokenizer_->Encode(g.prompt, true, parse_special);
    ASSERT_EQ(prompt, g.prompt_tokens);
    SamplingParams p = SamplingParams::Greedy();
    p.max_tokens = static_cast<int>(g.greedy_tokens.size());
    p.ignore_eos = true;
    auto c = Run(prompt, p);
    c->Wait();
    EXPECT_EQ(c->ids_, g.greedy_tokens);
  }
  ExpectKvFreedEventually();
}

TEST_F(EngineTest, ConcurrentRequestsEqualLoneOnesThroughAPipeline) {
  EngineOptions eo;
  eo.prefill_chunk = 3;  // prompts arrive in chunks beside running decodes
  // q4_0: its sums do not depend on how a prompt is chunked (q4_K groups tokens).
  Open(TestDataPath("models/nano-q4_0.gguf"), {{0, 1}, {1, 4}}, eo);
  const std::vector<std::string> prompts = {"Once upon a time", "Lily saw a big red ball",
                                            "The little bird sat on the tree and sang", "Hi"};
  SamplingParams p = SamplingParams::Greedy();
  p.max_tokens = 24;
  p.ignore_eos = true;
  std::vector<std::vector<int32_t>> alone;
  for (const auto& text : prompts) {
    auto c = Run(tokenizer_->Encode(text, true, false), p);
    c->Wait();
    alone.push_back(c->ids_);
  }
  std::vector<std::shared_ptr<Collector>> together;
  for (const auto& text : prompts)
    together.push_back(Run(tokenizer_->Encode(text, true, false), p));
  for (size_t i = 0; i < prompts.size(); ++i) {
    together[i]->Wait();
    EXPECT_EQ(together[i]->ids_, alone[i]) << prompts[i];
  }
  ExpectKvFreedEventually();
}

TEST_F(EngineTest, CancelEndsTheStreamAndFreesKv) {
  Open(TestDataPath("models/stories260K.gguf"), {{0, 2}, {2, 5}});
  SamplingParams p = SamplingParams::Greedy();
  p.max_tokens = 1000;
  p.ignore_eos = true;
  auto c = std::make_shared<Collector>();
  auto id = engine_->Submit(Req({1}, p), c);
  ASSERT_TRUE(id.ok());
  c->WaitForTokens(5);
  engine_->Cancel(*id);
  c->Wait();
  EXPECT_EQ(c->reason_, FinishReason::kCancelled);
  EXPECT_LT(c->ids_.size(), 1000u);
  ExpectKvFreedEventually();
}

TEST_F(EngineTest, StopStringEndsGenerationWithoutEmittingIt) {
  Open(TestDataPath("models/stories260K.gguf"), {{0, 5}});
  SamplingParams p = SamplingParams::Greedy();
  p.max_tokens = 200;
  p.stop = {"Lily"};
  auto c = Run({1}, p);
  c->Wait();
  EXPECT_EQ(c->reason_, FinishReason::kStop);
  EXPECT_EQ(c->text_, "Once upon a time, there was a little girl named ");
}

TEST_F(EngineTest, InvalidRequestsAndFullQueueAreRefused) {
  EngineOptions eo;
  eo.max_active = 1;
  eo.max_queued = 1;
  Open(TestDataPath("models/stories260K.gguf"), {{0, 5}}, eo);
  auto c = std::make_shared<Collector>();
  SamplingParams p = SamplingParams::Greedy();
  EXPECT_EQ(engine_->Submit(Req({}, p), c).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(engine_->Submit(Req({1, 9999}, p), c).status().code(),
            absl::StatusCode::kInvalidArgument);
  SamplingParams bad = p;
  bad.top_p = 2;
  EXPECT_EQ(engine_->Submit(Req({1}, bad), c).status().code(), absl::StatusCode::kInvalidArgument);
  // Fill the running slot and the queue, then one more is refused.
  p.max_tokens = 100000;
  p.ignore_eos = true;
  std::vector<std::shared_ptr<Collector>> held;
  std::vector<uint64_t> ids;
  absl::Status last;
  for (int i = 0; i < 4 && last.ok(); ++i) {
    held.push_back(std::make_shared<Collector>());
    auto id = engine_->Submit(Req({1}, p), held.back());
    last = id.status();
    if (id.ok()) ids.push_back(*id);
  }
  EXPECT_EQ(last.code(), absl::StatusCode::kResourceExhausted) << last;
  for (uint64_t id : ids) engine_->Cancel(id);
  for (size_t i = 0; i < ids.size(); ++i) held[i]->Wait();
}

TEST_F(EngineTest, DeadlineEndsTheRequest) {
  Open(TestDataPath("models/stories260K.gguf"), {{0, 5}});
  SamplingParams p = SamplingParams::Greedy();
  p.max_tokens = 100000;
  p.ignore_eos = true;
  auto c = std::make_shared<Collector>();
  GenerationRequest r;
  r.prompt = {1};
  r.params = p;
  r.deadline = absl::Now() + absl::Milliseconds(200);
  ASSERT_TRUE(engine_->Submit(std::move(r), c).ok());
  c->Wait();
  EXPECT_EQ(c->reason_, FinishReason::kDeadline);
  ExpectKvFreedEventually();
}

}  // namespace
}  // namespace shardlm::testing
