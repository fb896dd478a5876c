// A chain of stages covering layers [0, n_layer): a batch enters the first
// stage as token ids, each stage's hidden states feed the next, and the last
// returns logits. Stages may be in-process (LlamaStage) or remote workers.
#ifndef SHARDLM_COORDINATOR_PIPELINE_H_
#define SHARDLM_COORDINATOR_PIPELINE_H_

#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "worker/stage.h"

namespace shardlm {

class Pipeline {
 public:
  // Checks that the stages' layer ranges are contiguous, cover the model
  // exactly and serve the same model (fingerprint); the error names the gap,
  // the overlap or the mismatched stage.
  static absl::StatusOr<std::unique_ptr<Pipeline>> Create(std::vector<std::shared_ptr<Stage>> stages);

  // Runs `request` (token ids) through every stage; `result` gets logits.
  absl::Status Forward(const ForwardRequest& request, ForwardResult* result);
  // Frees the sequence's KV on every stage (best effort, all stages tried).
  absl::Status Release(SeqId seq);

  const ShardInfo& model() const { return stages_.back()->info(); }
  const std::vector<std::shared_ptr<Stage>>& stages() const { return stages_; }

 private:
  explicit Pipeline(std::vector<std::shared_ptr<Stage>> stages) : stages_(std::move(stages)) {}
  std::vector<std::shared_ptr<Stage>> stages_;
  ForwardRequest hop_;  // reused between stages
  ForwardResult mid_;
};

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_PIPELINE_H_
