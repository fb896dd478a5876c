// One streaming Generate call: bridges Engine events (engine thread) to a
// gRPC write reactor (gRPC threads) through a small queue, one write in
// flight at a time. A client that goes away cancels the request, which
// frees its KV on every stage.
#ifndef SHARDLM_COORDINATOR_GENERATE_CALL_H_
#define SHARDLM_COORDINATOR_GENERATE_CALL_H_

#include <atomic>
#include <deque>
#include <memory>
#include <mutex>

#include "coordinator/engine.h"
#include "shardlm/v1/shardlm.grpc.pb.h"

namespace shardlm {

class GenerateCall : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  // Submits `request` to `engine` unless `invalid` is an error already; on a
  // refusal the call finishes at once with that status.
  GenerateCall(Engine* engine, const Tokenizer* tokenizer, GenerationRequest request,
               const grpc::Status& invalid);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  // Receives the engine's events; outlives the call if the engine still
  // holds it, and drops events once the call is gone.
  class Bridge;
  // Starts the next write, or finishes the call when everything is written.
  void Pump();

  Engine* engine_;
  std::shared_ptr<Bridge> bridge_;  // holds the tokenizer (token pieces)
  std::atomic<uint64_t> request_id_{0};  // set once Submit succeeds

  std::mutex mu_;
  std::deque<v1::GenerateResponse> pending_;  // guarded by mu_
  bool writing_ = false;                      // guarded by mu_
  bool engine_done_ = false;                  // guarded by mu_
  bool finished_ = false;                     // guarded by mu_
  grpc::Status final_status_;                 // guarded by mu_
  v1::GenerateResponse current_;              // the message being written
};

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_GENERATE_CALL_H_
