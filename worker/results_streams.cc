#include "worker/results_streams.h"

#include <deque>

#include "absl/strings/str_cat.h"

namespace shardlm {

class ResultsStreams::Writer final : public grpc::ServerWriteReactor<v1::ChainResult> {
 public:
  Writer(ResultsStreams* owner, uint64_t id) : owner_(owner), id_(id) {
    // Tells the coordinator the stream is registered: steps may follow.
    StartSendInitialMetadata();
  }

  // False when the stream is already finishing.
  bool Push(v1::ChainResult result) {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_) return false;
    queue_.push_back(std::move(result));
    if (!writing_) {
      writing_ = true;
      StartWrite(&queue_.front());
    }
    return true;
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.pop_front();
    if (!ok) {
      FinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "results stream broken"));
      return;
    }
    if (queue_.empty() || finished_) {
      writing_ = false;
    } else {
      StartWrite(&queue_.front());
    }
  }

  void OnCancel() override {
    std::lock_guard<std::mutex> lock(mu_);
    FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "results stream cancelled"));
  }

  void OnDone() override {
    owner_->Remove(id_, this);
    delete this;
  }

 private:
  void FinishLocked(const grpc::Status& status) {
    if (finished_) return;
    finished_ = true;
    Finish(status);
  }

  ResultsStreams* const owner_;
  const uint64_t id_;
  std::mutex mu_;  // guards the fields below
  std::deque<v1::ChainResult> queue_;  // front: being written
  bool writing_ = false;
  bool finished_ = false;
};

ResultsStreams::~ResultsStreams() = default;

grpc::ServerWriteReactor<v1::ChainResult>* ResultsStreams::Open(
    grpc::CallbackServerContext* /*context*/, uint64_t stream_id) {
  class Refused final : public grpc::ServerWriteReactor<v1::ChainResult> {
   public:
    explicit Refused(grpc::Status status) { Finish(status); }
    void OnDone() override { delete this; }
  };
  std::lock_guard<std::mutex> lock(mu_);
  if (writers_.count(stream_id) != 0) {
    return new Refused(grpc::Status(grpc::StatusCode::ALREADY_EXISTS,
                                    absl::StrCat("results stream ", stream_id, " is already open")));
  }
  if (static_cast<int>(writers_.size()) >= max_streams_) {
    return new Refused(grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("this worker already serves ", max_streams_, " results streams")));
  }
  auto* writer = new Writer(this, stream_id);
  writers_[stream_id] = writer;
  return writer;
}

absl::Status ResultsStreams::Send(uint64_t stream_id, v1::ChainResult result) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = writers_.find(stream_id);
  if (it == writers_.end() || !it->second->Push(std::move(result))) {
    return absl::UnavailableError(absl::StrCat(
        "the coordinator's results stream ", stream_id, " is not open on this worker (lost?)"));
  }
  return absl::OkStatus();
}

void ResultsStreams::Remove(uint64_t id, Writer* writer) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = writers_.find(id);
  if (it != writers_.end() && it->second == writer) writers_.erase(it);
}

int ResultsStreams::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(writers_.size());
}

}  // namespace shardlm
