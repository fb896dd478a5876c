#include "coordinator/speculative/draft_model.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace shardlm {

absl::Status CheckSameVocabulary(const Tokenizer& draft, const std::string& draft_path,
                                 const Tokenizer& target, const std::string& target_path) {
  const std::string both = absl::StrCat("--draft-model ", draft_path, " and --model ", target_path);
  if (draft.n_vocab() != target.n_vocab()) {
    return absl::InvalidArgumentError(absl::StrCat(
        both, " have different vocabularies: ", draft.n_vocab(), " vs ", target.n_vocab(),
        " tokens (a draft model must share the "
        "served model's tokenizer)"));
  }
  for (int32_t id = 0; id < target.n_vocab(); ++id) {
    if (draft.TokenText(id) != target.TokenText(id)) {
      return absl::InvalidArgumentError(absl::StrCat(
          both, " have different vocabularies: token ", id, " is '", draft.TokenText(id), "' vs '",
          target.TokenText(id), "' (a draft model must share the served model's tokenizer)"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<DraftModel>> DraftModel::Create(std::shared_ptr<Stage> stage) {
  const ShardInfo& info = stage->info();
  if (!info.is_first() || !info.is_last()) {
    return absl::InvalidArgumentError(absl::StrCat("draft model: the stage serves layers ",
                                                   info.first_layer, ":", info.last_layer, " of ",
                                                   info.n_layer, "; a draft runs the whole model"));
  }
  return std::unique_ptr<DraftModel>(new DraftModel(std::move(stage)));
}

absl::StatusOr<int32_t> DraftModel::Step(SeqId seq, absl::Span<const int32_t> fed, int from) {
  ForwardRequest req;
  for (int i = from; i < static_cast<int>(fed.size()); ++i) {
    req.seq_ids.push_back(seq);
    req.positions.push_back(i);
    req.tokens.push_back(fed[i]);
  }
  ForwardResult result;
  if (absl::Status st = stage_->Forward(req, &result); !st.ok()) {
    return absl::Status(st.code(), absl::StrCat("draft model: ", st.message()));
  }
  const int n_vocab = stage_->info().n_vocab;
  if (result.logits.size() != static_cast<size_t>(n_vocab)) {
    return absl::InternalError("draft model: no logits row for the last token");
  }
  return static_cast<int32_t>(std::max_element(result.logits.begin(), result.logits.end()) -
                              result.logits.begin());
}

absl::StatusOr<std::vector<int32_t>> DraftModel::Propose(SeqId seq,
                                                         absl::Span<const int32_t> tokens, int k) {
  std::vector<int32_t> draft;
  const int n_ctx = stage_->info().n_ctx;
  k = std::min(k, n_ctx - static_cast<int>(tokens.size()));
  if (k <= 0 || tokens.empty()) return draft;
  std::shared_ptr<std::vector<int32_t>> fed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto& slot = fed_[seq];
    if (slot == nullptr) slot = std::make_shared<std::vector<int32_t>>();
    fed = slot;
  }
  // Keep what the draft computed for the common prefix; recompute from the
  // first difference (a rejected draft, or nothing yet). The last token is
  // always sent again: its logits give the first draft token.
  size_t common = 0;
  while (common < fed->size() && common < tokens.size() && (*fed)[common] == tokens[common]) {
    ++common;
  }
  common = std::min(common, tokens.size() - 1);
  fed->assign(tokens.begin(), tokens.end());
  int from = static_cast<int>(common);
  for (int i = 0; i < k; ++i) {
    absl::StatusOr<int32_t> next = Step(seq, *fed, from);
    if (!next.ok()) {
      fed->clear();  // its KV is unknown now: start over next time
      return next.status();
    }
    draft.push_back(*next);
    if (i + 1 == k) break;  // the last draft token's KV is not needed
    from = static_cast<int>(fed->size());
    fed->push_back(*next);
  }
  return draft;
}

void DraftModel::Release(SeqId seq) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (fed_.erase(seq) == 0) return;
  }
  (void)stage_->Release(seq);
}

}  // namespace shardlm
