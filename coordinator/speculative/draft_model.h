// Draft-model speculation (--draft-model FILE.gguf --spec-draft K): a small
// model of the same vocabulary proposes K tokens greedily, which the served
// model then verifies in one pipeline pass (acceptance.h; greedy drafts
// make the drafter's q a point mass at its argmax).
//
// The draft runs as one whole-model Stage on the coordinator's machine.
// This library never computes a layer (the layering of
// docs/ARCHITECTURE.md): the binary that has the compute (`shardlm serve`)
// opens the stage and hands it in. The draft keeps its own KV per sequence
// and follows each sequence's accepted tokens: a step sends the tokens it
// has not seen yet from the first one that differs from what it computed
// before (the stage rewinds its KV there, dropping rejected drafts).
#ifndef SHARDLM_COORDINATOR_SPECULATIVE_DRAFT_MODEL_H_
#define SHARDLM_COORDINATOR_SPECULATIVE_DRAFT_MODEL_H_

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/stage/stage.h"
#include "common/tokenizer/tokenizer.h"

namespace shardlm {

// INVALID_ARGUMENT naming both files unless the two vocabularies have the
// same size and the same token texts, id by id.
absl::Status CheckSameVocabulary(const Tokenizer& draft, const std::string& draft_path,
                                 const Tokenizer& target, const std::string& target_path);

class DraftModel {
 public:
  // `stage` must serve a whole model (embedding to output head).
  static absl::StatusOr<std::unique_ptr<DraftModel>> Create(std::shared_ptr<Stage> stage);

  // Up to `k` greedy draft tokens continuing `tokens` (the sequence's
  // prompt and accepted tokens). Calls for one sequence come from one
  // thread at a time; different sequences may be drafted concurrently.
  absl::StatusOr<std::vector<int32_t>> Propose(SeqId seq, absl::Span<const int32_t> tokens, int k);
  // Frees the sequence's KV on the draft stage (unknown sequences: no-op).
  void Release(SeqId seq);

  const Stage& stage() const { return *stage_; }

 private:
  explicit DraftModel(std::shared_ptr<Stage> stage) : stage_(std::move(stage)) {}
  // Runs tokens[from..] of `fed` at their positions; the argmax of the last one's logits.
  absl::StatusOr<int32_t> Step(SeqId seq, absl::Span<const int32_t> fed, int from);

  std::shared_ptr<Stage> stage_;
  std::mutex mu_;  // guards fed_ (the map; each entry belongs to its sequence's thread)
  // Per sequence: the tokens whose KV the draft stage holds, in order.
  absl::flat_hash_map<SeqId, std::shared_ptr<std::vector<int32_t>>> fed_;
};

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_SPECULATIVE_DRAFT_MODEL_H_
