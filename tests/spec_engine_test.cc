// Speculative decoding (--spec-ngram) through the engine, stories260K over a
// 2-stage in-process pipeline: greedy tokens identical to plain decoding
// (and to llama2.c's expected story), seeded sampling reproducible whatever
// else is in the batch, stop strings inside accepted drafts, cancellation,
// the per-request opt-out and the metrics.
#include <gtest/gtest.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/model/gguf.h"
#include "common/tokenizer/tokenizer.h"
#include "coordinator/coordinator_flags.h"
#include "coordinator/engine.h"
#include "coordinator/gateway_metrics.h"
#include "tests/engine_collector.h"
#include "tests/test_data.h"
#include "worker/llama_stage.h"

namespace shardlm::testing {
namespace {

class SpecEngineTest : public InProcessPipelineTest {
 protected:
  void SetUp() override { OpenPipeline(TestDataPath("models/stories260K.gguf"), {{0, 2}, {2, 5}}); }
  // An engine over the same pipeline (sequence ids never collide).
  std::unique_ptr<Engine> MakeEngine(int spec_ngram, int max_batch_tokens = 256) {
    EngineOptions eo;
    eo.spec_ngram = spec_ngram;
    eo.max_batch_tokens = max_batch_tokens;
    return std::make_unique<Engine>(pipeline_.get(), tokenizer_.get(), eo);
  }
  // Draft-model speculation with `draft` (a whole-model in-process stage).
  std::unique_ptr<Engine> MakeDraftEngine(const std::string& draft, int k,
                                          int max_batch_tokens = 256) {
    StageOptions so;
    so.n_threads = 1;
    so.kv_type = KvType::kF32;
    auto stage = LlamaStage::Open(draft, so);
    EXPECT_TRUE(stage.ok()) << stage.status();
    if (!stage.ok()) return nullptr;
    draft_stage_ = std::move(*stage);
    auto model = DraftModel::Create(draft_stage_);
    EXPECT_TRUE(model.ok()) << model.status();
    EngineOptions eo;
    eo.draft_model = std::move(*model);
    eo.spec_draft = k;
    eo.max_batch_tokens = max_batch_tokens;
    EXPECT_TRUE(ValidateEngineOptions(eo).ok());
    return std::make_unique<Engine>(pipeline_.get(), tokenizer_.get(), eo);
  }
  std::shared_ptr<Stage> draft_stage_;
  static std::shared_ptr<Collector> Submit(Engine& engine, std::vector<int32_t> prompt,
                                           const SamplingParams& params) {
    auto c = std::make_shared<Collector>();
    GenerationRequest r;
    r.prompt = std::move(prompt);
    r.params = params;
    auto id = engine.Submit(std::move(r), c);
    EXPECT_TRUE(id.ok()) << id.status();
    return c;
  }
  static std::shared_ptr<Collector> Run(Engine& engine, std::vector<int32_t> prompt,
                                        const SamplingParams& params) {
    auto c = Submit(engine, std::move(prompt), params);
    c->Wait();
    return c;
  }
  std::vector<int32_t> Prompt(const std::string& text) {
    return tokenizer_->Encode(text, true, false);
  }

};

TEST(SpecEngineOptionsTest, OutOfRangeSpecNgramNamesTheFlag) {
  EngineOptions o;
  o.spec_ngram = 4;
  EXPECT_TRUE(ValidateEngineOptions(o).ok());
  o.spec_ngram = -1;
  EXPECT_NE(ValidateEngineOptions(o).message().find("--spec-ngram is -1"), std::string::npos);
  o.spec_ngram = 1000;
  EXPECT_NE(ValidateEngineOptions(o).message().find("--spec-ngram is 1000"), std::string::npos);
}

TEST(SpecFlagsTest, SpeculationFlagsAreValidatedNamingTheFlag) {
  CoordinatorOptions o;
  CoordinatorFlags f;
  f.insecure = true;  // no TLS files in this test
  f.options.engine.spec_ngram = 4;
  ASSERT_TRUE(ApplyCoordinatorFlags(WorkerPlacement::kRemote, f, &o).ok());
  EXPECT_EQ(o.engine.spec_ngram, 4);
  CoordinatorFlags draft;
  draft.insecure = true;
  draft.draft_model = "small.gguf";
  ASSERT_TRUE(ApplyCoordinatorFlags(WorkerPlacement::kLoopback, draft, &o).ok());
  EXPECT_EQ(o.draft_model_path, "small.gguf");
  // shardlm-coordinator has no layer compute to run a draft with.
  absl::Status st = ApplyCoordinatorFlags(WorkerPlacement::kRemote, draft, &o);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("shardlm serve --draft-model"), std::string::npos) << st;
  CoordinatorFlags both = draft;
  both.options.engine.spec_ngram = 4;
  st = ApplyCoordinatorFlags(WorkerPlacement::kLoopback, both, &o);
  EXPECT_NE(st.message().find("--spec-ngram and --draft-model"), std::string::npos) << st;
  CoordinatorFlags bad_k = draft;
  bad_k.options.engine.spec_draft = 0;
  st = ApplyCoordinatorFlags(WorkerPlacement::kLoopback, bad_k, &o);
  EXPECT_NE(st.message().find("--spec-draft is 0"), std::string::npos) << st;
  CoordinatorFlags bad_threads = draft;
  bad_threads.draft_threads = 0;
  st = ApplyCoordinatorFlags(WorkerPlacement::kLoopback, bad_threads, &o);
  EXPECT_NE(st.message().find("--draft-threads is 0"), std::string::npos) << st;
}

TEST_F(SpecEngineTest, Greedy200TokensFromBosIdenticalToPlainAndToLlama2c) {
  SamplingParams p = SamplingParams::Greedy();
  p.max_tokens = 200;
  auto plain_engine = MakeEngine(0);
  auto plain = Run(*plain_engine, {1}, p);
  plain_engine.reset();
  auto spec_engine = MakeEngine(4);
  auto spec = Run(*spec_engine, {1}, p);
  EXPECT_EQ(spec->reason_, FinishReason::kLength);
  ASSERT_EQ(spec->ids_.size(), 200u);
  EXPECT_EQ(spec->ids_, plain->ids_);
  EXPECT_EQ(spec->text_, ReadFileOrDie(TestDataPath("models/stories260K.expected_greedy.txt")));
  // It did speculate, and it paid off: fewer passes than tokens.
  const EngineMetrics& m = spec_engine->metrics();
  EXPECT_GT(m.spec_passes.value(), 0);
  EXPECT_GT(m.spec_accepted_tokens.value(), 0);
  EXPECT_LE(m.spec_accepted_tokens.value(), m.spec_draft_tokens.value());
  const auto counts = m.tokens_per_pass.Cumulative();
  EXPECT_EQ(m.tokens_per_pass.sum(), 200);  // every token emitted counted once
  EXPECT_LT(counts.back(), 200u);           // in fewer passes
  MetricsPage page;
  spec_engine->RenderMetrics(&page);
  for (const char* name : {"shardlm_spec_draft_tokens_total", "shardlm_spec_accepted_tokens_total",
                           "shardlm_spec_passes_total", "shardlm_tokens_per_pass_bucket"}) {
    EXPECT_NE(page.text().find(name), std::string::npos) << name;
  }
  // vLLM's names of the counters, with their values.
  const std::string all = RenderCoordinatorMetrics(*spec_engine, *pipeline_, "stories260K");
  const std::string model = "{model_name=\"stories260K\"} ";
  EXPECT_NE(all.find("vllm:spec_decode_num_draft_tokens_total" + model +
                     absl::StrCat(m.spec_draft_tokens.value())),
            std::string::npos);
  EXPECT_NE(all.find("vllm:spec_decode_num_accepted_tokens_total" + model +
                     absl::StrCat(m.spec_accepted_tokens.value())),
            std::string::npos);
  ExpectKvFreedEventually();
}

TEST_F(SpecEngineTest, GreedyFromPromptsWithPenaltiesIdenticalToPlain) {
  const std::vector<std::string> prompts = {"Once upon a time", "Lily saw a big red ball",
                                            "The little bird"};
  SamplingParams p = SamplingParams::Greedy();
  p.max_tokens = 120;
  p.ignore_eos = true;
  SamplingParams penalized = p;  // the penalties see each verified position's own history
  penalized.repetition_penalty = 1.2f;
  penalized.frequency_penalty = 0.3f;
  penalized.penalty_window = 16;
  auto plain_engine = MakeEngine(0);
  auto spec_engine = MakeEngine(4);
  for (const SamplingParams& params : {p, penalized}) {
    for (const auto& text : prompts) {
      SCOPED_TRACE(text);
      auto a = Run(*plain_engine, Prompt(text), params);
      auto b = Run(*spec_engine, Prompt(text), params);
      EXPECT_EQ(a->ids_, b->ids_);
      EXPECT_EQ(a->text_, b->text_);
    }
  }
  EXPECT_GT(spec_engine->metrics().spec_accepted_tokens.value(), 0);
}

TEST_F(SpecEngineTest, ConcurrentRequestsWithATightTokenBudgetIdenticalToLoneOnes) {
  // 3 tokens per step for 4 sequences: drafts are cut or dropped, prompts
  // still advance (prompt chunks come before drafts).
  const std::vector<std::string> prompts = {"Once upon a time", "Tom and his dog", "A cat sat",
                                            "The sun was hot and the"};
  SamplingParams p = SamplingParams::Greedy();
  p.max_tokens = 64;
  p.ignore_eos = true;
  auto plain_engine = MakeEngine(0);
  std::vector<std::vector<int32_t>> alone;
  for (const auto& text : prompts) alone.push_back(Run(*plain_engine, Prompt(text), p)->ids_);
  plain_engine.reset();
  auto spec_engine = MakeEngine(4, /*max_batch_tokens=*/3);
  std::vector<std::shared_ptr<Collector>> together;
  for (const auto& text : prompts) together.push_back(Submit(*spec_engine, Prompt(text), p));
  for (size_t i = 0; i < prompts.size(); ++i) {
    together[i]->Wait();
    EXPECT_EQ(together[i]->ids_, alone[i]) << prompts[i];
  }
  ExpectKvFreedEventually();
}

TEST_F(SpecEngineTest, SeededSamplingIsReproducibleWhateverElseIsInTheBatch) {
  SamplingParams p;
  p.temperature = 0.9f;
  p.seed = 1234;
  p.max_tokens = 120;
  p.ignore_eos = true;
  auto roomy = MakeEngine(4);
  auto a = Run(*roomy, {1}, p);
  auto b = Run(*roomy, {1}, p);
  EXPECT_EQ(a->ids_, b->ids_);
  ASSERT_EQ(a->ids_.size(), 120u);
  // Another seed gives another story (the draws do depend on it).
  SamplingParams other = p;
  other.seed = 99;
  EXPECT_NE(Run(*roomy, {1}, other)->ids_, a->ids_);
  // Beside other requests, in an engine whose 4-token budget cuts drafts
  // differently every step: the same tokens.
  auto tight = MakeEngine(4, /*max_batch_tokens=*/4);
  SamplingParams busy = p;
  busy.seed = 5;
  std::vector<std::shared_ptr<Collector>> others;
  for (const char* text : {"Lily saw", "The little bird"}) {
    others.push_back(Submit(*tight, Prompt(text), busy));
  }
  auto c = Run(*tight, {1}, p);
  EXPECT_EQ(c->ids_, a->ids_);
  for (auto& o : others) o->Wait();
  EXPECT_GT(roomy->metrics().spec_accepted_tokens.value(), 0);
  ExpectKvFreedEventually();
}

TEST_F(SpecEngineTest, StopStringInsideAnAcceptedDraftStopsExactlyThere) {
  SamplingParams p = SamplingParams::Greedy();
  p.max_tokens = 200;
  auto plain_engine = MakeEngine(0);
  const std::string story = Run(*plain_engine, {1}, p)->text_;
  ASSERT_GT(story.size(), 400u);
  auto spec_engine = MakeEngine(4);
  // Stop strings at several points of the story: with most tokens coming
  // from accepted drafts, some of them end inside one.
  for (size_t at : {60, 150, 230, 310, 390}) {
    SamplingParams with_stop = p;
    with_stop.stop = {story.substr(at, 7)};
    const std::string want = story.substr(0, story.find(with_stop.stop[0]));
    SCOPED_TRACE(with_stop.stop[0]);
    auto a = Run(*plain_engine, {1}, with_stop);
    auto b = Run(*spec_engine, {1}, with_stop);
    EXPECT_EQ(a->reason_, FinishReason::kStop);
    EXPECT_EQ(b->reason_, FinishReason::kStop);
    EXPECT_EQ(b->text_, want);
    // The same tokens: none past the one completing the stop string.
    EXPECT_EQ(b->ids_, a->ids_);
  }
  EXPECT_GT(spec_engine->metrics().spec_accepted_tokens.value(), 0);
  ExpectKvFreedEventually();
}

TEST_F(SpecEngineTest, DraftsOverAFullKvBudgetAreDroppedNotTheRequest) {
  // One 64-position KV block per stage (stories260K's f32 KV: 16 KiB per
  // layer and block; 2 and 3 layers here). Plain decoding fits a request
  // that stops before position 64; drafts reaching past it do not.
  OpenPipeline(TestDataPath("models/stories260K.gguf"), {{0, 2}, {2, 5}}, 48 << 10);
  if (HasFatalFailure()) return;
  SamplingParams p = SamplingParams::Greedy();
  p.max_tokens = 63;
  auto plain_engine = MakeEngine(0);
  const auto first63 = Run(*plain_engine, {1}, p);
  ASSERT_EQ(first63->reason_, FinishReason::kLength) << first63->error_;
  const std::string& story = first63->text_;
  auto spec_engine = MakeEngine(8);
  // Stop strings found first in the text of tokens ~45-63: the drafts
  // proposed near the end cross the block's end.
  p.max_tokens = 200;
  int stops = 0;
  for (size_t at = story.size() - 8; at > story.size() * 2 / 3 && stops < 6; at -= 3) {
    SamplingParams with_stop = p;
    with_stop.stop = {story.substr(at, 6)};
    if (story.find(with_stop.stop[0]) != at) continue;
    SCOPED_TRACE(with_stop.stop[0]);
    ++stops;
    auto a = Run(*plain_engine, {1}, with_stop);
    auto b = Run(*spec_engine, {1}, with_stop);
    ASSERT_EQ(a->reason_, FinishReason::kStop) << a->error_;
    EXPECT_EQ(b->reason_, FinishReason::kStop) << b->error_;
    EXPECT_EQ(b->ids_, a->ids_);
    EXPECT_EQ(b->text_, a->text_);
  }
  EXPECT_GE(stops, 3);
  EXPECT_GT(spec_engine->metrics().spec_retries_without_drafts.value(), 0);
  EXPECT_GT(spec_engine->metrics().spec_accepted_tokens.value(), 0);
  ExpectKvFreedEventually();
}

TEST_F(SpecEngineTest, MaxTokensEndsInsideADraftWithExactlyMaxTokens) {
  auto spec_engine = MakeEngine(8);
  for (int n : {1, 2, 7, 33}) {
    SamplingParams p = SamplingParams::Greedy();
    p.max_tokens = n;
    p.ignore_eos = true;
    auto c = Run(*spec_engine, {1}, p);
    EXPECT_EQ(c->reason_, FinishReason::kLength);
    EXPECT_EQ(static_cast<int>(c->ids_.size()), n);
  }
}

TEST_F(SpecEngineTest, CancelMidDraftEndsTheStreamAndFreesKv) {
  auto spec_engine = MakeEngine(4);
  SamplingParams p = SamplingParams::Greedy();
  p.max_tokens = 400;
  p.ignore_eos = true;
  auto c = std::make_shared<Collector>();
  c->hold_after_ = 30;  // the engine waits at token 30 until Cancel is in
  GenerationRequest r;
  r.prompt = {1};
  r.params = p;
  auto id = spec_engine->Submit(std::move(r), c);
  ASSERT_TRUE(id.ok());
  c->WaitForTokens(30);
  spec_engine->Cancel(*id);
  c->ReleaseHold();
  c->Wait();
  EXPECT_EQ(c->reason_, FinishReason::kCancelled);
  EXPECT_LT(c->ids_.size(), 400u);
  ExpectKvFreedEventually();
}

TEST_F(SpecEngineTest, RequestsCanTurnSpeculationOff) {
  auto spec_engine = MakeEngine(4);
  SamplingParams p = SamplingParams::Greedy();
  p.max_tokens = 100;
  p.speculation = false;
  auto c = Run(*spec_engine, {1}, p);
  EXPECT_EQ(c->ids_.size(), 100u);
  const EngineMetrics& m = spec_engine->metrics();
  EXPECT_EQ(m.spec_draft_tokens.value(), 0);
  EXPECT_EQ(m.spec_passes.value(), 0);
  EXPECT_EQ(m.tokens_per_pass.Cumulative().back(), 100u);  // one pass per token
  p.speculation = true;
  Run(*spec_engine, {1}, p);
  EXPECT_GT(m.spec_draft_tokens.value(), 0);
}

TEST_F(SpecEngineTest, SelfDraftModelIsAcceptedWholeAndGreedyIdenticalToPlain) {
  // The served model as its own draft: every draft token must be accepted
  // (the mechanics, not a sensible deployment).
  SamplingParams p = SamplingParams::Greedy();
  p.max_tokens = 200;
  auto engine = MakeDraftEngine(TestDataPath("models/stories260K.gguf"), 4);
  ASSERT_NE(engine, nullptr);
  auto c = Run(*engine, {1}, p);
  ASSERT_EQ(c->ids_.size(), 200u);
  EXPECT_EQ(c->text_, ReadFileOrDie(TestDataPath("models/stories260K.expected_greedy.txt")));
  const EngineMetrics& m = engine->metrics();
  EXPECT_GT(m.spec_draft_tokens.value(), 150);
  EXPECT_EQ(m.spec_accepted_tokens.value(), m.spec_draft_tokens.value());
  EXPECT_GE(m.tokens_per_pass.sum() / m.tokens_per_pass.Cumulative().back(), 4.5);  // ~5 per pass
  // Prompts, concurrently, with a budget that cuts drafts: still identical.
  auto plain = MakeEngine(0);
  SamplingParams q = SamplingParams::Greedy();
  q.max_tokens = 80;
  q.ignore_eos = true;
  auto tight = MakeDraftEngine(TestDataPath("models/stories260K.gguf"), 6, /*max_batch_tokens=*/5);
  ASSERT_NE(tight, nullptr);
  std::vector<std::shared_ptr<Collector>> together;
  const std::vector<std::string> prompts = {"Once upon a time", "Tom and his dog", "A cat sat"};
  for (const auto& text : prompts) together.push_back(Submit(*tight, Prompt(text), q));
  for (size_t i = 0; i < prompts.size(); ++i) {
    together[i]->Wait();
    EXPECT_EQ(together[i]->ids_, Run(*plain, Prompt(prompts[i]), q)->ids_) << prompts[i];
  }
  engine.reset();
  tight.reset();
  ExpectKvFreedEventually();
  EXPECT_EQ(draft_stage_->kv_stats().sequences, 0);  // the draft's KV is released too
}

TEST_F(SpecEngineTest, DraftModelSeededSamplingIsReproducible) {
  auto engine = MakeDraftEngine(TestDataPath("models/stories260K.gguf"), 4);
  ASSERT_NE(engine, nullptr);
  SamplingParams p;
  p.temperature = 0.9f;
  p.seed = 77;
  p.max_tokens = 100;
  p.ignore_eos = true;
  auto a = Run(*engine, {1}, p);
  auto b = Run(*engine, {1}, p);
  ASSERT_EQ(a->ids_.size(), 100u);
  EXPECT_EQ(a->ids_, b->ids_);
}

TEST(DraftVocabularyTest, ADraftOfAnotherVocabularyIsRefusedNamingBothFiles) {
  auto load = [](const std::string& name) {
    auto file = GgufFile::Open(TestDataPath("models/" + name));
    EXPECT_TRUE(file.ok()) << file.status();
    auto tok = Tokenizer::FromGguf(**file);
    EXPECT_TRUE(tok.ok()) << tok.status();
    return std::move(*tok);
  };
  auto stories = load("stories260K.gguf");
  auto nano_q8 = load("nano-q8_0.gguf");  // stories260K's vocabulary (nano-README.md)
  auto qwen = load("qwen2-nano-q4_0.gguf");
  EXPECT_TRUE(CheckSameVocabulary(*stories, "stories.gguf", *nano_q8, "q8.gguf").ok());
  absl::Status st = CheckSameVocabulary(*qwen, "qwen.gguf", *stories, "stories.gguf");
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("--draft-model qwen.gguf"), std::string::npos) << st;
  EXPECT_NE(st.message().find("--model stories.gguf"), std::string::npos) << st;
  EXPECT_NE(st.message().find("151936 vs 512"), std::string::npos) << st;
}

}  // namespace
}  // namespace shardlm::testing
