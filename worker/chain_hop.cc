#include "worker/chain_hop.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/rpc/grpc_settings.h"

namespace shardlm {
namespace {

// What each hop keeps of the step's remaining time for reporting back a
// stuck next stage: a quarter, at least 100 ms (a loaded machine or a slow
// link must still get the report to the coordinator in time).
constexpr std::chrono::milliseconds kMinHopMargin(100);

}  // namespace

absl::Status CheckChainRoute(const v1::ChainForwardRequest& request, bool is_last_stage) {
  const int n = request.route_size();
  if (is_last_stage && n > 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("route: ", n, " stages named after the last one"));
  }
  if (!is_last_stage && n == 0) {
    return absl::InvalidArgumentError(
        "route: empty, but this stage is not the last one (no next stage to send to)");
  }
  if (n > kMaxChainHops) {
    return absl::InvalidArgumentError(
        absl::StrCat("route: ", n, " stages, at most ", kMaxChainHops));
  }
  for (const std::string& address : request.route()) {
    if (absl::Status st = CheckPeerAddress(address); !st.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("route: ", st.message()));
    }
  }
  return absl::OkStatus();
}

v1::ChainResult HopFailure(uint64_t step_id, const grpc::Status& status,
                           const std::string& next_address) {
  v1::ChainResult r;
  r.set_step_id(step_id);
  r.set_failed_hop(1);
  r.set_code(status.error_code());
  r.set_message(std::string(
      FromGrpcStatus(status, absl::StrCat("next stage ", next_address)).message()));
  return r;
}

struct ChainHops::Call {
  grpc::ClientContext context;
  v1::ChainForwardRequest request;
  v1::ChainForwardAck ack;
  // Keeps the channel for the call; never its last reference (PeerPool).
  std::shared_ptr<v1::Stage::Stub> stub;
};

ChainHops::~ChainHops() {
  CancelAll();
  std::unique_lock<std::mutex> lock(mu_);
  none_in_flight_.wait(lock, [&] { return in_flight_.empty(); });
}

void ChainHops::CancelAll() {
  std::lock_guard<std::mutex> lock(mu_);
  for (Call* c : in_flight_) c->context.TryCancel();
}

void ChainHops::Send(const v1::ChainForwardRequest& upstream, v1::ForwardRequest forward,
                     std::chrono::system_clock::time_point deadline,
                     std::function<void(v1::ChainResult)> on_failure) {
  const std::string& next = upstream.route(0);
  absl::StatusOr<std::shared_ptr<v1::Stage::Stub>> stub = peers_.Get(next);
  if (!stub.ok()) {
    on_failure(HopFailure(upstream.step_id(), ToGrpcStatus(stub.status()), next));
    return;
  }
  auto call = std::make_unique<Call>();
  call->stub = *stub;
  *call->request.mutable_forward() = std::move(forward);
  call->request.mutable_route()->CopyFrom(upstream.route());
  call->request.mutable_route()->erase(call->request.mutable_route()->begin());
  call->request.set_step_id(upstream.step_id());
  call->request.set_results_stream(upstream.results_stream());
  const auto now = std::chrono::system_clock::now();
  const auto margin =
      std::max<std::chrono::system_clock::duration>(kMinHopMargin, (deadline - now) / 4);
  call->context.set_deadline(std::max(now, deadline - margin));
  Call* raw = call.release();
  {
    std::lock_guard<std::mutex> lock(mu_);
    in_flight_.insert(raw);
  }
  raw->stub->async()->ChainForward(
      &raw->context, &raw->request, &raw->ack,
      [this, raw, next, on_failure = std::move(on_failure)](grpc::Status status) {
        if (!status.ok()) on_failure(HopFailure(raw->request.step_id(), status, next));
        std::lock_guard<std::mutex> lock(mu_);
        in_flight_.erase(raw);
        delete raw;
        if (in_flight_.empty()) none_in_flight_.notify_all();
      });
}

}  // namespace shardlm
