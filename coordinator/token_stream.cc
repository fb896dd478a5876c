#include "coordinator/token_stream.h"

namespace shardlm {

void TokenStream::OnToken(const GeneratedToken& token) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (max_unread_ > 0 && tokens_.size() >= max_unread_) {
      overflowed_ = true;
    } else if (!overflowed_) {
      tokens_.push_back(token);
    }
  }
  cv_.notify_all();
  if (notify_) notify_();
}

void TokenStream::OnFinish(FinishReason reason, const GenerationStats& stats,
                           const absl::Status& error) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    end_ = StreamEnd{reason, stats, error};
    ended_ = true;
  }
  cv_.notify_all();
  if (notify_) notify_();
}

bool TokenStream::Take(std::vector<GeneratedToken>* tokens, StreamEnd* end) {
  std::lock_guard<std::mutex> lock(mu_);
  tokens->insert(tokens->end(), std::make_move_iterator(tokens_.begin()),
                 std::make_move_iterator(tokens_.end()));
  tokens_.clear();
  if (ended_) *end = end_;
  return ended_;
}

bool TokenStream::overflowed() const {
  std::lock_guard<std::mutex> lock(mu_);
  return overflowed_;
}

bool TokenStream::WaitAndTake(absl::Duration timeout, std::vector<GeneratedToken>* tokens,
                              StreamEnd* end) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, absl::ToChronoNanoseconds(timeout),
                 [&] { return ended_ || !tokens_.empty(); });
  }
  return Take(tokens, end);
}

}  // namespace shardlm
