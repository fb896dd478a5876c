// The one way in to the Engine for every public API (gRPC ShardLM, the
// OpenAI HTTP API, the CLI): build the engine request from what the client
// sent (request_builder.h), submit it with the front end's observer
// (usually a TokenStream), and report a refusal as one absl::Status that
// names the offending field. Front ends only parse their wire format and
// format the events; each converts the status once, at its edge.
#ifndef SHARDLM_COORDINATOR_FRONT_DOOR_H_
#define SHARDLM_COORDINATOR_FRONT_DOOR_H_

#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/tokenizer/tokenizer.h"
#include "coordinator/engine.h"
#include "coordinator/request_builder.h"

namespace shardlm {

class FrontDoor {
 public:
  // `engine` and `tokenizer` must outlive the front door. `chat_template`
  // is the server's default for chats (a family name or the model's Jinja
  // text; empty: none).
  FrontDoor(Engine* engine, const Tokenizer* tokenizer, std::string chat_template);
  // Waits for the submissions still being built.
  ~FrontDoor();

  // Builds the request and submits it; returns the engine's id for Cancel.
  // Runs on the caller's thread: for callers that may block (an HTTP
  // connection thread, the CLI).
  absl::StatusOr<uint64_t> Submit(ClientRequest request,
                                  std::shared_ptr<GenerationObserver> observer) const;
  // The same on a oneTBB task, for callers that must return at once (gRPC
  // reactions: tokenizing a 1 MiB prompt takes milliseconds). `done` runs
  // once, on that task, with what Submit would have returned.
  void SubmitAsync(ClientRequest request, std::shared_ptr<GenerationObserver> observer,
                   std::function<void(absl::StatusOr<uint64_t>)> done);
  // Runs `task` on a oneTBB task (other work a handler must not do inline,
  // e.g. Tokenize); the destructor waits for it.
  void Run(std::function<void()> task);
  // Ends a submitted request (the observer sees kCancelled).
  void Cancel(uint64_t id) const { engine_->Cancel(id); }

  Engine& engine() const { return *engine_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  // The server's default chat template (see the constructor).
  const std::string& chat_template() const { return chat_template_; }

 private:
  Engine* engine_;
  const Tokenizer* tokenizer_;
  const std::string chat_template_;
  tbb::task_arena arena_;
  tbb::task_group tasks_;  // run in arena_
};

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_FRONT_DOOR_H_
