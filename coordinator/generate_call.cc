#include "coordinator/generate_call.h"

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

GenerateCall* GenerateCall::Start(FrontDoor* door, ClientRequest request) {
  std::shared_ptr<GenerateCall> call = Create(door);
  std::weak_ptr<GenerateCall> weak = call;
  call->stream_ = std::make_shared<TokenStream>([weak] {
    if (std::shared_ptr<GenerateCall> c = weak.lock()) c->Pump();
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
  Finish(ToGrpcStatus(id.status()));
}

void GenerateCall::DrainLocked() {
  if (ended_) return;
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
  grpc::Status status;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (writing_ || finished_) return;
    if (pending_.empty()) DrainLocked();
    if (!pending_.empty()) {
      current_ = std::move(pending_.front());
      pending_.pop_front();
      writing_ = write = true;
    } else if (ended_) {
      finished_ = finish = true;
      status = final_status_;
    }
  }
  // Outside the lock: a reaction may run on this thread.
  if (write) StartWrite(&current_);
  if (finish) Finish(status);
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
  if (finish) Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
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
