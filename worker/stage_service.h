// The shardlm.v1.Stage gRPC service over any Stage (callback API).
//
// Handlers do only O(1) work on gRPC's callback threads: the readiness,
// protocol, fingerprint and batch-size checks, then hand the call to the
// ComputeQueue and return. The queue's thread decodes (straight into reused
// buffers), validates every size a peer controls, runs the stage, encodes
// the answer and finishes the reactor. GetShardInfo is answered inline from
// state the compute thread keeps current, so status probes never wait
// behind a long prefill.
//
// The service exists before the model is loaded: the server listens at once
// (health NOT_SERVING, Forward UNAVAILABLE "still loading") and the stage is
// plugged in with SetStage when it is loaded and checked.
#ifndef SHARDLM_WORKER_STAGE_SERVICE_H_
#define SHARDLM_WORKER_STAGE_SERVICE_H_

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/rpc/grpc_settings.h"
#include "shardlm/v1/stage.grpc.pb.h"
#include "worker/compute_queue.h"
#include "common/stage/forward_codec.h"
#include "common/stage/stage.h"
#include "worker/chain_hop.h"
#include "worker/peer_pool.h"
#include "worker/results_streams.h"

namespace shardlm {

struct StageServiceOptions {
  int max_batch_tokens = kDefaultMaxBatchTokens;  // tokens per Forward call
  int max_queued_calls = 64;                      // beyond: RESOURCE_EXHAUSTED "busy"
  int max_release_ids = kMaxReleaseIds;           // sequence ids per Release call
  std::string address;                            // reported in ShardInfo.address
  int64_t max_message_bytes = kMaxMessageBytes;   // logits beyond are refused before computing
  // The client side of worker-to-worker hops (--topology chain): TLS
  // credentials (null: plaintext), pool size and idle time (peer_pool.h).
  PeerPoolOptions peers;
};

// What the service reports about the loaded stage besides Stage::info().
struct StageDetails {
  std::string model_name;
  int64_t weight_bytes = 0;
};

class ForwardMessagePool;

class StageService final : public v1::Stage::CallbackService {
 public:
  explicit StageService(StageServiceOptions options);
  ~StageService() override;

  // Plugs in the loaded and checked stage; call once. Until then Forward
  // answers UNAVAILABLE and GetShardInfo says ready = false.
  void SetStage(std::shared_ptr<Stage> stage, StageDetails details);
  bool ready() const { return ready_.load(std::memory_order_acquire); }
  void set_address(std::string address);
  // Shutdown, step 1: Forward and Release calls arriving from now on get
  // UNAVAILABLE "shutting down"; GetShardInfo still answers.
  void StartDraining();
  // Step 2: waits until no Forward / Release is queued or running, at most
  // until `deadline`; true if idle.
  bool WaitIdle(absl::Time deadline);
  // Step 3: runs the calls still queued, then refuses new ones. Call after
  // grpc::Server::Shutdown and before destroying the service.
  void StopCompute();

  // The handlers' logic, synchronous, on the calling thread (the reactors
  // run these on the compute thread; tests and the fuzzer call them
  // directly). Calls are serialized. HandleForward takes a request that
  // passed CheckForwardHeader (the Forward reactor checks it on the gRPC
  // thread, so a mismatched peer never queues behind real work); the stage
  // validates the batch itself.
  absl::Status HandleForward(const v1::ForwardRequest& request, v1::ForwardResponse* response);
  // Both replies carry the KV use after the call (the coordinator's metrics).
  absl::Status HandleRelease(const v1::ReleaseRequest& request,
                             v1::ReleaseResponse* response = nullptr);
  absl::Status HandleFork(const v1::ForkRequest& request);
  void FillShardInfo(v1::ShardInfo* info) const;

  // gRPC entry points.
  grpc::ServerUnaryReactor* Forward(grpc::CallbackServerContext* context,
                                    const v1::ForwardRequest* request,
                                    v1::ForwardResponse* response) override;
  grpc::ServerUnaryReactor* Release(grpc::CallbackServerContext* context,
                                    const v1::ReleaseRequest* request,
                                    v1::ReleaseResponse* response) override;
  grpc::ServerUnaryReactor* Fork(grpc::CallbackServerContext* context,
                                 const v1::ForkRequest* request,
                                 v1::ForkResponse* response) override;
  grpc::ServerUnaryReactor* GetShardInfo(grpc::CallbackServerContext* context,
                                         const v1::GetShardInfoRequest* request,
                                         v1::ShardInfo* response) override;
  // Chain topology: computes like Forward, then hands the output to the
  // next stage of the route (ChainHops) or, on the last stage, to the
  // coordinator's results stream, and acknowledges. A failed next hop is
  // reported on this worker's results stream of the same id.
  grpc::ServerUnaryReactor* ChainForward(grpc::CallbackServerContext* context,
                                         const v1::ChainForwardRequest* request,
                                         v1::ChainForwardAck* ack) override;
  grpc::ServerWriteReactor<v1::ChainResult>* Results(grpc::CallbackServerContext* context,
                                                     const v1::ResultsRequest* request) override;
  // Shutdown: cancels the worker-to-worker hops in flight, so the calls
  // waiting on them finish (call before grpc::Server::Shutdown).
  void CancelHops() { hops_.CancelAll(); }

 private:
  // Queues `work` (which returns the call's status) on the compute thread,
  // unless the call was cancelled or its deadline passed by then.
  void RunOnComputeThread(grpc::CallbackServerContext* context, grpc::ServerUnaryReactor* reactor,
                          std::function<absl::Status()> work);
  // The same for work that finishes `reactor` itself (possibly later).
  void QueueOnComputeThread(grpc::CallbackServerContext* context, grpc::ServerUnaryReactor* reactor,
                            std::function<void()> work);
  // The compute-thread part of ChainForward.
  void HandleChainForward(grpc::CallbackServerContext* context,
                          const v1::ChainForwardRequest& request,
                          grpc::ServerUnaryReactor* reactor);
  // Snapshots the stage's KV use into kv_ and returns it.
  KvStats RefreshKvStats();

  const StageServiceOptions options_;
  std::unique_ptr<ForwardMessagePool> pool_;

  // Written once by SetStage before ready_ is set, read-only afterwards.
  std::atomic<bool> ready_{false};
  std::shared_ptr<Stage> stage_;
  ShardInfo info_;
  StageDetails details_;

  mutable std::mutex state_mu_;  // guards the fields below
  std::string address_;
  KvStats kv_;  // as of the last Forward / Release
  bool draining_ = false;
  int in_flight_ = 0;  // Forward / Release calls queued or running
  std::condition_variable idle_cv_;

  // Scratch of HandleForward, reused so a warm decode step allocates
  // nothing: the converted request and the stage's result.
  std::mutex compute_mu_;
  ForwardRequest request_;
  ForwardResult result_;

  // Chain topology: the coordinators' results streams (last stage) and the
  // hops to next stages. Declared before queue_: they outlive its thread.
  ResultsStreams results_;
  ChainHops hops_;
  std::mutex chain_mu_;                  // guards chain_response_
  v1::ForwardResponse chain_response_;  // HandleChainForward's scratch

  ComputeQueue queue_;  // last: its thread stops first
};

}  // namespace shardlm

#endif  // SHARDLM_WORKER_STAGE_SERVICE_H_
