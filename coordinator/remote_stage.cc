#include "coordinator/remote_stage.h"

#include <algorithm>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/base/logging.h"
#include "common/rpc/tensor_codec.h"
#include "common/stage/batch_validation.h"
#include "common/stage/forward_codec.h"
#include "common/stage/shard_info_codec.h"
#include "common/base/status_macros.h"

namespace shardlm {
namespace {

// Bytes of a Forward message that do not scale with the batch (fingerprint,
// field tags, tensor shape), with a wide margin, and an upper bound of the
// per-token varints (seq id <= 10, position <= 10, token id <= 10, flag 1).
constexpr int64_t kMessageOverhead = 4096;
constexpr int64_t kPerTokenScalars = 32;

bool IsTransient(grpc::StatusCode code) {
  return code == grpc::StatusCode::UNAVAILABLE || code == grpc::StatusCode::DEADLINE_EXCEEDED ||
         code == grpc::StatusCode::RESOURCE_EXHAUSTED;
}

}  // namespace

struct RemoteStage::Call {
  v1::ForwardRequest request;
  v1::ForwardResponse response;
  std::vector<size_t> ends;
};

absl::StatusOr<std::unique_ptr<RemoteStage>> RemoteStage::Connect(
    const std::string& address, const RemoteStageOptions& options) {
  const std::string who = absl::StrCat("worker ", address);
  if (DTypeBytes(options.hidden_dtype) == 0) {
    return absl::InvalidArgumentError("RemoteStageOptions.hidden_dtype must be f32, f16 or bf16");
  }
  std::shared_ptr<grpc::Channel> channel = CreateClientChannel(
      address, options.credentials, options.tls_server_name, options.max_message_bytes);
  std::unique_ptr<v1::Stage::Stub> stub = v1::Stage::NewStub(channel);
  const absl::Time start = absl::Now();
  const absl::Time give_up = start + options.connect_timeout;
  for (int attempt = 1;; ++attempt) {
    const absl::Time attempt_start = absl::Now();
    grpc::ClientContext context;
    // Wait for the connection within the attempt instead of failing fast, so
    // a worker that is still starting is simply not there yet.
    context.set_wait_for_ready(true);
    context.set_deadline(absl::ToChronoTime(
        std::min(give_up, attempt_start + std::max(options.retry_interval, absl::Seconds(1)))));
    v1::ShardInfo shard;
    const grpc::Status status = stub->GetShardInfo(&context, v1::GetShardInfoRequest(), &shard);
    ConnectWait wait;
    wait.address = address;
    wait.attempt = attempt;
    if (status.ok()) {
      if (shard.protocol_version() != kProtocolVersion || shard.ready()) {
        RETURN_IF_ERROR(CheckShardInfoProto(shard, who));
        return std::unique_ptr<RemoteStage>(
            new RemoteStage(address, options, std::move(channel), std::move(shard)));
      }
      wait.loading = true;
    } else if (!IsTransient(status.error_code())) {
      return FromGrpcStatus(status, who);
    } else {
      wait.last_error = FromGrpcStatus(status, "");
    }
    const absl::Time now = absl::Now();
    wait.waited = now - start;
    if (now >= give_up) {
      return absl::DeadlineExceededError(absl::StrCat(
          who, " not ready after ", absl::FormatDuration(wait.waited), ": ",
          wait.loading ? "still loading its model" : std::string(wait.last_error.message())));
    }
    if (options.on_wait) {
      options.on_wait(wait);
    } else {
      SHARDLM_LOG(kInfo, "waiting for worker %s (%s) ...", address,
                  wait.loading ? std::string("loading") : std::string(wait.last_error.message()));
    }
    const absl::Time next = std::min(give_up, attempt_start + options.retry_interval);
    if (next > absl::Now()) absl::SleepFor(next - absl::Now());
  }
}

RemoteStage::RemoteStage(std::string address, RemoteStageOptions options,
                         std::shared_ptr<grpc::Channel> channel, v1::ShardInfo shard_info)
    : address_(std::move(address)),
      options_(std::move(options)),
      channel_(std::move(channel)),
      stub_(v1::Stage::NewStub(channel_)),
      shard_info_(std::move(shard_info)),
      info_(ShardInfoFromProto(shard_info_)),
      name_(absl::StrCat("worker ", address_, " (layers ", info_.first_layer, ":", info_.last_layer,
                         ")")) {
  last_kv_ = KvStatsFromProto(shard_info_.kv());
}

RemoteStage::~RemoteStage() = default;

void RemoteStage::PlanChunks(const ForwardRequest& r, std::vector<size_t>* ends) const {
  ends->clear();
  const int64_t budget = options_.max_message_bytes - kMessageOverhead;
  const int64_t hidden_bytes =
      static_cast<int64_t>(info_.n_embd) * DTypeBytes(options_.hidden_dtype);
  const int64_t request_per_token = kPerTokenScalars + (info_.is_first() ? 0 : hidden_bytes);
  int64_t request = 0, response = 0, count = 0;
  for (size_t i = 0; i < r.n_tokens(); ++i) {
    const int64_t response_per_token =
        info_.is_last() ? (WantsLogits(r, info_, i) ? int64_t{info_.n_vocab} * 4 + 10 : 0) : hidden_bytes;
    if (count > 0 &&
        (count >= options_.max_tokens_per_call || request + request_per_token > budget ||
         response + response_per_token > budget)) {
      ends->push_back(i);
      request = response = count = 0;
    }
    request += request_per_token;
    response += response_per_token;
    ++count;
  }
  ends->push_back(r.n_tokens());
}

absl::Status RemoteStage::Forward(const ForwardRequest& request, ForwardResult* result) {
  if (absl::Status st = CheckBatchShape(request, info_); !st.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(name_, ": malformed batch: ", st.message()));
  }
  result->hidden.clear();
  result->logits.clear();
  result->logit_rows.clear();
  if (!info_.is_last()) result->hidden.resize(request.n_tokens() * info_.n_embd);
  std::unique_ptr<Call> call = AcquireCall();
  PlanChunks(request, &call->ends);
  // Split batches carry explicit logits flags: "last token of each
  // sequence" must mean the whole batch's, not each chunk's.
  const bool explicit_logits = call->ends.size() > 1 && info_.is_last();
  absl::Status status;
  size_t begin = 0;
  double compute_ms = 0;
  for (size_t end : call->ends) {
    status = ForwardChunk(request, begin, end, explicit_logits, call.get(), result);
    if (!status.ok()) break;
    compute_ms += call->response.compute_ms();
    begin = end;
  }
  // The last chunk's reply has the worker's KV use after the whole batch
  // (workers before this field send none: the probes' answers then serve).
  const bool has_kv = status.ok() && call->response.has_kv();
  const KvStats kv = has_kv ? KvStatsFromProto(call->response.kv()) : KvStats{};
  ReturnCall(std::move(call));
  if (status.ok()) {
    result->compute_ms = compute_ms;
    std::lock_guard<std::mutex> lock(mu_);
    last_compute_ms_ = compute_ms;
    if (has_kv) last_kv_ = kv;
  }
  return status;
}

absl::Status RemoteStage::ForwardChunk(const ForwardRequest& r, size_t begin, size_t end,
                                       bool explicit_logits, Call* call, ForwardResult* result) {
  if (absl::Status st = EncodeForwardRequest(r, begin, end, info_, options_.hidden_dtype,
                                             explicit_logits, &call->request);
      !st.ok()) {
    return absl::Status(st.code(), absl::StrCat(name_, ": ", st.message()));
  }
  grpc::ClientContext context;
  context.set_deadline(DeadlineIn(options_.call_timeout));
  const grpc::Status status = stub_->Forward(&context, call->request, &call->response);
  if (!status.ok()) return FromGrpcStatus(status, name_);
  if (absl::Status bad = DecodeForwardResponse(call->response, info_, begin, end - begin, result);
      !bad.ok()) {
    return absl::InternalError(
        absl::StrCat(name_, ": malformed Forward response: ", bad.message()));
  }
  return absl::OkStatus();
}

void RemoteStage::NoteKvStats(const v1::KvCacheStats& kv) {
  std::lock_guard<std::mutex> lock(mu_);
  last_kv_ = KvStatsFromProto(kv);
}

absl::Status RemoteStage::Release(SeqId seq) { return Release(absl::MakeConstSpan(&seq, 1)); }

absl::Status RemoteStage::Release(absl::Span<const SeqId> seqs) {
  for (size_t begin = 0; begin < seqs.size(); begin += kMaxReleaseIds) {
    const size_t end = std::min(seqs.size(), begin + kMaxReleaseIds);
    v1::ReleaseRequest request;
    request.mutable_seq_ids()->Add(seqs.begin() + begin, seqs.begin() + end);
    v1::ReleaseResponse response;
    grpc::ClientContext context;
    context.set_deadline(DeadlineIn(options_.call_timeout));
    const grpc::Status status = stub_->Release(&context, request, &response);
    if (!status.ok()) return FromGrpcStatus(status, name_);
    if (response.has_kv()) {
      std::lock_guard<std::mutex> lock(mu_);
      last_kv_ = KvStatsFromProto(response.kv());
    }
  }
  return absl::OkStatus();
}

absl::Status RemoteStage::Fork(SeqId dst, SeqId src, int n, bool cache_entry) {
  v1::ForkRequest request;
  request.set_src_seq(src);
  request.set_dst_seq(dst);
  request.set_n_positions(n);
  request.set_cache_entry(cache_entry);
  v1::ForkResponse response;
  grpc::ClientContext context;
  context.set_deadline(DeadlineIn(options_.call_timeout));
  const grpc::Status status = stub_->Fork(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status, name_);
  return absl::OkStatus();
}

absl::StatusOr<v1::ShardInfo> RemoteStage::FetchShardInfo(absl::Duration timeout) const {
  grpc::ClientContext context;
  context.set_deadline(DeadlineIn(timeout));
  v1::ShardInfo shard;
  const grpc::Status status = stub_->GetShardInfo(&context, v1::GetShardInfoRequest(), &shard);
  if (!status.ok()) return FromGrpcStatus(status, name_);
  return shard;
}

absl::Status RemoteStage::Ping() {
  absl::StatusOr<v1::ShardInfo> shard = FetchShardInfo(options_.ping_timeout);
  if (!shard.ok()) return shard.status();
  if (!shard->ready()) return absl::UnavailableError(absl::StrCat(name_, " is loading"));
  // A different process may now listen at this address.
  if (shard->model_fingerprint() != info_.fingerprint ||
      shard->first_layer() != info_.first_layer || shard->last_layer() != info_.last_layer) {
    return absl::FailedPreconditionError(
        absl::StrCat(name_, " now serves layers ", shard->first_layer(), ":", shard->last_layer(),
                     " of model ", shard->model_fingerprint()));
  }
  std::lock_guard<std::mutex> lock(mu_);
  last_kv_ = KvStatsFromProto(shard->kv());  // the probe's answer is news too
  return absl::OkStatus();
}

KvStats RemoteStage::kv_stats() const {
  absl::StatusOr<v1::ShardInfo> shard =
      FetchShardInfo(std::min(options_.call_timeout, absl::Seconds(5)));
  std::lock_guard<std::mutex> lock(mu_);
  if (shard.ok()) {
    last_kv_ = KvStatsFromProto(shard->kv());
  } else {
    SHARDLM_LOG(kDebug, "%s; reporting the last known KV stats",
                std::string(shard.status().message()));
  }
  return last_kv_;
}

KvStats RemoteStage::known_kv_stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_kv_;
}

double RemoteStage::last_compute_ms() const {
  std::lock_guard<std::mutex> lock(mu_);
  return last_compute_ms_;
}

std::unique_ptr<RemoteStage::Call> RemoteStage::AcquireCall() {
  std::lock_guard<std::mutex> lock(mu_);
  if (free_calls_.empty()) return std::make_unique<Call>();
  std::unique_ptr<Call> call = std::move(free_calls_.back());
  free_calls_.pop_back();
  return call;
}

void RemoteStage::ReturnCall(std::unique_ptr<Call> call) {
  std::lock_guard<std::mutex> lock(mu_);
  // A few calls in flight at most (micro-batches); keep that many warm.
  if (free_calls_.size() < 4) free_calls_.push_back(std::move(call));
}

}  // namespace shardlm
