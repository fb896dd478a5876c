#include "coordinator/generate_call.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "common/rpc/grpc_settings.h"
#include "coordinator/proto_convert.h"

namespace shardlm {

std::shared_ptr<GenerateCall> GenerateCall::Create(FrontDoor* door) {
  std::shared_ptr<GenerateCall> call(new GenerateCall(door));
  call->self_ = call;
  return call;
}

GenerateCall* GenerateCall::Start(FrontDoor* door, ClientRequest request,
                                  grpc::CallbackServerContext* context,
                                  const StreamLimits& limits) {
  std::shared_ptr<GenerateCall> call = Create(door);
  std::weak_ptr<GenerateCall> weak = call;
  call->stream_ = std::make_shared<TokenStream>(
      [weak] {
        if (std::shared_ptr<GenerateCall> c = weak.lock()) c->Pump();
      },
      limits.max_unread_chunks);
  call->context_ = context;
  // The engine ends the request at its deadline; the alarm (a little later)
  // cancels a call whose last writes the client never took.
  request.deadline = std::min(request.deadline, absl::Now() + limits.max_lifetime);
  call->lifetime_alarm_.Set(absl::ToChronoTime(absl::Now() + limits.max_lifetime + absl::Seconds(5)),
                            [weak](bool fired) {
                              if (!fired) return;
                              if (std::shared_ptr<GenerateCall> c = weak.lock()) c->LifetimeOver();
                            });
  door->SubmitAsync(std::move(request), call->stream_,
                    [call](absl::StatusOr<uint64_t> id) { call->Submitted(std::move(id)); });
  return call.get();
}

GenerateCall* GenerateCall::Refuse(const absl::Status& refusal) {
  std::shared_ptr<GenerateCall> call = Create(nullptr);
  call->Submitted(refusal);
  return call.get();
}

void GenerateCall::Submitted(absl::StatusOr<uint64_t> id) {
  if (id.ok()) {
    bool cancel;
    {
      std::lock_guard<std::mutex> lock(mu_);
      request_id_ = *id;
      cancel = cancelled_;
    }
    if (cancel) door_->Cancel(*id);  // the client left while the request was built
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_) return;
    finished_ = true;
  }
  FinishOrDefer(ToGrpcStatus(id.status()));
}

void GenerateCall::LifetimeOver() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_) return;
    // No Finish until TryCancel has returned: Finish leads to OnDone, after
    // which context_ is gone.
    cancelling_ = true;
  }
  context_->TryCancel();  // OnCancel / OnWriteDone(false) follow
  grpc::Status deferred;
  bool finish;
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancelling_ = false;
    finish = finish_deferred_;
    deferred = std::move(deferred_status_);
  }
  if (finish) Finish(std::move(deferred));
}

void GenerateCall::FinishOrDefer(grpc::Status status) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (cancelling_) {
      finish_deferred_ = true;
      deferred_status_ = std::move(status);
      return;
    }
  }
  Finish(std::move(status));
}

void GenerateCall::DrainLocked() {
  if (ended_) return;
  if (stream_->overflowed()) {
    // The client stopped reading: what it has not taken is dropped, the
    // request is cancelled by Pump (outside mu_).
    pending_.clear();
    ended_ = overflowed_ = true;
    final_status_ = grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        "the client did not read the stream: too many generated chunks waiting (the server "
        "buffers a bounded number per stream); read the stream as it arrives");
    return;
  }
  std::vector<GeneratedToken> tokens;
  StreamEnd end;
  ended_ = stream_->Take(&tokens, &end);
  for (const GeneratedToken& t : tokens) {
    *pending_.emplace_back().mutable_chunk() = ChunkToProto(t, door_->tokenizer());
  }
  if (!ended_) return;
  if (end.reason == FinishReason::kError || end.reason == FinishReason::kDeadline) {
    final_status_ =
        ToGrpcStatus(end.error.ok() ? absl::InternalError("generation failed") : end.error);
  } else {
    *pending_.emplace_back().mutable_summary() = SummaryToProto(end.reason, end.stats);
  }
}

void GenerateCall::Pump() {
  bool write = false, finish = false;
  uint64_t cancel_id = 0;
  grpc::Status status;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (finished_) return;
    // Tokens move from the stream into pending_ only when nothing is being
    // written (so unread tokens stay bounded by the stream's max_unread);
    // an overflow is acted on even while a write is stuck, so the request
    // ends (and frees its KV) at once.
    if ((!writing_ && pending_.empty()) || (!overflowed_ && stream_->overflowed())) {
      const bool was_overflowed = overflowed_;
      DrainLocked();
      if (overflowed_ && !was_overflowed) cancel_id = request_id_;
    }
    if (writing_) {
      // OnWriteDone calls Pump again.
    } else if (!pending_.empty()) {
      current_ = std::move(pending_.front());
      pending_.pop_front();
      writing_ = write = true;
    } else if (ended_) {
      finished_ = finish = true;
      status = final_status_;
    }
  }
  // Outside the lock: a reaction may run on this thread, and the engine may
  // be delivering an event to this call.
  if (cancel_id != 0) door_->Cancel(cancel_id);
  if (write) StartWrite(&current_);
  if (finish) FinishOrDefer(std::move(status));
}

void GenerateCall::OnWriteDone(bool ok) {
  if (ok) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = false;
    }
    Pump();
    return;
  }
  // The client is gone: stop generating for it.
  uint64_t id;
  bool finish;
  {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    pending_.clear();
    cancelled_ = true;
    id = request_id_;
    finish = !finished_;
    finished_ = true;
  }
  // Outside mu_: the engine may be delivering an event to this call.
  if (id != 0) door_->Cancel(id);
  if (finish) FinishOrDefer(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
}

void GenerateCall::OnCancel() {
  // Deadline passed or the client cancelled: free the sequence everywhere.
  uint64_t id;
  {
    std::lock_guard<std::mutex> lock(mu_);
    cancelled_ = true;
    id = request_id_;
  }
  if (id != 0) door_->Cancel(id);
}

void GenerateCall::OnDone() {
  // Deleted here unless the build task or an engine callback still holds it.
  std::shared_ptr<GenerateCall> self = std::move(self_);
}

}  // namespace shardlm
