// One streaming Generate or Chat call: a gRPC write reactor fed by a
// TokenStream, one write in flight at a time. The request is built and
// submitted off the gRPC thread (FrontDoor::SubmitAsync); a client that
// goes away cancels it, which frees its KV on every stage.
//
// Lifetime: the call owns itself through `self_` until OnDone; the build
// task and each engine callback (through a weak_ptr) hold it while they
// run, so whichever finishes last deletes it — no lock is held across
// StartWrite/Finish, where gRPC may run a reaction on the same thread.
//
// Bounds (a client that never reads must not cost unbounded memory): at
// most `max_unread_chunks` chunks wait for the client; past that the
// request is cancelled (its KV freed) and the stream ends with
// RESOURCE_EXHAUSTED. Pausing the sequence instead would hold a decode slot
// and KV on every stage for a client that may never come back. And a
// stream lives at most `max_lifetime`: then the engine ends it
// (DEADLINE_EXCEEDED) and, if a write is still stuck in flow control, the
// call is cancelled (RST_STREAM) so its memory is released.
#ifndef SHARDLM_COORDINATOR_GENERATE_CALL_H_
#define SHARDLM_COORDINATOR_GENERATE_CALL_H_

#include <grpcpp/alarm.h>

#include <deque>
#include <memory>
#include <mutex>

#include "absl/status/status.h"
#include "coordinator/front_door.h"
#include "coordinator/token_stream.h"
#include "shardlm/v1/shardlm.grpc.pb.h"

namespace shardlm {

struct StreamLimits {
  size_t max_unread_chunks = 256;
  absl::Duration max_lifetime = absl::Minutes(30);
};

class GenerateCall : public grpc::ServerWriteReactor<v1::GenerateResponse> {
 public:
  // Submits `request` through `door`; the call streams its tokens, or
  // finishes with the refusal.
  // `context` must be the call's (it is cancelled at max_lifetime).
  static GenerateCall* Start(FrontDoor* door, ClientRequest request,
                             grpc::CallbackServerContext* context,
                             const StreamLimits& limits = StreamLimits());
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
  // max_lifetime passed: cancel the call if it has not finished.
  void LifetimeOver();
  // Finish (once finished_ is set), or leave it to LifetimeOver while it is
  // cancelling the call.
  void FinishOrDefer(grpc::Status status);


  FrontDoor* door_;
  std::shared_ptr<GenerateCall> self_;  // gRPC's reference, dropped in OnDone
  std::shared_ptr<TokenStream> stream_;
  grpc::CallbackServerContext* context_ = nullptr;
  grpc::Alarm lifetime_alarm_;  // fires LifetimeOver; cancelled when destroyed

  std::mutex mu_;
  std::deque<v1::GenerateResponse> pending_;  // guarded by mu_
  uint64_t request_id_ = 0;                   // guarded by mu_; 0 until submitted
  bool cancelled_ = false;                    // guarded by mu_: the client left
  bool ended_ = false;                        // guarded by mu_: the engine's last event is in
  bool writing_ = false;                      // guarded by mu_
  bool finished_ = false;                     // guarded by mu_: Finish was called
  bool overflowed_ = false;                   // guarded by mu_: the client fell too far behind
  bool cancelling_ = false;                   // guarded by mu_: LifetimeOver is in TryCancel
  bool finish_deferred_ = false;              // guarded by mu_: Finish waits for it
  grpc::Status deferred_status_;              // guarded by mu_
  grpc::Status final_status_;                 // guarded by mu_
  v1::GenerateResponse current_;              // the message being written
};

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_GENERATE_CALL_H_
