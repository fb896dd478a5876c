// One request's engine events, queued for whichever front end serves it
// (the gRPC reactor, the HTTP SSE/JSON writer, the CLI printer), each of
// which only formats them. The engine thread never waits on a client: it
// appends to the queue and, when a `notify` callback was given, calls it
// outside the queue's lock (the gRPC reactor starts a write from it). A
// front end that may block instead waits with a bounded WaitAndTake.
// The queue holds at most max_tokens small entries, or `max_unread` when
// given: a consumer that falls that far behind (a client that does not
// read) overflows the stream, which drops further tokens and says so, so
// the front end can end the request instead of buffering without bound.
#ifndef SHARDLM_COORDINATOR_TOKEN_STREAM_H_
#define SHARDLM_COORDINATOR_TOKEN_STREAM_H_

#include <condition_variable>
#include <functional>
#include <mutex>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "coordinator/engine.h"

namespace shardlm {

// How a request ended (GenerationObserver::OnFinish's arguments).
struct StreamEnd {
  FinishReason reason = FinishReason::kError;
  GenerationStats stats;
  absl::Status error;  // OK unless reason is kError / kDeadline
};

class TokenStream : public GenerationObserver {
 public:
  // `notify`, when given, runs on the engine thread after every event, with
  // no lock of ours held: it must not block, and must keep whatever it
  // touches alive itself (e.g. through a weak_ptr).
  // `max_unread` > 0 bounds the tokens queued and not yet taken.
  explicit TokenStream(std::function<void()> notify = nullptr, size_t max_unread = 0)
      : notify_(std::move(notify)), max_unread_(max_unread) {}

  void OnToken(const GeneratedToken& token) override;
  void OnFinish(FinishReason reason, const GenerationStats& stats,
                const absl::Status& error) override;

  // Appends the queued tokens to `tokens`. Returns true, with `end` set,
  // once the request has ended (its last token is taken in the same call).
  bool Take(std::vector<GeneratedToken>* tokens, StreamEnd* end);
  // The same after waiting up to `timeout` for an event.
  bool WaitAndTake(absl::Duration timeout, std::vector<GeneratedToken>* tokens, StreamEnd* end);
  // True once a token arrived with max_unread tokens already queued (that
  // token and later ones were dropped).
  bool overflowed() const;

 private:
  const std::function<void()> notify_;
  const size_t max_unread_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<GeneratedToken> tokens_;  // guarded by mu_
  bool ended_ = false;                  // guarded by mu_
  bool overflowed_ = false;             // guarded by mu_
  StreamEnd end_;                       // guarded by mu_
};

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_TOKEN_STREAM_H_
