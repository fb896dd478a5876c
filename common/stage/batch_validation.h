// The one validation of a Stage batch (stage.h ForwardRequest), shared by
// every side that handles one: the worker's wire codec checks a peer's batch
// with it before any stage sees it, LlamaStage checks in-process callers with
// it, and RemoteStage checks the shape of its own batches before encoding.
// Messages name the field and batch index as the wire API spells them
// ("positions[3] = 9000 is outside the context [0, 2048)").
#ifndef SHARDLM_COMMON_STAGE_BATCH_VALIDATION_H_
#define SHARDLM_COMMON_STAGE_BATCH_VALIDATION_H_

#include <vector>

#include "absl/status/status.h"
#include "common/stage/stage.h"

namespace shardlm {

// A run of consecutive batch entries of one sequence: tokens begin ..
// begin + count - 1 of the batch at positions start_pos .. start_pos + count - 1.
struct SequenceRun {
  SeqId seq = 0;
  int begin = 0;
  int count = 0;
  int start_pos = 0;
};

// The sizes only, O(1): a non-empty batch, one position per token, token ids
// for the first stage or n_tokens x n_embd hidden floats for the others,
// want_logits empty or one flag per token. INVALID_ARGUMENT otherwise.
absl::Status CheckBatchShape(const ForwardRequest& request, const ShardInfo& info);

// CheckBatchShape, then the values: positions inside the context, token ids
// inside the vocabulary, finite hidden states, each sequence's tokens one
// run of consecutive positions. Fills `runs` (in batch order). Whether a
// run may start where it does depends on the KV cache: the stage checks that.
absl::Status ValidateBatch(const ForwardRequest& request, const ShardInfo& info,
                           std::vector<SequenceRun>* runs);

}  // namespace shardlm

#endif  // SHARDLM_COMMON_STAGE_BATCH_VALIDATION_H_
