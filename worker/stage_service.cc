#include "worker/stage_service.h"

#include "common/base/text_escape.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/base/logging.h"
#include "common/rpc/grpc_settings.h"
#include "common/base/status_macros.h"
#include "common/stage/shard_info_codec.h"

namespace shardlm {

// Request/response pairs for Forward, recycled across calls: gRPC parses
// each request into a pooled message whose strings and repeated fields keep
// their capacity after Clear(), so the hidden-state bytes of a decode step
// land in memory that is already mapped (fresh multi-MB buffers per call
// cost page faults). Holders with very large buffers are not kept, so one
// long prefill does not pin its memory forever.
class ForwardMessagePool final
    : public grpc::MessageAllocator<v1::ForwardRequest, v1::ForwardResponse> {
 public:
  ~ForwardMessagePool() override {
    for (Holder* h : free_) delete h;
  }

  grpc::MessageHolder<v1::ForwardRequest, v1::ForwardResponse>* AllocateMessages() override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (!free_.empty()) {
        Holder* h = free_.back();
        free_.pop_back();
        return h;
      }
    }
    return new Holder(this);
  }

 private:
  static constexpr int kMaxFree = 8;
  static constexpr size_t kMaxKeptBytes = 8 << 20;

  class Holder final : public grpc::MessageHolder<v1::ForwardRequest, v1::ForwardResponse> {
   public:
    explicit Holder(ForwardMessagePool* pool) : pool_(pool) {
      set_request(&request_);
      set_response(&response_);
    }
    void Release() override { pool_->Recycle(this); }
    size_t buffer_bytes() const {
      return request_.hidden().data().capacity() + response_.hidden().data().capacity() +
             response_.logits().data().capacity();
    }
    void Clear() {
      request_.Clear();
      response_.Clear();
    }

   private:
    ForwardMessagePool* pool_;
    v1::ForwardRequest request_;
    v1::ForwardResponse response_;
  };

  void Recycle(Holder* h) {
    if (h->buffer_bytes() <= kMaxKeptBytes) {
      h->Clear();
      std::lock_guard<std::mutex> lock(mu_);
      if (static_cast<int>(free_.size()) < kMaxFree) {
        free_.push_back(h);
        return;
      }
    }
    delete h;
  }

  std::mutex mu_;
  std::vector<Holder*> free_;
};

StageService::StageService(StageServiceOptions options)
    : options_(std::move(options)),
      pool_(std::make_unique<ForwardMessagePool>()),
      address_(options_.address),
      hops_(options_.peers),
      queue_(options_.max_queued_calls) {
  SetMessageAllocatorFor_Forward(pool_.get());
}

StageService::~StageService() { StopCompute(); }

void StageService::SetStage(std::shared_ptr<Stage> stage, StageDetails details) {
  SHARDLM_CHECK(stage != nullptr && !ready());
  stage_ = std::move(stage);
  info_ = stage_->info();
  details_ = std::move(details);
  RefreshKvStats();
  ready_.store(true, std::memory_order_release);
}

void StageService::set_address(std::string address) {
  std::lock_guard<std::mutex> lock(state_mu_);
  address_ = std::move(address);
}

void StageService::StartDraining() {
  std::lock_guard<std::mutex> lock(state_mu_);
  draining_ = true;
}

bool StageService::WaitIdle(absl::Time deadline) {
  std::unique_lock<std::mutex> lock(state_mu_);
  return idle_cv_.wait_until(lock, absl::ToChronoTime(deadline), [&] { return in_flight_ == 0; });
}

void StageService::StopCompute() { queue_.Stop(); }

KvStats StageService::RefreshKvStats() {
  const KvStats kv = stage_->kv_stats();
  std::lock_guard<std::mutex> lock(state_mu_);
  kv_ = kv;
  return kv;
}

absl::Status StageService::HandleForward(const v1::ForwardRequest& request,
                                         v1::ForwardResponse* response) {
  if (!ready()) return absl::UnavailableError("worker is still loading its model");
  std::lock_guard<std::mutex> lock(compute_mu_);
  const absl::Time start = absl::Now();
  v1::DType hidden_dtype;
  RETURN_IF_ERROR(ResponseHiddenDType(request, &hidden_dtype));
  RETURN_IF_ERROR(DecodeForwardRequest(request, info_, &request_));
  // Before computing: 4096 x 32000 logits (500 MiB) would otherwise be
  // computed and only then found to exceed the message limit. The batch is
  // not validated yet (Forward does that): the count reads within bounds.
  RETURN_IF_ERROR(CheckLogitsFitMessage(request_, info_, options_.max_message_bytes));
  const absl::Status status = stage_->Forward(request_, &result_);
  const KvStats kv = RefreshKvStats();
  RETURN_IF_ERROR(status);
  RETURN_IF_ERROR(EncodeForwardResult(result_, info_, request_.n_tokens(), hidden_dtype, response));
  KvStatsToProto(kv, response->mutable_kv());
  response->set_compute_ms(absl::ToDoubleMilliseconds(absl::Now() - start));
  return absl::OkStatus();
}

absl::Status StageService::HandleRelease(const v1::ReleaseRequest& request,
                                         v1::ReleaseResponse* response) {
  if (request.seq_ids_size() > options_.max_release_ids) {
    return absl::InvalidArgumentError(absl::StrCat("seq_ids: ", request.seq_ids_size(),
                                                   " ids in one Release, at most ",
                                                   options_.max_release_ids));
  }
  // Nothing is cached before the stage exists: releasing is then a no-op.
  if (!ready()) return absl::OkStatus();
  std::lock_guard<std::mutex> lock(compute_mu_);
  const absl::Status status =
      stage_->Release(absl::MakeConstSpan(request.seq_ids().data(), request.seq_ids_size()));
  const KvStats kv = RefreshKvStats();
  if (response != nullptr) KvStatsToProto(kv, response->mutable_kv());
  return status;
}

absl::Status StageService::HandleFork(const v1::ForkRequest& request) {
  if (!ready()) return absl::UnavailableError("worker is still loading its model");
  std::lock_guard<std::mutex> lock(compute_mu_);
  const absl::Status status = stage_->Fork(request.dst_seq(), request.src_seq(),
                                           request.n_positions(), request.cache_entry());
  RefreshKvStats();
  return status;
}

void StageService::FillShardInfo(v1::ShardInfo* out) const {
  KvStats kv;
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    out->set_address(address_);
    kv = kv_;
  }
  const bool is_ready = ready();
  out->set_ready(is_ready);
  if (!is_ready) {
    out->set_protocol_version(kProtocolVersion);
    return;
  }
  ShardInfoToProto(info_, out);
  // From GGUF metadata (any bytes): proto3 strings must be valid UTF-8.
  out->set_model_name(IsPrintableUtf8(details_.model_name) ? details_.model_name
                                                            : EscapeNonPrintable(details_.model_name));
  out->set_weight_bytes(details_.weight_bytes);
  KvStatsToProto(kv, out->mutable_kv());
}

void StageService::RunOnComputeThread(grpc::CallbackServerContext* context,
                                      grpc::ServerUnaryReactor* reactor,
                                      std::function<absl::Status()> work) {
  QueueOnComputeThread(context, reactor,
                       [reactor, work = std::move(work)] { reactor->Finish(ToGrpcStatus(work())); });
}

void StageService::QueueOnComputeThread(grpc::CallbackServerContext* context,
                                        grpc::ServerUnaryReactor* reactor,
                                        std::function<void()> work) {
  {
    std::lock_guard<std::mutex> lock(state_mu_);
    if (draining_) {
      reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "worker is shutting down"));
      return;
    }
    ++in_flight_;
  }
  auto done = [this] {
    std::lock_guard<std::mutex> lock(state_mu_);
    if (--in_flight_ == 0) idle_cv_.notify_all();
  };
  const bool queued = queue_.Push([context, reactor, work = std::move(work), done] {
    // Work nobody waits for any more is skipped: a cancelled or expired
    // call would only delay the calls behind it.
    if (context->IsCancelled()) {
      reactor->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "call cancelled while queued"));
    } else if (context->deadline() < std::chrono::system_clock::now()) {
      reactor->Finish(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED,
                                   "deadline passed while the call was queued"));
    } else {
      work();
    }
    done();
  });
  if (!queued) done();
  if (!queued && queue_.stopped()) {
    reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "worker is shutting down"));
  } else if (!queued) {
    reactor->Finish(grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("worker busy: ", options_.max_queued_calls, " calls already queued")));
  }
}

grpc::ServerUnaryReactor* StageService::Forward(grpc::CallbackServerContext* context,
                                                const v1::ForwardRequest* request,
                                                v1::ForwardResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!ready()) {
    reactor->Finish(
        grpc::Status(grpc::StatusCode::UNAVAILABLE, "worker is still loading its model"));
    return reactor;
  }
  // Reject the obvious mismatches without queueing behind real work.
  if (absl::Status st = CheckForwardHeader(*request, info_, options_.max_batch_tokens); !st.ok()) {
    reactor->Finish(ToGrpcStatus(st));
    return reactor;
  }
  RunOnComputeThread(context, reactor,
                     [this, request, response] { return HandleForward(*request, response); });
  return reactor;
}

grpc::ServerUnaryReactor* StageService::Release(grpc::CallbackServerContext* context,
                                                const v1::ReleaseRequest* request,
                                                v1::ReleaseResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!ready()) {
    reactor->Finish(ToGrpcStatus(HandleRelease(*request, response)));
    return reactor;
  }
  // The stage's Release waits for a running Forward: not on this thread.
  RunOnComputeThread(context, reactor,
                     [this, request, response] { return HandleRelease(*request, response); });
  return reactor;
}

grpc::ServerUnaryReactor* StageService::Fork(grpc::CallbackServerContext* context,
                                             const v1::ForkRequest* request,
                                             v1::ForkResponse* /*response*/) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!ready()) {
    reactor->Finish(ToGrpcStatus(HandleFork(*request)));
    return reactor;
  }
  // Like Release: ordered with the Forwards on the compute thread.
  RunOnComputeThread(context, reactor, [this, request] { return HandleFork(*request); });
  return reactor;
}

grpc::ServerUnaryReactor* StageService::GetShardInfo(grpc::CallbackServerContext* context,
                                                     const v1::GetShardInfoRequest* /*request*/,
                                                     v1::ShardInfo* response) {
  FillShardInfo(response);
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* StageService::ChainForward(grpc::CallbackServerContext* context,
                                                     const v1::ChainForwardRequest* request,
                                                     v1::ChainForwardAck* /*ack*/) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  if (!ready()) {
    reactor->Finish(
        grpc::Status(grpc::StatusCode::UNAVAILABLE, "worker is still loading its model"));
    return reactor;
  }
  absl::Status st = CheckForwardHeader(request->forward(), info_, options_.max_batch_tokens);
  if (st.ok()) st = CheckChainRoute(*request, info_.is_last());
  if (!st.ok()) {
    reactor->Finish(ToGrpcStatus(st));
    return reactor;
  }
  QueueOnComputeThread(context, reactor, [this, context, request, reactor] {
    HandleChainForward(context, *request, reactor);
  });
  return reactor;
}

void StageService::HandleChainForward(grpc::CallbackServerContext* context,
                                      const v1::ChainForwardRequest& request,
                                      grpc::ServerUnaryReactor* reactor) {
  std::unique_lock<std::mutex> lock(chain_mu_);
  chain_response_.Clear();
  if (absl::Status st = HandleForward(request.forward(), &chain_response_); !st.ok()) {
    reactor->Finish(ToGrpcStatus(st));
    return;
  }
  if (request.route_size() == 0) {
    v1::ChainResult result;
    result.set_step_id(request.step_id());
    result.mutable_response()->Swap(&chain_response_);
    reactor->Finish(ToGrpcStatus(results_.Send(request.results_stream(), std::move(result))));
    return;
  }
  // This stage's output is the next stage's input: same batch, hidden
  // states moved over (not copied).
  const v1::ForwardRequest& in = request.forward();
  v1::ForwardRequest next;
  next.set_protocol_version(in.protocol_version());
  next.set_model_fingerprint(in.model_fingerprint());
  *next.mutable_seq_ids() = in.seq_ids();
  *next.mutable_positions() = in.positions();
  *next.mutable_want_logits() = in.want_logits();
  next.set_hidden_dtype(in.hidden_dtype());
  next.mutable_hidden()->Swap(chain_response_.mutable_hidden());
  lock.unlock();
  const uint64_t stream = request.results_stream();
  hops_.Send(request, std::move(next), context->deadline(), [this, stream](v1::ChainResult r) {
    const std::string what = r.message();
    if (!results_.Send(stream, std::move(r)).ok()) {
      // Not the stream's id: it is what lets a caller post results.
      SHARDLM_LOG(kWarning, "a chained hop failed and the coordinator's results stream is "
                  "gone: %s", what);
    }
  });
  // The output is on its way: acknowledge now, so the upstream stage holds
  // nothing while the rest of the chain runs.
  reactor->Finish(grpc::Status::OK);
}

grpc::ServerWriteReactor<v1::ChainResult>* StageService::Results(
    grpc::CallbackServerContext* context, const v1::ResultsRequest* request) {
  return results_.Open(context, request->stream_id());
}

}  // namespace shardlm
