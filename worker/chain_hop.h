// One worker-to-worker hop of a chained step (--topology chain): after this
// stage computed a ChainForwardRequest, its hidden states go straight to the
// next stage of the route, and the acknowledgement that comes back is
// turned into this stage's own (a failure of the next stage, or not
// reaching it, becomes "hop 1 failed" with its code and message; a failure
// further down keeps its hop count plus one). The next hop's deadline is
// this call's minus a small margin, so a stuck stage is reported by the one
// before it before the coordinator's own deadline passes.
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

// Fills `ack` for a next hop that answered `status` with `next_ack`.
void AckFromNextHop(const grpc::Status& status, const v1::ChainForwardAck& next_ack,
                    const std::string& next_address, v1::ChainForwardAck* ack);

class ChainHops {
 public:
  explicit ChainHops(PeerPoolOptions options) : peers_(std::move(options)) {}
  ~ChainHops();  // cancels the hops in flight and waits for their callbacks

  // Sends `forward` (this stage's output as the next stage's input) to
  // upstream.route(0) with the rest of the route; `done` gets this stage's
  // acknowledgement once the next hop answered. `deadline`: the upstream
  // call's.
  void Send(const v1::ChainForwardRequest& upstream, v1::ForwardRequest forward,
            std::chrono::system_clock::time_point deadline,
            std::function<void(const v1::ChainForwardAck&)> done);
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
