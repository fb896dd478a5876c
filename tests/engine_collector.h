// A GenerationObserver that collects one request's tokens and its end, for
// tests that drive the Engine directly (engine_test, spec_engine_test).
#ifndef SHARDLM_TESTS_ENGINE_COLLECTOR_H_
#define SHARDLM_TESTS_ENGINE_COLLECTOR_H_

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

#include "coordinator/engine.h"

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

}  // namespace shardlm::testing

#endif  // SHARDLM_TESTS_ENGINE_COLLECTOR_H_
