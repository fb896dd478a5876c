#include "coordinator/pipeline.h"

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace shardlm {

absl::StatusOr<std::unique_ptr<Pipeline>> Pipeline::Create(
    std::vector<std::shared_ptr<Stage>> stages) {
  if (stages.empty()) return absl::InvalidArgumentError("a pipeline needs at least one stage");
  const ShardInfo& first = stages.front()->info();
  int expected = 0;
  for (size_t i = 0; i < stages.size(); ++i) {
    const ShardInfo& s = stages[i]->info();
    const std::string who = absl::StrCat("stage ", i, " (layers ", s.first_layer, ":", s.last_layer, ")");
    if (s.fingerprint != first.fingerprint || s.n_layer != first.n_layer) {
      return absl::FailedPreconditionError(absl::StrCat(
          who, " serves a different model (fingerprint ", s.fingerprint, ", ", s.n_layer,
          " layers) than stage 0 (fingerprint ", first.fingerprint, ", ", first.n_layer, " layers)"));
    }
    if (s.first_layer > expected) {
      return absl::FailedPreconditionError(absl::StrCat("layers ", expected, ":", s.first_layer,
                                                        " are served by no stage (gap before ", who, ")"));
    }
    if (s.first_layer < expected) {
      return absl::FailedPreconditionError(absl::StrCat("layers ", s.first_layer, ":", expected,
                                                        " are served twice (", who,
                                                        " overlaps the stage before it)"));
    }
    expected = s.last_layer;
  }
  if (expected != first.n_layer) {
    return absl::FailedPreconditionError(absl::StrCat("layers ", expected, ":", first.n_layer,
                                                      " are served by no stage (the last stage "
                                                      "ends at layer ", expected, ")"));
  }
  return std::unique_ptr<Pipeline>(new Pipeline(std::move(stages)));
}

absl::Status Pipeline::Forward(const ForwardRequest& request, ForwardResult* result) {
  if (stages_.size() == 1) return stages_[0]->Forward(request, result);
  RETURN_IF_ERROR(stages_[0]->Forward(request, &mid_));
  hop_.seq_ids = request.seq_ids;
  hop_.positions = request.positions;
  hop_.want_logits = request.want_logits;
  hop_.tokens.clear();
  for (size_t i = 1; i < stages_.size(); ++i) {
    hop_.hidden.swap(mid_.hidden);
    ForwardResult* out = i + 1 == stages_.size() ? result : &mid_;
    RETURN_IF_ERROR(stages_[i]->Forward(hop_, out));
  }
  return absl::OkStatus();
}

absl::Status Pipeline::Release(SeqId seq) {
  absl::Status first_error;
  for (auto& s : stages_) {
    absl::Status st = s->Release(seq);
    if (!st.ok() && first_error.ok()) first_error = st;
  }
  return first_error;
}

}  // namespace shardlm
