// One streaming Generate or Chat call: a gRPC write reactor fed by a
// TokenStream, one write in flight at a time. The request is built and
// submitted off the gRPC thread (FrontDoor::SubmitAsync); a client that
// goes away cancels it, which frees its KV on every stage.
//
// Lifetime: the call owns itself through `self_` until OnDone; the build
// task and each engine callback (through a weak_ptr) hold it while they
// run, so whichever finishes last deletes it — no lock is held across
// StartWrite/Finish, where gRPC may run a reaction on the same thread.
#ifndef SHARDLM_COORDINATOR_GENERATE_CALL_H_
#define SHARDLM_COORDINATOR_GENERATE_CALL_H_

#include <deque>
#include <memory>
#include <mutex>

#include "absl/status/status.h"
#include "coordinator/front_door.h"
#include "coordinator/token_stream.h"
#include "shardlm/v1/shardlm.grpc.pb.h"

namespace shardlm {

class GenerateCall : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  // Submits `request` through `door`; the call streams its tokens, or
  // finishes with the refusal.
  static GenerateCall* Start(FrontDoor* door, ClientRequest request);
  // A call that finishes at once with `refusal` (e.g. UNAUTHENTICATED).
  static GenerateCall* Refuse(const absl::Status& refusal);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  explicit GenerateCall(FrontDoor* door) : door_(door) {}
  static std::shared_ptr<GenerateCall> Create(FrontDoor* door);
  // The build task's result: the engine's id, or the refusal to finish with.
  void Submitted(absl::StatusOr<uint64_t> id);
  // Starts the next write, or finishes the call when everything is written.
  void Pump();
  // Moves the stream's events into pending_ as messages (mu_ held).
  void DrainLocked();

  FrontDoor* door_;
  std::shared_ptr<GenerateCall> self_;  // gRPC's reference, dropped in OnDone
  std::shared_ptr<TokenStream> stream_;

  std::mutex mu_;
  std::deque<v1::GenerateResponse> pending_;  // guarded by mu_
  uint64_t request_id_ = 0;                   // guarded by mu_; 0 until submitted
  bool cancelled_ = false;                    // guarded by mu_: the client left
  bool ended_ = false;                        // guarded by mu_: the engine's last event is in
  bool writing_ = false;                      // guarded by mu_
  bool finished_ = false;                     // guarded by mu_: Finish was called
  grpc::Status final_status_;                 // guarded by mu_
  v1::GenerateResponse current_;              // the message being written
};

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_GENERATE_CALL_H_
