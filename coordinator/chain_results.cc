#include "coordinator/chain_results.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "common/rpc/grpc_settings.h"

namespace shardlm {

void ChainStep::Complete(v1::ForwardResponse response) {
  std::lock_guard<std::mutex> lock(mu_);
  if (done_) return;
  response_ = std::move(response);
  done_ = true;
  cv_.notify_all();
}

void ChainStep::Fail(int range, absl::Status status) {
  std::lock_guard<std::mutex> lock(mu_);
  if (done_) return;
  failed_range_ = range;
  status_ = std::move(status);
  done_ = true;
  cv_.notify_all();
}

void ChainStep::NoteAcked() {
  std::lock_guard<std::mutex> lock(mu_);
  acked_ = true;
}

bool ChainStep::acked() const {
  std::lock_guard<std::mutex> lock(mu_);
  return acked_;
}

bool ChainStep::Wait(absl::Time deadline) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_until(lock, absl::ToChronoTime(deadline), [&] { return done_; });
}

ResultsStream::ResultsStream(std::shared_ptr<grpc::Channel> channel, std::string name, int range,
                             uint64_t id)
    : channel_(std::move(channel)), name_(std::move(name)), range_(range), id_(id) {
  request_.set_stream_id(id_);
}

absl::StatusOr<std::shared_ptr<ResultsStream>> ResultsStream::Open(
    v1::Stage::Stub* stub, std::shared_ptr<grpc::Channel> channel, std::string name, int range,
    absl::Duration timeout) {
  static std::mutex rng_mu;
  static std::mt19937_64 rng{std::random_device{}()};
  uint64_t id;
  {
    std::lock_guard<std::mutex> lock(rng_mu);
    id = rng();
  }
  std::shared_ptr<ResultsStream> s(new ResultsStream(std::move(channel), std::move(name), range, id));
  stub->async()->Results(&s->context_, &s->request_, s.get());
  s->StartRead(&s->message_);
  s->StartCall();
  std::unique_lock<std::mutex> lock(s->mu_);
  if (!s->cv_.wait_for(lock, absl::ToChronoMilliseconds(timeout),
                       [&] { return s->registered_ || s->done_; })) {
    lock.unlock();
    s->Close();
    return absl::DeadlineExceededError(absl::StrCat(
        s->name_, ": results stream not open after ", absl::FormatDuration(timeout)));
  }
  if (s->done_) {
    const absl::Status end = s->end_;
    lock.unlock();
    s->Close();
    if (end.code() == absl::StatusCode::kUnimplemented) {
      return absl::FailedPreconditionError(absl::StrCat(
          s->name_, " does not support --topology chain (a worker older than the coordinator?): ",
          end.message()));
    }
    return end;
  }
  return s;
}

ResultsStream::~ResultsStream() { Close(); }

bool ResultsStream::alive() const {
  std::lock_guard<std::mutex> lock(mu_);
  return registered_ && !done_;
}

bool ResultsStream::Expect(uint64_t step_id, std::shared_ptr<ChainStep> step) {
  std::lock_guard<std::mutex> lock(mu_);
  if (done_) return false;
  waiting_[step_id] = std::move(step);
  return true;
}

void ResultsStream::Forget(uint64_t step_id) {
  std::lock_guard<std::mutex> lock(mu_);
  waiting_.erase(step_id);
}

void ResultsStream::Close() {
  context_.TryCancel();
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return done_; });
}

void ResultsStream::OnReadInitialMetadataDone(bool ok) {
  std::lock_guard<std::mutex> lock(mu_);
  if (ok) registered_ = true;
  cv_.notify_all();
}

void ResultsStream::OnReadDone(bool ok) {
  if (!ok) return;  // the stream ended: OnDone follows
  std::shared_ptr<ChainStep> step;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = waiting_.find(message_.step_id());
    if (it != waiting_.end()) {
      step = std::move(it->second);
      waiting_.erase(it);
    }
  }
  // A result nobody waits for (its step timed out) is dropped.
  if (step != nullptr) step->Complete(std::move(*message_.mutable_response()));
  message_.Clear();
  StartRead(&message_);
}

void ResultsStream::OnDone(const grpc::Status& status) {
  std::map<uint64_t, std::shared_ptr<ChainStep>> orphans;
  absl::Status lost = FromGrpcStatus(
      status.ok() ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "ended by the worker") : status,
      absl::StrCat(name_, ": results stream"));
  if (lost.code() != absl::StatusCode::kUnimplemented) {
    // Whatever ended the stream, the steps waiting on it are lost with the
    // worker's link: a stage failure (failover), not a bad batch.
    lost = absl::UnavailableError(lost.message());
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    orphans.swap(waiting_);
    end_ = lost;
  }
  for (auto& [id, step] : orphans) step->Fail(range_, lost);
  std::lock_guard<std::mutex> lock(mu_);
  done_ = true;
  cv_.notify_all();
}

}  // namespace shardlm
