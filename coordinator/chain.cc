#include "coordinator/chain.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "common/base/random_id.h"
#include "common/rpc/tensor_codec.h"
#include "common/stage/batch_validation.h"
#include "common/stage/forward_codec.h"

namespace shardlm {
namespace {

// As RemoteStage's chunk planning: fixed bytes per message, scalars per token.
constexpr int64_t kMessageOverhead = 4096;
constexpr int64_t kPerTokenScalars = 32;
// Past the step's deadline, how long to wait for the report that names the
// stuck stage (hops report it a little before the deadline).
constexpr absl::Duration kAckGrace = absl::Seconds(1);

}  // namespace

absl::Status CheckTopology(const std::string& topology) {
  if (topology == "relay" || topology == "chain") return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "--topology '", topology,
      "' is not one of relay (the coordinator passes hidden states between stages) or chain "
      "(stages pass them to each other)"));
}

absl::StatusOr<std::unique_ptr<Chain>> Chain::Create(const Pipeline& pipeline) {
  std::vector<std::vector<RemoteStage*>> stages(pipeline.n_ranges());
  for (int k = 0; k < pipeline.n_ranges(); ++k) {
    for (int r = 0; r < pipeline.n_replicas(k); ++r) {
      // const_cast: the chain only reads the stage and notes KV stats.
      auto* remote = dynamic_cast<RemoteStage*>(const_cast<Stage*>(&pipeline.stage(k, r)));
      if (remote == nullptr) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--topology chain needs every stage to be a shardlm-worker; ",
            pipeline.stage(k, r).name(), " runs in this process (use --topology relay)"));
      }
      stages[k].push_back(remote);
    }
  }
  std::unique_ptr<Chain> chain(new Chain(std::move(stages)));
  for (int k = 0; k < static_cast<int>(chain->stages_.size()); ++k) {
    for (int r = 0; r < static_cast<int>(chain->stages_[k].size()); ++r) {
      absl::StatusOr<std::shared_ptr<ResultsStream>> s = chain->StreamTo(k, r);
      if (!s.ok()) return s.status();
    }
  }
  return chain;
}

Chain::Chain(std::vector<std::vector<RemoteStage*>> stages)
    : stages_(std::move(stages)), stream_id_(RandomUint64()), next_step_(RandomUint64()) {
  for (const auto& replicas : stages_) streams_.emplace_back(replicas.size());
}

Chain::~Chain() {
  for (auto& range : streams_) {
    for (auto& s : range) {
      if (s != nullptr) s->Close();
    }
  }
}

absl::StatusOr<std::shared_ptr<ResultsStream>> Chain::StreamTo(int range, int replica) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::shared_ptr<ResultsStream>& s = streams_[range][replica];
  if (s != nullptr && s->alive()) return s;
  if (s != nullptr) s->Close();  // ended: gRPC is done with it
  const RemoteStage& stage = *stages_[range][replica];
  absl::StatusOr<std::shared_ptr<ResultsStream>> opened =
      ResultsStream::Open(stage.stub(), stage.channel(), stage.name(), range, replica, stream_id_,
                          &steps_, stage.options().call_timeout);
  if (!opened.ok()) return opened.status();
  s = *opened;
  return s;
}

void Chain::PlanSteps(const ForwardRequest& r, std::vector<size_t>* ends) const {
  ends->clear();
  const RemoteStage& first = *stages_.front().front();
  const ShardInfo& last = stages_.back().front()->info();
  const RemoteStageOptions& o = first.options();
  const int64_t budget = o.max_message_bytes - kMessageOverhead;
  // Every message of the step must fit: the hidden states between stages
  // (the largest request) and the logits rows of the results.
  const int64_t per_token =
      kPerTokenScalars + (stages_.size() > 1 ? int64_t{last.n_embd} * DTypeBytes(o.hidden_dtype) : 0);
  int64_t request = 0, response = 0, count = 0;
  for (size_t i = 0; i < r.n_tokens(); ++i) {
    const int64_t logits = WantsLogits(r, last, i) ? int64_t{last.n_vocab} * 4 + 10 : 0;
    if (count > 0 && (count >= o.max_tokens_per_call || request + per_token > budget ||
                      response + logits > budget)) {
      ends->push_back(i);
      request = response = count = 0;
    }
    request += per_token;
    response += logits;
    ++count;
  }
  ends->push_back(r.n_tokens());
}

absl::Status Chain::Forward(const ForwardRequest& request, ForwardResult* result,
                            const Route& route, StageFailure* failure) const {
  const ShardInfo& first = stages_.front().front()->info();
  if (absl::Status st = CheckBatchShape(request, first); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("malformed batch: ", st.message()));
  }
  result->hidden.clear();
  result->logits.clear();
  result->logit_rows.clear();
  result->compute_ms = 0;
  std::vector<size_t> ends;
  PlanSteps(request, &ends);
  // Split steps carry explicit logits flags (see RemoteStage::Forward).
  const bool explicit_logits = ends.size() > 1;
  size_t begin = 0;
  for (size_t end : ends) {
    // In order: each step's KV must be in place before the next one's.
    if (absl::Status st = Step(request, begin, end, explicit_logits, route, result, failure);
        !st.ok()) {
      return st;
    }
    begin = end;
  }
  return absl::OkStatus();
}

absl::Status Chain::Step(const ForwardRequest& request, size_t begin, size_t end,
                         bool explicit_logits, const Route& route, ForwardResult* result,
                         StageFailure* failure) const {
  const int n = static_cast<int>(stages_.size());
  auto fail = [&](int range, absl::Status st) {
    if (failure != nullptr) *failure = StageFailure{range, route[range]};
    return st;
  };
  RemoteStage& head = *stages_.front()[route.front()];
  RemoteStage& tail = *stages_.back()[route.back()];
  // Every stage may report on its stream: each must be open before the step.
  for (int k = 0; k < n; ++k) {
    absl::StatusOr<std::shared_ptr<ResultsStream>> stream = StreamTo(k, route[k]);
    if (!stream.ok()) return fail(k, absl::UnavailableError(stream.status().message()));
  }

  // What the first stage's acknowledgement callback touches. It lives here
  // and this step waits for the callback before returning, so the callback
  // never owns anything: in particular never the last reference to a
  // channel. (gRPC 1.51 runs callbacks on the threads of a shared
  // completion queue; destroying the last channel there makes that thread
  // join itself and free the queue it still polls: grpc/grpc#32584.)
  struct Call {
    grpc::ClientContext context;
    v1::ChainForwardRequest request;
    v1::ChainForwardAck ack;
    std::shared_ptr<ChainStep> step;
    absl::Notification callback_done;  // ok or not (the step notes an ok ack)
  } call;
  std::vector<std::string> names;
  for (int k = 0; k < n; ++k) names.push_back(stages_[k][route[k]]->name());
  call.step = std::make_shared<ChainStep>(route, std::move(names));
  v1::ForwardRequest* fwd = call.request.mutable_forward();
  if (absl::Status st = EncodeForwardRequest(request, begin, end, head.info(),
                                             head.options().hidden_dtype, false, fwd);
      !st.ok()) {
    return st;
  }
  if (explicit_logits) {
    fwd->mutable_want_logits()->Clear();
    for (size_t i = begin; i < end; ++i) fwd->add_want_logits(WantsLogits(request, tail.info(), i));
  }
  for (int k = 1; k < n; ++k) call.request.add_route(stages_[k][route[k]]->address());
  const uint64_t step_id = next_step_.fetch_add(1);
  call.request.set_step_id(step_id);
  call.request.set_results_stream(stream_id_);
  steps_.Add(step_id, call.step);
  const absl::Duration timeout = head.options().call_timeout;
  const absl::Time deadline = absl::Now() + timeout;
  call.context.set_deadline(absl::ToChronoTime(deadline));
  head.stub()->async()->ChainForward(
      &call.context, &call.request, &call.ack, [&call](grpc::Status status) {
        if (!status.ok()) {
          call.step->Fail(0, FromGrpcStatus(status, call.step->name(0)));
        } else {
          call.step->NoteAcked();
        }
        call.callback_done.Notify();  // last touch of `call`
      });
  const bool answered = call.step->Wait(deadline + kAckGrace);
  steps_.Remove(step_id);
  // The first stage acknowledges as soon as its part is sent on, long
  // before the result: normally this does not wait. When the step failed
  // or timed out, or the result came but the acknowledgement lags (a first
  // stage stopped right after sending), it is of no use any more.
  if (!answered || !call.step->ok() || !call.callback_done.WaitForNotificationWithTimeout(kAckGrace)) {
    call.context.TryCancel();
  }
  call.callback_done.WaitForNotification();
  if (!answered) {
    // The first stage took the step, yet neither a result nor a hop's
    // failure came: the last stage (or its way back) is what failed;
    // otherwise the first stage did not answer.
    const int range = call.step->acked() ? n - 1 : 0;
    return fail(range, absl::DeadlineExceededError(absl::StrCat(
                           call.step->name(range), ": chained step through ", n,
                           " stages got no answer within ", absl::FormatDuration(timeout))));
  }
  if (!call.step->ok()) return fail(call.step->failed_range(), call.step->status());
  v1::ForwardResponse& response = call.step->response();
  if (absl::Status bad = DecodeForwardResponse(response, tail.info(), begin, end - begin, result);
      !bad.ok()) {
    return fail(n - 1, absl::InternalError(
                           absl::StrCat(tail.name(), ": malformed chained result: ", bad.message())));
  }
  result->compute_ms += response.compute_ms();
  if (response.has_kv()) tail.NoteKvStats(response.kv());
  return absl::OkStatus();
}

}  // namespace shardlm
