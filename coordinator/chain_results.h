// The coordinator's side of the chain topology's results: one long-lived
// Stage.Results stream to each last-stage replica it uses, on which that
// worker writes the logits of every chained step that ends there, matched
// to the waiting step by step id. A ChainStep is what one waiting step
// holds: the first of result or failure wins. When a stream ends (worker
// gone, cancelled), every step still waiting on it fails UNAVAILABLE
// naming the worker; the chain opens a new stream for the next step.
#ifndef SHARDLM_COORDINATOR_CHAIN_RESULTS_H_
#define SHARDLM_COORDINATOR_CHAIN_RESULTS_H_

#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "shardlm/v1/stage.grpc.pb.h"

namespace shardlm {

class ChainStep {
 public:
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
  mutable std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  bool acked_ = false;
  absl::Status status_;
  int failed_range_ = -1;
  v1::ForwardResponse response_;
};

class ResultsStream final : public grpc::ClientReadReactor<v1::ChainResult> {
 public:
  // Opens the stream to the worker behind `stub` (named `name`, serving
  // range `range`) and waits, at most `timeout`, until the worker confirms
  // it is registered. UNIMPLEMENTED workers are told to upgrade.
  static absl::StatusOr<std::shared_ptr<ResultsStream>> Open(
      v1::Stage::Stub* stub, std::shared_ptr<grpc::Channel> channel, std::string name, int range,
      absl::Duration timeout);
  ~ResultsStream() override;  // Close()

  uint64_t id() const { return id_; }
  bool alive() const;
  // Registers a step waiting for its result; false if the stream has ended.
  bool Expect(uint64_t step_id, std::shared_ptr<ChainStep> step);
  void Forget(uint64_t step_id);
  // Cancels the stream and waits until gRPC is done with it.
  void Close();

  void OnReadInitialMetadataDone(bool ok) override;
  void OnReadDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  ResultsStream(std::shared_ptr<grpc::Channel> channel, std::string name, int range, uint64_t id);

  const std::shared_ptr<grpc::Channel> channel_;  // outlives the call
  const std::string name_;
  const int range_;
  const uint64_t id_;
  grpc::ClientContext context_;
  v1::ResultsRequest request_;
  v1::ChainResult message_;

  mutable std::mutex mu_;  // guards the fields below
  std::condition_variable cv_;
  bool registered_ = false;
  bool done_ = false;
  absl::Status end_;
  std::map<uint64_t, std::shared_ptr<ChainStep>> waiting_;
};

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_CHAIN_RESULTS_H_
