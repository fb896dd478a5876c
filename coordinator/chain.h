// The chain topology (--topology chain): a step's batch goes to the first
// stage of its route only; every stage sends its hidden states straight to
// the next one (worker-to-worker Stage.ChainForward) and the last writes
// the logits on this coordinator's results stream to it
// (coordinator/chain_results.h). N + 1 messages on a step's critical path
// for N stages instead of relay's 2N.
//
// Each ChainForward is acknowledged by its receiver once its output is on
// the way (off the critical path). A stage that fails answers its caller
// with an error; the caller (the coordinator for the first stage, else the
// previous worker on its own results stream) reports it as the range that
// failed, which Forward returns as a StageFailure of that range's replica on
// the route, so the engine's failover (mark down, re-route, replay) works
// unchanged. A lost results stream fails the steps routed through its
// worker. Steps are matched by id, so micro-batches overlap as in relay;
// one deadline (the stages' call timeout) covers the whole chained step,
// and each hop gives the next a quarter less so a stuck stage is named by
// the one before it.
#ifndef SHARDLM_COORDINATOR_CHAIN_H_
#define SHARDLM_COORDINATOR_CHAIN_H_

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/chain_results.h"
#include "coordinator/pipeline.h"
#include "coordinator/remote_stage.h"

namespace shardlm {

// "relay" or "chain" (--topology); INVALID_ARGUMENT naming both otherwise.
absl::Status CheckTopology(const std::string& topology);

class Chain final : public StepPath {
 public:
  // Over the stages of `pipeline`, which must all be RemoteStages (the
  // error names an in-process stage otherwise); opens a results stream to
  // every worker, so one without chain support is found now. The pipeline must outlive the chain (set_step_path does that).
  static absl::StatusOr<std::unique_ptr<Chain>> Create(const Pipeline& pipeline);
  ~Chain() override;

  absl::Status Forward(const ForwardRequest& request, ForwardResult* result, const Route& route,
                       StageFailure* failure) const override;

 private:
  explicit Chain(std::vector<std::vector<RemoteStage*>> stages);
  // Tokens [begin, end) of `request` as one chained step.
  absl::Status Step(const ForwardRequest& request, size_t begin, size_t end, bool explicit_logits,
                    const Route& route, ForwardResult* result, StageFailure* failure) const;
  // Splits [0, n) into steps whose every message fits the limits.
  void PlanSteps(const ForwardRequest& request, std::vector<size_t>* ends) const;
  // The live results stream to `replica` of `range`, reopened if it ended.
  absl::StatusOr<std::shared_ptr<ResultsStream>> StreamTo(int range, int replica) const;

  const std::vector<std::vector<RemoteStage*>> stages_;  // [range][replica]
  const uint64_t stream_id_;  // random: the id of this chain's stream on every worker
  // Starts at a random value: a forged result cannot guess the next step.
  mutable std::atomic<uint64_t> next_step_;
  mutable ChainSteps steps_;  // before streams_: they deliver into it
  mutable std::mutex mu_;     // guards streams_
  mutable std::vector<std::vector<std::shared_ptr<ResultsStream>>> streams_;  // [range][replica]
};

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_CHAIN_H_
