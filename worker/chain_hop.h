// One worker-to-worker hop of a chained step (--topology chain): after this
// stage computed a ChainForwardRequest, its hidden states go straight to the
// next stage of the route. When the next stage refuses the call or cannot be
// reached, the failure is turned into a ChainResult naming hop 1 (with its
// code and message), which the worker writes on its coordinator's results
// stream. The next hop's deadline is this call's minus a margin (a quarter
// of the time left, at least 100 ms), so a stuck stage is reported by the
// one before it before the coordinator's own deadline passes.
#ifndef SHARDLM_WORKER_CHAIN_HOP_H_
#define SHARDLM_WORKER_CHAIN_HOP_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <set>

#include "absl/status/status.h"
#include "shardlm/v1/stage.grpc.pb.h"
#include "worker/peer_pool.h"

namespace shardlm {

// Most stages after the first one a chained request may name.
inline constexpr int kMaxChainHops = 64;

// Checks the route of a chained request against this stage: the last
// stage gets an empty route, every other stage a non-empty one, at most
// kMaxChainHops addresses, each CheckPeerAddress-valid. INVALID_ARGUMENT.
absl::Status CheckChainRoute(const v1::ChainForwardRequest& request, bool is_last_stage);

// The report of a next hop (at `next_address`) that answered `status`
// (not OK) for step `step_id`.
v1::ChainResult HopFailure(uint64_t step_id, const grpc::Status& status,
                           const std::string& next_address);

class ChainHops {
 public:
  explicit ChainHops(PeerPoolOptions options) : peers_(std::move(options)) {}
  ~ChainHops();  // cancels the hops in flight and waits for their callbacks

  // Sends `forward` (this stage's output as the next stage's input) to
  // upstream.route(0) with the rest of the route; `on_failure` gets the
  // report when the next hop fails (not called on success). `deadline`:
  // the upstream call's.
  void Send(const v1::ChainForwardRequest& upstream, v1::ForwardRequest forward,
            std::chrono::system_clock::time_point deadline,
            std::function<void(v1::ChainResult)> on_failure);
  // Cancels every hop in flight (shutdown).
  void CancelAll();
  int peers() const { return peers_.size(); }

 private:
  struct Call;
  PeerPool peers_;
  std::mutex mu_;  // guards in_flight_
  std::set<Call*> in_flight_;
  std::condition_variable none_in_flight_;
};

}  // namespace shardlm

#endif  // SHARDLM_WORKER_CHAIN_HOP_H_
