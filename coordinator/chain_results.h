// The coordinator's side of the chain topology's results: one long-lived
// Stage.Results stream to each worker, on which the last stage of a step
// writes its logits and any stage writes the failure of its next hop,
// matched to the waiting step by step id (ChainSteps). A ChainStep is what
// one waiting step holds: the first of result or failure wins. When a
// stream ends (worker gone, cancelled), every waiting step routed through
// that worker fails UNAVAILABLE naming it; the chain opens a new stream for
// the next step.
#ifndef SHARDLM_COORDINATOR_CHAIN_RESULTS_H_
#define SHARDLM_COORDINATOR_CHAIN_RESULTS_H_

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "coordinator/pipeline.h"
#include "shardlm/v1/stage.grpc.pb.h"

namespace shardlm {

class ChainStep {
 public:
  // `names`: the stage of each range on the step's route (for messages).
  ChainStep(Route route, std::vector<std::string> names)
      : route_(std::move(route)), names_(std::move(names)) {}
  const Route& route() const { return route_; }
  const std::string& name(int range) const { return names_[range]; }
  int n_ranges() const { return static_cast<int>(names_.size()); }

  // The last stage's reply arrived.
  void Complete(v1::ForwardResponse response);
  // The range that failed and why.
  void Fail(int range, absl::Status status);
  // The first stage acknowledged the whole chain (the result may still be
  // on its way).
  void NoteAcked();
  // Waits until completed or failed, at most until `deadline`; false on timeout.
  bool Wait(absl::Time deadline);

  // After Wait returned true (or under no concurrent writer).
  bool ok() const { return status_.ok(); }
  const absl::Status& status() const { return status_; }
  int failed_range() const { return failed_range_; }
  v1::ForwardResponse& response() { return response_; }
  bool acked() const;

 private:
  const Route route_;
  const std::vector<std::string> names_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  bool acked_ = false;
  absl::Status status_;
  int failed_range_ = -1;
  v1::ForwardResponse response_;
};

// The steps waiting for an answer, by id.
class ChainSteps {
 public:
  void Add(uint64_t id, std::shared_ptr<ChainStep> step);
  void Remove(uint64_t id);
  std::shared_ptr<ChainStep> Find(uint64_t id) const;
  // Fails every step whose route uses `replica` of `range`.
  void FailThrough(int range, int replica, const absl::Status& status);

 private:
  mutable std::mutex mu_;
  std::map<uint64_t, std::shared_ptr<ChainStep>> steps_;
};

class ResultsStream final : public grpc::ClientReadReactor<v1::ChainResult> {
 public:
  // Opens stream `id` to the worker behind `stub` (named `name`, replica
  // `replica` of range `range`), delivering to `steps` (which must outlive
  // the stream), and waits, at most `timeout`, until the worker confirms it
  // is registered. A worker without the RPC is named as too old.
  static absl::StatusOr<std::shared_ptr<ResultsStream>> Open(
      v1::Stage::Stub* stub, std::shared_ptr<grpc::Channel> channel, std::string name, int range,
      int replica, uint64_t id, ChainSteps* steps, absl::Duration timeout);
  ~ResultsStream() override;  // Close()

  uint64_t id() const { return id_; }
  bool alive() const;
  // Cancels the stream and waits until gRPC is done with it.
  void Close();

  void OnReadInitialMetadataDone(bool ok) override;
  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  ResultsStream(std::shared_ptr<grpc::Channel> channel, std::string name, int range, int replica,
                uint64_t id, ChainSteps* steps);

  const std::shared_ptr<grpc::Channel> channel_;  // outlives the call
  const std::string name_;
  const int range_;
  const int replica_;
  const uint64_t id_;
  ChainSteps* const steps_;
  grpc::ClientContext context_;
  v1::ResultsRequest request_;
  v1::ChainResult message_;

  mutable std::mutex mu_;  // guards the fields below
  std::condition_variable cv_;
  bool registered_ = false;
  bool done_ = false;
  absl::Status end_;
};

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_CHAIN_RESULTS_H_
