#include "common/stage/batch_validation.h"

#include <cmath>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace shardlm {

absl::Status CheckBatchShape(const ForwardRequest& r, const ShardInfo& info) {
  const size_t n = r.n_tokens();
  if (n == 0) return absl::InvalidArgumentError("seq_ids: empty batch");
  if (r.positions.size() != n) {
    return absl::InvalidArgumentError(
        absl::StrCat("positions: ", r.positions.size(), " entries for ", n, " sequence ids"));
  }
  if (info.is_first()) {
    if (r.tokens.size() != n) {
      return absl::InvalidArgumentError(
          absl::StrCat("tokens: ", r.tokens.size(), " token ids for ", n,
                       " sequence ids (this stage serves layer 0 and takes token ids)"));
    }
    if (!r.hidden.empty()) {
      return absl::InvalidArgumentError(
          "hidden: the first stage takes token ids, not hidden states");
    }
  } else {
    if (!r.tokens.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("tokens: this stage starts at layer ",
                                                     info.first_layer,
                                                     " and takes hidden states, not token ids"));
    }
    if (r.hidden.size() != n * info.n_embd) {
      return absl::InvalidArgumentError(absl::StrCat("hidden: ", r.hidden.size(), " floats for ",
                                                     n, " tokens x ", info.n_embd));
    }
  }
  if (!r.want_logits.empty() && r.want_logits.size() != n) {
    return absl::InvalidArgumentError(absl::StrCat("want_logits: ", r.want_logits.size(),
                                                   " flags for ", n,
                                                   " tokens (want 0 or one per token)"));
  }
  return absl::OkStatus();
}

absl::Status ValidateBatch(const ForwardRequest& r, const ShardInfo& info,
                           std::vector<SequenceRun>* runs) {
  if (absl::Status st = CheckBatchShape(r, info); !st.ok()) return st;
  const size_t n = r.n_tokens();
  if (info.is_first()) {
    for (size_t i = 0; i < n; ++i) {
      if (r.tokens[i] < 0 || r.tokens[i] >= info.n_vocab) {
        return absl::InvalidArgumentError(absl::StrCat("tokens[", i, "] = ", r.tokens[i],
                                                       " is outside the vocabulary [0, ",
                                                       info.n_vocab, ")"));
      }
    }
  } else {
    for (float f : r.hidden) {
      if (!std::isfinite(f)) return absl::InvalidArgumentError("hidden: values are not finite");
    }
  }
  runs->clear();
  absl::flat_hash_set<SeqId> seen;
  for (size_t i = 0; i < n; ++i) {
    const int32_t p = r.positions[i];
    if (p < 0 || p >= info.n_ctx) {
      return absl::InvalidArgumentError(absl::StrCat(
          "positions[", i, "] = ", p, " is outside the context [0, ", info.n_ctx, ")"));
    }
    if (!runs->empty() && runs->back().seq == r.seq_ids[i]) {
      SequenceRun& run = runs->back();
      if (p != run.start_pos + run.count) {
        return absl::InvalidArgumentError(absl::StrCat("positions[", i, "] = ", p,
                                                       " does not continue sequence ", run.seq,
                                                       " (previous position ",
                                                       run.start_pos + run.count - 1, ")"));
      }
      ++run.count;
      continue;
    }
    // A sequence's tokens form one run: the stage appends each run to its
    // cache once, so a second run would see half a step's keys.
    if (!seen.insert(r.seq_ids[i]).second) {
      return absl::InvalidArgumentError(absl::StrCat(
          "seq_ids[", i, "]: sequence ", r.seq_ids[i], " appears in two separate runs of the batch"));
    }
    runs->push_back(SequenceRun{r.seq_ids[i], static_cast<int>(i), 1, p});
  }
  return absl::OkStatus();
}

}  // namespace shardlm
