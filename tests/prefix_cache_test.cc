// Prefix reuse across requests. Unit: the exact fork length rule and the
// coordinator's PrefixCache (longest match per route, pins, LRU eviction,
// redundant entries). With models (label data): through the engine, a
// prompt that extends (or shortens, or repeats) an earlier one reuses its
// KV and gives the very tokens a server without the cache gives, on
// stories260K (f32 weights) and the nano Q4_0 / Q8_0 models, f16 and f32 KV,
// through a 2-stage pipeline; a KV budget too small for the cache evicts
// entries instead of refusing requests; the metrics count it.
#include "coordinator/prefix_cache.h"

#include <gtest/gtest.h>

#include <cctype>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "common/model/gguf.h"
#include "common/tokenizer/tokenizer.h"
#include "coordinator/chat_template.h"
#include "coordinator/engine.h"
#include "coordinator/gateway_metrics.h"
#include "coordinator/token_stream.h"
#include "tests/stream_wait.h"
#include "tests/test_data.h"
#include "worker/llama_stage.h"

namespace shardlm::testing {
namespace {

TEST(ExactForkLengthTest, FollowsTheFreshPrefillsKernels) {
  // Chunks of 128: full chunks are all gemm; the last chunk's n % 4 tail is not.
  EXPECT_EQ(FreshGemmPrefix(600, 128), 600);
  EXPECT_EQ(FreshGemmPrefix(650, 128), 648);
  EXPECT_EQ(FreshGemmPrefix(3, 128), 0);
  EXPECT_EQ(FreshGemmPrefix(131, 128), 128);
  EXPECT_EQ(ExactForkLength(600, 650, 128), 600);
  EXPECT_EQ(ExactForkLength(603, 650, 128), 600) << "a multiple of 4";
  EXPECT_EQ(ExactForkLength(650, 650, 128), 648) << "the last token is computed";
  // 601 tokens: the fresh prefill runs [512, 601) as one chunk, so its last
  // token is batched; a fork at 600 would compute it alone.
  EXPECT_EQ(ExactForkLength(600, 601, 128), 596);
  // 513 tokens: the fresh prefill computes token 512 alone too.
  EXPECT_EQ(ExactForkLength(600, 513, 128), 512);
  EXPECT_EQ(ExactForkLength(10, 650, 3), 0) << "chunks of 3: never exact";
  EXPECT_EQ(ExactForkLength(0, 650, 128), 0);
}

TEST(PrefixCacheTest, LongestMatchOnTheSameRoute) {
  PrefixCache cache(1000);
  std::vector<SeqId> released;
  cache.Insert(1, {1, 2, 3, 4}, Route{0, 0}, &released);
  cache.Insert(2, {1, 2, 9}, Route{0, 0}, &released);
  cache.Insert(3, {1, 2, 3, 4, 5, 6}, Route{0, 1}, &released);
  EXPECT_TRUE(released.empty());
  PrefixCache::Match m = cache.Find(std::vector<int32_t>{1, 2, 3, 4, 5, 6, 7}, Route{0, 0});
  EXPECT_EQ(m.entry, 1u);
  EXPECT_EQ(m.common, 4);
  m = cache.Find(std::vector<int32_t>{1, 2, 3, 4, 5, 6, 7}, Route{0, 1});
  EXPECT_EQ(m.entry, 3u);
  EXPECT_EQ(m.common, 6);
  EXPECT_EQ(cache.Find(std::vector<int32_t>{7}, Route{0, 0}).common, 0);
  EXPECT_TRUE(cache.Covers(std::vector<int32_t>{1, 2}, Route{0, 0}));
  EXPECT_FALSE(cache.Covers(std::vector<int32_t>{1, 2, 3, 4, 5}, Route{0, 0}));
}

TEST(PrefixCacheTest, RedundantEntriesGoAndTheCapEvictsLeastRecentlyUsed) {
  PrefixCache cache(10);
  std::vector<SeqId> released;
  cache.Insert(1, {1, 2, 3}, {}, &released);
  cache.Insert(2, {1, 2, 3, 4, 5}, {}, &released);  // holds all of entry 1
  EXPECT_EQ(released, std::vector<SeqId>{1});
  cache.Insert(3, {1, 2}, {}, &released);  // covered by entry 2: itself released
  EXPECT_EQ(released, (std::vector<SeqId>{1, 3}));
  EXPECT_EQ(cache.entries(), 1);
  cache.Insert(4, {7, 7, 7}, {}, &released);
  (void)cache.Acquire(std::vector<int32_t>{1, 2, 3, 9}, {});  // entry 2 used last, pinned
  cache.Insert(5, {8, 8, 8, 8}, {}, &released);  // 12 tokens > 10: evict LRU (entry 4)
  EXPECT_EQ(released.back(), 4u);
  EXPECT_EQ(cache.tokens(), 9);
  // Pinned entries are never evicted.
  EXPECT_TRUE(cache.EvictOne(&released));  // entry 5
  EXPECT_EQ(released.back(), 5u);
  EXPECT_FALSE(cache.EvictOne(&released)) << "entry 2 is pinned";
  cache.Unpin(2);
  EXPECT_TRUE(cache.EvictOne(&released));
  EXPECT_EQ(cache.entries(), 0);
  EXPECT_EQ(cache.tokens(), 0);
}

TEST(PrefixCacheTest, DropRouteReleasesItsUnpinnedEntries) {
  PrefixCache cache(1000);
  std::vector<SeqId> released;
  cache.Insert(1, {1, 2, 3}, Route{0, 0}, &released);
  cache.Insert(2, {4, 5, 6}, Route{0, 0}, &released);
  cache.Insert(3, {1, 2, 3}, Route{1, 0}, &released);
  (void)cache.Acquire(std::vector<int32_t>{4, 5}, Route{0, 0});  // pins entry 2
  cache.DropRoute(Route{0, 0}, &released);
  EXPECT_EQ(released, std::vector<SeqId>{1});
  EXPECT_EQ(cache.entries(), 2);
  EXPECT_EQ(cache.Find(std::vector<int32_t>{1, 2, 3}, Route{1, 0}).entry, 3u);
}

// One in-process server: a 2-stage pipeline and its engine.
struct Server {
  std::unique_ptr<Pipeline> pipeline;
  std::unique_ptr<Engine> engine;

  Server(std::shared_ptr<const GgufFile> file, const Tokenizer* tokenizer, KvType kv_type,
         EngineOptions eo, int64_t kv_budget = 0) {
    const int n_layer = ModelConfig::FromGguf(*file)->n_layer;
    std::vector<std::shared_ptr<Stage>> stages;
    for (auto [a, b] : {std::pair{0, n_layer / 2}, std::pair{n_layer / 2, n_layer}}) {
      StageOptions so;
      so.first_layer = a;
      so.last_layer = b;
      so.kv_type = kv_type;
      so.kv_budget_bytes = kv_budget;
      auto st = LlamaStage::Create(file, so);
      EXPECT_TRUE(st.ok()) << st.status();
      stages.push_back(std::move(*st));
    }
    pipeline = std::move(*Pipeline::Create(std::move(stages)));
    engine = std::make_unique<Engine>(pipeline.get(), tokenizer, eo);
  }
  // The greedy token ids of `max_tokens` tokens (EOS ignored), waited for
  // up to 120 s.
  std::vector<int32_t> Generate(const std::vector<int32_t>& prompt, int max_tokens) {
    GenerationRequest r;
    r.prompt = prompt;
    r.params = SamplingParams::Greedy();
    r.params.max_tokens = max_tokens;
    r.params.ignore_eos = true;
    auto stream = std::make_shared<TokenStream>();
    auto id = engine->Submit(std::move(r), stream);
    std::vector<int32_t> ids;
    if (!id.ok()) {
      ADD_FAILURE() << id.status();
      return ids;
    }
    StreamEnd end;
    EXPECT_TRUE(WaitForEnd(*stream, absl::Seconds(120), &ids, &end)) << "no end within 120 s";
    EXPECT_EQ(end.reason, FinishReason::kLength) << end.error;
    return ids;
  }
  // A sample of the coordinator's /metrics page (engine, pipeline and the
  // gateway names, model_name="m"), by its name and labels; -1 if absent.
  double Metric(const std::string& name) const {
    const std::string text = RenderCoordinatorMetrics(*engine, *pipeline, "m");
    const size_t at = text.find("\n" + name + " ");
    if (at == std::string::npos) return -1;
    const size_t begin = at + name.size() + 2;
    double v = -1;
    EXPECT_TRUE(absl::SimpleAtod(text.substr(begin, text.find('\n', begin) - begin), &v));
    return v;
  }
  // Request sequences' blocks (not the cache's) on every stage, polled
  // until zero (releases are asynchronous) or 2 s.
  int64_t RequestBlocksHeld() const {
    int64_t held = 0;
    for (int i = 0; i < 200; ++i) {
      held = 0;
      for (const auto& s : pipeline->stages()) {
        const KvStats kv = s->kv_stats();
        held += kv.sequences + kv.blocks_used - kv.blocks_cache_only;
      }
      if (held == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return held;
  }
};

struct ReuseCase {
  std::string model;
  KvType kv_type;
};

// "nano_q4_0_f16": the model's file name without extension, and the KV type.
std::string CaseName(const ::testing::TestParamInfo<ReuseCase>& info) {
  std::string name = info.param.model.substr(0, info.param.model.find('.'));
  for (char& c : name) c = std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  return name + (info.param.kv_type == KvType::kF16 ? "_f16" : "_f32");
}

class PrefixReuseTest : public ::testing::TestWithParam<ReuseCase> {
 protected:
  void SetUp() override {
    auto file = GgufFile::Open(TestDataPath("models/" + GetParam().model));
    ASSERT_TRUE(file.ok()) << file.status();
    file_ = std::shared_ptr<const GgufFile>(std::move(*file));
    auto tok = Tokenizer::FromGguf(*file_);
    ASSERT_TRUE(tok.ok()) << tok.status();
    tokenizer_ = std::move(*tok);
  }
  std::vector<int32_t> Encode(const std::string& text) const {
    return tokenizer_->Encode(text, true, false);
  }
  std::shared_ptr<const GgufFile> file_;
  std::unique_ptr<Tokenizer> tokenizer_;
};

// Each later prompt shares a start with an earlier one: the cached server
// reuses it and still gives the fresh server's greedy tokens.
TEST_P(PrefixReuseTest, ReusedPrefixGivesTheFreshServersTokens) {
  EngineOptions cached_options;
  cached_options.prefill_chunk = 16;  // several chunks, forks inside and across them
  EngineOptions fresh_options = cached_options;
  fresh_options.prefix_cache = false;
  Server cached(file_, tokenizer_.get(), GetParam().kv_type, cached_options);
  Server fresh(file_, tokenizer_.get(), GetParam().kv_type, fresh_options);

  const std::vector<int32_t> first = Encode(
      "Once upon a time, there was a little girl named Lily. She loved to play outside in the "
      "park with her big red ball. One day, she saw a small bird sitting on a tree.");
  ASSERT_GE(first.size(), 30u);
  const std::vector<int32_t> turn1 = cached.Generate(first, 16);
  ASSERT_EQ(turn1, fresh.Generate(first, 16));

  // The next turn: the first prompt, its answer and more text.
  std::vector<int32_t> second = first;
  second.insert(second.end(), turn1.begin(), turn1.end());
  for (int32_t t : tokenizer_->Encode(" The bird said hello and flew away.", false, false)) {
    second.push_back(t);
  }
  std::vector<std::vector<int32_t>> prompts = {second};
  std::vector<int32_t> plus_one = first;  // a lone new token
  plus_one.push_back(second[first.size()]);
  prompts.push_back(plus_one);
  for (size_t n : {first.size(), first.size() - 5, size_t{17}, size_t{33}}) {
    prompts.emplace_back(first.begin(), first.begin() + n);  // the same start, shorter or equal
  }
  double hits = 0;
  for (const auto& prompt : prompts) {
    SCOPED_TRACE(::testing::Message() << prompt.size() << " prompt tokens");
    const double before = cached.Metric("shardlm_prefix_cache_hit_tokens_total");
    const auto got = cached.Generate(prompt, 12);
    EXPECT_EQ(got, fresh.Generate(prompt, 12));
    const double reused = cached.Metric("shardlm_prefix_cache_hit_tokens_total") - before;
    EXPECT_GT(reused, 0) << "no reuse";
    EXPECT_LT(reused, static_cast<double>(prompt.size()));
    hits += reused;
  }
  EXPECT_GE(cached.Metric("shardlm_prefix_cache_hits_total"), static_cast<double>(prompts.size()));
  EXPECT_EQ(cached.Metric("vllm:prefix_cache_hits{model_name=\"m\"}"), hits);
  EXPECT_EQ(fresh.Metric("shardlm_prefix_cache_hits_total"), 0);
  EXPECT_GT(cached.Metric("shardlm_prefix_cache_entries"), 0);
  EXPECT_EQ(cached.RequestBlocksHeld(), 0) << "only the cache keeps KV once requests end";
  EXPECT_EQ(fresh.RequestBlocksHeld(), 0);
}

// A chat client resends the whole conversation each turn and does nothing
// else: the second turn's prompt (rendered by the chat template, as the
// OpenAI and gRPC Chat APIs render it) reuses the first turn's KV, and the
// answer is the fresh server's.
TEST_P(PrefixReuseTest, NextChatTurnReusesTheConversationSoFar) {
  EngineOptions cached_options;
  cached_options.prefill_chunk = 16;
  EngineOptions fresh_options = cached_options;
  fresh_options.prefix_cache = false;
  Server cached(file_, tokenizer_.get(), GetParam().kv_type, cached_options);
  Server fresh(file_, tokenizer_.get(), GetParam().kv_type, fresh_options);

  std::vector<ChatMessage> chat = {
      {"system", "You are a storyteller."},
      {"user", "Tell me about Lily and her big red ball in the park."}};
  auto turn1 = BuildChatPrompt(*tokenizer_, "", "zephyr", chat, 1 << 20);
  ASSERT_TRUE(turn1.ok()) << turn1.status();
  const auto answer = cached.Generate(turn1->tokens, 16);
  chat.push_back({"assistant", tokenizer_->Decode(answer)});
  chat.push_back({"user", "What did the bird say?"});
  auto turn2 = BuildChatPrompt(*tokenizer_, "", "zephyr", chat, 1 << 20);
  ASSERT_TRUE(turn2.ok()) << turn2.status();
  ASSERT_GT(turn2->tokens.size(), turn1->tokens.size());

  const double before = cached.Metric("shardlm_prefix_cache_hit_tokens_total");
  EXPECT_EQ(cached.Generate(turn2->tokens, 12), fresh.Generate(turn2->tokens, 12));
  const double reused = cached.Metric("shardlm_prefix_cache_hit_tokens_total") - before;
  // At least the first turn's prompt less what the exactness rule
  // (ExactForkLength) keeps back: under one prefill chunk.
  EXPECT_GE(reused, static_cast<double>(turn1->tokens.size()) - cached_options.prefill_chunk)
      << turn1->tokens.size() << " tokens in turn 1, " << turn2->tokens.size() << " in turn 2";
  EXPECT_EQ(cached.RequestBlocksHeld(), 0);
}

INSTANTIATE_TEST_SUITE_P(
    Models, PrefixReuseTest,
    ::testing::Values(ReuseCase{"stories260K.gguf", KvType::kF16},
                      ReuseCase{"stories260K.gguf", KvType::kF32},
                      ReuseCase{"nano-q4_0.gguf", KvType::kF16},
                      ReuseCase{"nano-q8_0.gguf", KvType::kF16}),
    CaseName);

// The numbers themselves, on one whole-model stage: a sequence forked from
// another's first f positions (f = ExactForkLength) and prefilled from
// there in chunks ending at multiples of the chunk gives the last token's
// logits of a fresh prefill bit for bit, for prompts of every length
// around the chunk and block edges. Also counts (and prints) how often a
// naive fork (all common positions, chunks of `chunk` from the fork point)
// differs, which is why the rule exists.
class StageForkTest : public ::testing::TestWithParam<ReuseCase> {};

std::vector<float> Prefill(LlamaStage& stage, SeqId seq, const std::vector<int32_t>& tokens,
                           int from, int chunk, bool aligned) {
  ForwardResult result;
  for (int start = from; start < static_cast<int>(tokens.size());) {
    const int end = std::min<int>(tokens.size(), aligned ? (start / chunk + 1) * chunk : start + chunk);
    ForwardRequest r;
    for (int p = start; p < end; ++p) {
      r.seq_ids.push_back(seq);
      r.positions.push_back(p);
      r.tokens.push_back(tokens[p]);
    }
    EXPECT_TRUE(stage.Forward(r, &result).ok());
    start = end;
  }
  return result.logits;
}

TEST_P(StageForkTest, ForkedSuffixLogitsEqualAFreshPrefillBitForBit) {
  auto file = GgufFile::Open(TestDataPath("models/" + GetParam().model));
  ASSERT_TRUE(file.ok()) << file.status();
  std::shared_ptr<const GgufFile> shared(std::move(*file));
  StageOptions so;
  so.kv_type = GetParam().kv_type;
  auto stage = LlamaStage::Create(shared, so);
  ASSERT_TRUE(stage.ok()) << stage.status();
  const int n_vocab = (*stage)->info().n_vocab;
  constexpr int kChunk = 16;
  std::vector<int32_t> tokens = {1};
  for (int i = 1; i < 90; ++i) tokens.push_back(3 + (i * 37 + i * i) % (n_vocab - 3));
  // The entry: 70 positions computed as a request computes them.
  (void)Prefill(**stage, 100, std::vector<int32_t>(tokens.begin(), tokens.begin() + 70), 0, kChunk,
                true);
  int checked = 0, naive_differs = 0;
  for (int n : {9, 16, 17, 18, 31, 33, 48, 49, 50, 63, 64, 65, 66, 69, 70, 71, 72, 75, 81, 90}) {
    SCOPED_TRACE(::testing::Message() << n << " prompt tokens");
    const std::vector<int32_t> prompt(tokens.begin(), tokens.begin() + n);
    const std::vector<float> fresh = Prefill(**stage, 1, prompt, 0, kChunk, true);
    ASSERT_TRUE((*stage)->Release(1).ok());
    ASSERT_EQ(fresh.size(), static_cast<size_t>(n_vocab));
    // The engine's common prefix counts only the entry's gemm-and-batched
    // positions: 70 - 70 % 4 here.
    const int f = ExactForkLength(std::min(n, 68), n, kChunk);
    if (f > 0) {
      ASSERT_TRUE((*stage)->Fork(2, 100, f, false).ok());
      const std::vector<float> reused = Prefill(**stage, 2, prompt, f, kChunk, true);
      ASSERT_TRUE((*stage)->Release(2).ok());
      EXPECT_EQ(std::memcmp(reused.data(), fresh.data(), fresh.size() * sizeof(float)), 0)
          << "fork at " << f;
      ++checked;
    }
    const int naive = std::min(n - 1, 70);
    ASSERT_TRUE((*stage)->Fork(3, 100, naive, false).ok());
    const std::vector<float> loose = Prefill(**stage, 3, prompt, naive, kChunk, false);
    ASSERT_TRUE((*stage)->Release(3).ok());
    naive_differs += std::memcmp(loose.data(), fresh.data(), fresh.size() * sizeof(float)) != 0;
  }
  EXPECT_GE(checked, 15);
  std::printf("[prefix] %s: %d exact forks equal bit for bit; a naive fork differs in %d of 20\n",
              GetParam().model.c_str(), checked, naive_differs);
}

INSTANTIATE_TEST_SUITE_P(
    Models, StageForkTest,
    ::testing::Values(ReuseCase{"stories260K.gguf", KvType::kF16},
                      ReuseCase{"nano-q4_0.gguf", KvType::kF16},
                      ReuseCase{"nano-q4_k_m.gguf", KvType::kF16},
                      ReuseCase{"nano-q8_0.gguf", KvType::kF32}),
    CaseName);

// A KV budget with room for about one sequence: the cache's entries are
// evicted (least recently used) to run new requests, none is refused.
TEST(PrefixCacheBudgetTest, FullBudgetEvictsEntriesInsteadOfRefusing) {
  auto file = GgufFile::Open(TestDataPath("models/stories260K.gguf"));
  ASSERT_TRUE(file.ok()) << file.status();
  std::shared_ptr<const GgufFile> shared(std::move(*file));
  auto tokenizer = Tokenizer::FromGguf(*shared);
  ASSERT_TRUE(tokenizer.ok());
  const ModelConfig config = *ModelConfig::FromGguf(*shared);
  // Blocks of 64 positions of the larger (second) stage's layers, f16: 4
  // blocks there (the first stage, with fewer layers, gets a few more).
  const int64_t block =
      int64_t{2} * (config.n_layer - config.n_layer / 2) * 64 * config.n_embd_kv() * 2;
  EngineOptions eo;
  eo.prefill_chunk = 16;
  Server server(shared, tokenizer->get(), KvType::kF16, eo, 4 * block);
  for (int i = 0; i < 4; ++i) {
    std::vector<int32_t> prompt = (*tokenizer)->Encode(
        "Tom had a dog named Max " + std::to_string(i) + ". Max liked to run and jump in the "
        "grass every day after lunch.", true, false);
    while (prompt.size() < 140) prompt.push_back(prompt[1 + prompt.size() % 20]);
    server.Generate(prompt, 8);  // 148 positions: 3 blocks per stage
  }
  EXPECT_LE(server.Metric("shardlm_prefix_cache_entries"), 1);
  EXPECT_EQ(server.RequestBlocksHeld(), 0);
}

}  // namespace
}  // namespace shardlm::testing
