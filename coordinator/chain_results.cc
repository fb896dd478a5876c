#include "coordinator/chain_results.h"


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

void ChainSteps::Add(uint64_t id, std::shared_ptr<ChainStep> step) {
  std::lock_guard<std::mutex> lock(mu_);
  steps_[id] = std::move(step);
}

void ChainSteps::Remove(uint64_t id) {
  std::lock_guard<std::mutex> lock(mu_);
  steps_.erase(id);
}

std::shared_ptr<ChainStep> ChainSteps::Find(uint64_t id) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = steps_.find(id);
  return it == steps_.end() ? nullptr : it->second;
}

void ChainSteps::FailThrough(int range, int replica, const absl::Status& status) {
  std::vector<std::shared_ptr<ChainStep>> hit;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (const auto& [id, step] : steps_) {
      if (range < static_cast<int>(step->route().size()) && step->route()[range] == replica) {
        hit.push_back(step);
      }
    }
  }
  for (auto& step : hit) step->Fail(range, status);
}

ResultsStream::ResultsStream(std::shared_ptr<grpc::Channel> channel, std::string name, int range,
                             int replica, uint64_t id, ChainSteps* steps)
    : channel_(std::move(channel)),
      name_(std::move(name)),
      range_(range),
      replica_(replica),
      id_(id),
      steps_(steps) {
  request_.set_stream_id(id_);
}

absl::StatusOr<std::shared_ptr<ResultsStream>> ResultsStream::Open(
    v1::Stage::Stub* stub, std::shared_ptr<grpc::Channel> channel, std::string name, int range,
    int replica, uint64_t id, ChainSteps* steps, absl::Duration timeout) {
  std::shared_ptr<ResultsStream> s(
      new ResultsStream(std::move(channel), std::move(name), range, replica, id, steps));
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
  // A message nobody waits for (its step timed out) is dropped.
  if (std::shared_ptr<ChainStep> step = steps_->Find(message_.step_id())) {
    // Bytes from the network: a report must name a later stage of this
    // step's route, and only the last stage completes a step.
    const int64_t hop = message_.failed_hop();
    const int64_t k = int64_t{range_} + hop;
    const int code = message_.code();
    const bool last = range_ == step->n_ranges() - 1;
    if (hop == 0 && code == 0 && last) {
      step->Complete(std::move(*message_.mutable_response()));
    } else if (hop > 0 && k < step->n_ranges() && code > 0 && code <= 16) {
      step->Fail(static_cast<int>(k),
                 absl::Status(static_cast<absl::StatusCode>(code),
                              absl::StrCat(step->name(static_cast<int>(k)), ", reached from ",
                                           name_, ": ", message_.message())));
    } else {
      step->Fail(range_, absl::InternalError(absl::StrCat(
                             name_, " sent a result that does not fit the step (hop ", hop,
                             ", code ", code, ", a route of ", step->n_ranges(), " stages)")));
    }
  }
  message_.Clear();
  StartRead(&message_);
}

void ResultsStream::OnDone(const grpc::Status& status) {
  absl::Status lost = FromGrpcStatus(
      status.ok() ? grpc::Status(grpc::StatusCode::UNAVAILABLE, "ended by the worker") : status,
      absl::StrCat(name_, ": results stream"));
  if (lost.code() != absl::StatusCode::kUnimplemented) {
    // Whatever ended the stream, the steps through this worker lost their
    // way back: a stage failure (failover), not a bad batch.
    lost = absl::UnavailableError(lost.message());
  }
  bool registered;
  {
    std::lock_guard<std::mutex> lock(mu_);
    end_ = lost;
    registered = registered_;
  }
  if (registered) steps_->FailThrough(range_, replica_, lost);
  std::lock_guard<std::mutex> lock(mu_);
  done_ = true;
  cv_.notify_all();
}

}  // namespace shardlm
