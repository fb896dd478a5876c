// For tests that drive the Engine directly (engine_test, spec_engine_test):
// a GenerationObserver that collects one request's tokens and its end, and a
// fixture base that opens a model as an in-process pipeline of stages.
#ifndef SHARDLM_TESTS_ENGINE_COLLECTOR_H_
#define SHARDLM_TESTS_ENGINE_COLLECTOR_H_

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <memory>
#include <utility>

#include "common/model/gguf.h"
#include "common/tokenizer/tokenizer.h"
#include "coordinator/engine.h"
#include "coordinator/pipeline.h"
#include "worker/llama_stage.h"

namespace shardlm::testing {

// cancel_after_ > 0 sets cancel_now_ once that many tokens arrived (the test
// then cancels from its own thread).
class Collector : public GenerationObserver {
 public:
  void OnToken(const GeneratedToken& t) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (t.id >= 0) ids_.push_back(t.id);
    text_ += t.text;
    if (cancel_after_ > 0 && static_cast<int>(ids_.size()) == cancel_after_) cancel_now_ = true;
    cv_.notify_all();
    // Holding the engine's group thread here (events are delivered on it,
    // without the engine's lock) keeps the request from running ahead until
    // the test has acted, however fast the engine is.
    if (hold_after_ > 0 && static_cast<int>(ids_.size()) == hold_after_) {
      cv_.wait_for(lock, std::chrono::seconds(60), [&] { return released_; });
    }
  }
  // Lets a request held by hold_after_ go on.
  void ReleaseHold() {
    std::lock_guard<std::mutex> lock(mu_);
    released_ = true;
    cv_.notify_all();
  }
  void OnFinish(FinishReason reason, const GenerationStats& stats,
                const absl::Status& error) override {
    std::lock_guard<std::mutex> lock(mu_);
    reason_ = reason;
    stats_ = stats;
    error_ = error;
    done_ = true;
    cv_.notify_all();
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    ASSERT_TRUE(cv_.wait_for(lock, std::chrono::seconds(120), [&] { return done_; }));
  }
  void WaitForTokens(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(60),
                 [&] { return done_ || static_cast<int>(ids_.size()) >= n; });
  }
  std::vector<int32_t> ids_;
  std::string text_;
  FinishReason reason_ = FinishReason::kError;
  GenerationStats stats_;
  absl::Status error_;
  bool done_ = false;
  int cancel_after_ = 0;
  bool cancel_now_ = false;
  int hold_after_ = 0;  // > 0: OnToken waits for ReleaseHold() after that many tokens
  bool released_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
};

// Opens `model` as one in-process LlamaStage (f32 KV, each stage's KV
// under `kv_budget_bytes`, 0: unlimited) per [first, last) layer range of
// `split`, chained into pipeline_.
class InProcessPipelineTest : public ::testing::Test {
 protected:
  void OpenPipeline(const std::string& model, const std::vector<std::pair<int, int>>& split,
                    int64_t kv_budget_bytes = 0) {
    auto file = GgufFile::Open(model);
    ASSERT_TRUE(file.ok()) << file.status();
    file_ = std::shared_ptr<const GgufFile>(std::move(*file));
    auto tok = Tokenizer::FromGguf(*file_);
    ASSERT_TRUE(tok.ok()) << tok.status();
    tokenizer_ = std::move(*tok);
    std::vector<std::shared_ptr<Stage>> stages;
    for (auto [first, last] : split) {
      StageOptions so;
      so.first_layer = first;
      so.last_layer = last;
      so.kv_type = KvType::kF32;
      so.kv_budget_bytes = kv_budget_bytes;
      auto st = LlamaStage::Create(file_, so);
      ASSERT_TRUE(st.ok()) << st.status();
      stages.push_back(std::move(*st));
    }
    auto p = Pipeline::Create(std::move(stages));
    ASSERT_TRUE(p.ok()) << p.status();
    pipeline_ = std::move(*p);
  }
  // KV is released by the engine right after a request ends, asynchronously
  // to the client: poll (bounded) until every stage holds none.
  void ExpectKvFreedEventually() {
    for (const auto& s : pipeline_->stages()) {
      int64_t n = -1;
      for (int i = 0; i < 200 && n != 0; ++i) {
        n = s->kv_stats().sequences;
        if (n != 0) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      EXPECT_EQ(n, 0) << s->name() << " still holds KV";
    }
  }
  std::shared_ptr<const GgufFile> file_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<Pipeline> pipeline_;
};

}  // namespace shardlm::testing

#endif  // SHARDLM_TESTS_ENGINE_COLLECTOR_H_
