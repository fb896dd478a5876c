#include "coordinator/generate_call.h"

#include "common/base/logging.h"
#include "common/rpc/grpc_settings.h"

namespace shardlm {
namespace {

v1::FinishReason ToProto(FinishReason r) {
  switch (r) {
    case FinishReason::kLength: return v1::FINISH_REASON_LENGTH;
    case FinishReason::kStop: return v1::FINISH_REASON_STOP;
    case FinishReason::kEndOfText: return v1::FINISH_REASON_EOS;
    default: return v1::FINISH_REASON_CANCELLED;
  }
}

}  // namespace

class GenerateCall::Bridge : public GenerationObserver {
 public:
  Bridge(GenerateCall* call, const Tokenizer* tokenizer) : call_(call), tokenizer_(tokenizer) {}

  void OnToken(const GeneratedToken& t) override {
    v1::GenerateResponse msg;
    v1::GeneratedChunk* c = msg.mutable_chunk();
    c->set_token_id(t.id);
    c->set_text(t.text);
    c->set_logprob(t.logprob);
    for (const TokenLogprob& alt : t.top_logprobs) {
      v1::TokenLogprob* p = c->add_top_logprobs();
      p->set_token_id(alt.token);
      p->set_logprob(alt.logprob);
      p->set_text(tokenizer_->TokenPiece(alt.token));
    }
    Deliver(std::move(msg), false, grpc::Status::OK);
  }

  void OnFinish(FinishReason reason, const GenerationStats& s, const absl::Status& error) override {
    v1::GenerateResponse msg;
    grpc::Status status = grpc::Status::OK;
    if (reason == FinishReason::kError || reason == FinishReason::kDeadline) {
      status = ToGrpcStatus(error.ok() ? absl::InternalError("generation failed") : error);
    } else {
      v1::GenerationSummary* sum = msg.mutable_summary();
      sum->set_finish_reason(ToProto(reason));
      sum->set_prompt_tokens(s.prompt_tokens);
      sum->set_generated_tokens(s.generated_tokens);
      sum->set_time_to_first_token_ms(s.time_to_first_token_ms);
      sum->set_prompt_tokens_per_second(s.prompt_tokens_per_s);
      sum->set_generation_tokens_per_second(s.generation_tokens_per_s);
      sum->set_total_ms(s.total_ms);
    }
    Deliver(std::move(msg), true, status);
  }

  // Called from OnDone: from now on events are dropped.
  void Detach() {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    call_ = nullptr;
  }

 private:
  void Deliver(v1::GenerateResponse msg, bool last, grpc::Status status) {
    std::lock_guard<std::recursive_mutex> lock(mu_);
    if (call_ == nullptr) return;
    {
      std::lock_guard<std::mutex> call_lock(call_->mu_);
      if (msg.event_case() != v1::GenerateResponse::EVENT_NOT_SET) {
        call_->pending_.push_back(std::move(msg));
      }
      if (last) {
        call_->engine_done_ = true;
        call_->final_status_ = std::move(status);
      }
    }
    call_->Pump();
  }

  // Recursive: if gRPC runs OnDone inline inside Finish (called from
  // Deliver -> Pump), Detach re-enters on the same thread. Holding it across
  // Pump keeps the call alive until Deliver is done with it.
  std::recursive_mutex mu_;
  GenerateCall* call_;
  const Tokenizer* tokenizer_;
};

GenerateCall::GenerateCall(Engine* engine, const Tokenizer* tokenizer, GenerationRequest request,
                           const grpc::Status& invalid)
    : engine_(engine), bridge_(std::make_shared<Bridge>(this, tokenizer)) {
  grpc::Status refusal = invalid;
  if (refusal.ok()) {
    absl::StatusOr<uint64_t> id = engine_->Submit(std::move(request), bridge_);
    if (id.ok()) {
      request_id_ = *id;
      return;
    }
    refusal = ToGrpcStatus(id.status());
  }
  bridge_->Detach();
  {
    std::lock_guard<std::mutex> lock(mu_);
    finished_ = true;
  }
  Finish(refusal);
}

void GenerateCall::Pump() {
  bool write = false, finish = false;
  grpc::Status status;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (writing_ || finished_) return;
    if (!pending_.empty()) {
      current_ = std::move(pending_.front());
      pending_.pop_front();
      writing_ = write = true;
    } else if (engine_done_) {
      finished_ = finish = true;
      status = final_status_;
    }
  }
  // Outside the lock: a reaction may run on this thread.
  if (write) StartWrite(&current_);
  if (finish) Finish(status);
}

void GenerateCall::OnWriteDone(bool ok) {
  bool cancel = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    if (!ok) {
      // The client is gone: stop generating for it.
      pending_.clear();
      if (!finished_) {
        finished_ = true;
        cancel = true;
      }
    }
  }
  // Outside mu_: the engine calls the bridge (which takes mu_) while holding
  // its own lock, so cancelling under mu_ could deadlock with a finishing
  // request (a client that disconnects at the wrong moment hung the engine).
  if (cancel) engine_->Cancel(request_id_);
  if (!ok) {
    Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client went away"));
    return;
  }
  Pump();
}

void GenerateCall::OnCancel() {
  // Deadline passed or the client cancelled: free the sequence everywhere.
  if (request_id_ != 0) engine_->Cancel(request_id_);
}

void GenerateCall::OnDone() {
  bridge_->Detach();
  delete this;
}

}  // namespace shardlm
