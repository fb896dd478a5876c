#include "coordinator/front_door.h"

#include <utility>

#include "common/base/field_error.h"

namespace shardlm {

FrontDoor::FrontDoor(Engine* engine, const Tokenizer* tokenizer, std::string chat_template)
    : engine_(engine), tokenizer_(tokenizer), chat_template_(std::move(chat_template)) {}

FrontDoor::~FrontDoor() {
  arena_.execute([this] { tasks_.wait(); });
}

absl::StatusOr<uint64_t> FrontDoor::Submit(ClientRequest request,
                                           std::shared_ptr<GenerationObserver> observer) const {
  const std::string field = request.prompt_field;
  absl::StatusOr<GenerationRequest> built =
      BuildGenerationRequest(*tokenizer_, chat_template_, std::move(request));
  if (!built.ok()) return built.status();
  absl::StatusOr<uint64_t> id = engine_->Submit(*std::move(built), std::move(observer));
  // The engine names the sampling field it refuses; its other
  // INVALID_ARGUMENTs are about the prompt, which only we know the
  // request's name of.
  if (!id.ok() && absl::IsInvalidArgument(id.status())) return WithField(id.status(), field);
  return id;
}

void FrontDoor::SubmitAsync(ClientRequest request, std::shared_ptr<GenerationObserver> observer,
                            std::function<void(absl::StatusOr<uint64_t>)> done) {
  Run([this, request = std::move(request), observer = std::move(observer),
       done = std::move(done)]() mutable {
    done(Submit(std::move(request), std::move(observer)));
  });
}

void FrontDoor::Run(std::function<void()> task) {
  // enqueue never blocks the caller (execute() could, with the arena full);
  // the task belongs to tasks_ so that the destructor can wait for it.
  arena_.enqueue(tasks_.defer(std::move(task)));
}

}  // namespace shardlm
