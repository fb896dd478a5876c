#include "coordinator/grammar/token_constraint.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace shardlm {

int32_t TokenMask::Count() const {
  int32_t n = 0;
  for (uint64_t w : words_) n += __builtin_popcountll(w);
  return n;
}

TokenConstraint::TokenConstraint(GrammarPtr grammar, std::shared_ptr<const VocabTrie> vocab,
                                 bool strip_first_space)
    : vocab_(std::move(vocab)),
      automaton_(std::move(grammar)),
      state_(automaton_.initial()),
      strip_first_space_(strip_first_space),
      scratch_(vocab_->n_vocab()) {}

GrammarAutomaton::StateId TokenConstraint::Feed(GrammarAutomaton::StateId s,
                                                std::string_view bytes) {
  if (StripsSpaceNow() && !bytes.empty() && bytes[0] == ' ') bytes.remove_prefix(1);
  for (char c : bytes) {
    if (s == GrammarAutomaton::kDead) break;
    s = automaton_.Next(s, static_cast<uint8_t>(c));
  }
  return s;
}

// One pass over the trie in depth-first order: walk_states_[d] is the
// automaton's state after the first d bytes of the current node's prefix. A
// dead state skips the node's whole subtree; a live one allows the node's
// token (its bytes keep the output a valid prefix).
void TokenConstraint::Walk(GrammarAutomaton::StateId start, TokenMask* mask) {
  const std::vector<VocabTrie::Node>& nodes = vocab_->nodes();
  walk_states_.resize(vocab_->max_depth() + 1);
  walk_states_[0] = start;
  const bool strip = StripsSpaceNow();
  const uint32_t n = static_cast<uint32_t>(nodes.size());
  for (uint32_t i = 1; i < n;) {
    const VocabTrie::Node& node = nodes[i];
    const GrammarAutomaton::StateId from = walk_states_[node.depth - 1];
    const GrammarAutomaton::StateId to = (strip && node.depth == 1 && node.byte == ' ')
                                             ? from  // the stripped space is not output
                                             : automaton_.Next(from, node.byte);
    if (to == GrammarAutomaton::kDead) {
      i = node.subtree_end;
      continue;
    }
    walk_states_[node.depth] = to;
    // Shortcut: when every byte below this node loops on `to` (a string's
    // body: any character but '"' and '\\'), every token of the subtree
    // is allowed, without walking it.
    if (const int32_t si = vocab_->summary_index(i); si >= 0) {
      const VocabTrie::Summary& sum = vocab_->summary(si);
      if (automaton_.LoopsOver(to, sum.bytes)) {
        const std::vector<int32_t>& tokens = vocab_->subtree_tokens();
        for (uint32_t k = sum.token_begin; k < sum.token_end; ++k) mask->Set(tokens[k]);
        i = node.subtree_end;
        continue;
      }
    }
    if (node.token >= 0) mask->Set(node.token);
    ++i;
  }
  for (const auto& [node, token] : vocab_->extra_tokens()) {
    if (mask->Test(nodes[node].token)) mask->Set(token);
  }
  if (automaton_.CanEnd(start)) {
    for (int32_t t : vocab_->end_of_generation()) {
      if (t >= 0 && t < mask->size()) mask->Set(t);
    }
  }
}

const TokenMask& TokenConstraint::Mask() {
  if (current_ != nullptr) return *current_;
  if (ended_ || state_ == GrammarAutomaton::kDead) {
    scratch_ = TokenMask(vocab_->n_vocab());
    return *(current_ = &scratch_);
  }
  if (StripsSpaceNow()) {  // depends on more than the state: not cached
    scratch_ = TokenMask(vocab_->n_vocab());
    Walk(state_, &scratch_);
    return *(current_ = &scratch_);
  }
  auto it = cache_.find(state_);
  if (it == cache_.end()) {
    if (cache_.size() >= kMaxCachedMasks) cache_.clear();
    auto mask = std::make_unique<TokenMask>(vocab_->n_vocab());
    Walk(state_, mask.get());
    it = cache_.emplace(state_, std::move(mask)).first;
  }
  return *(current_ = it->second.get());
}

absl::Status TokenConstraint::Accept(int32_t token) {
  if (token < 0 || token >= vocab_->n_vocab()) {
    return absl::InvalidArgumentError(absl::StrCat("token ", token, " out of range"));
  }
  current_ = nullptr;
  if (ended_) return absl::FailedPreconditionError("grammar: the output is already complete");
  const std::vector<int32_t>& eog = vocab_->end_of_generation();
  if (std::find(eog.begin(), eog.end(), token) != eog.end()) {
    if (!CanEnd()) {
      return absl::FailedPreconditionError(
          absl::StrCat("grammar: end-of-text token ", token, " where the output cannot end"));
    }
    ended_ = true;
    return absl::OkStatus();
  }
  const std::string& piece = vocab_->piece(token);
  const GrammarAutomaton::StateId next = piece.empty() ? GrammarAutomaton::kDead : Feed(state_, piece);
  if (next == GrammarAutomaton::kDead) {
    return absl::FailedPreconditionError(
        absl::StrCat("grammar: token ", token, " does not fit the grammar here"));
  }
  state_ = next;
  first_ = false;
  if (automaton_.num_states() > kCompactStates) {
    automaton_.Compact(&state_);
    cache_.clear();
  }
  return absl::OkStatus();
}

void TokenConstraint::ResetCaches() {
  cache_.clear();
  current_ = nullptr;
  if (state_ != GrammarAutomaton::kDead) automaton_.Compact(&state_);
}

bool TokenConstraint::CanEnd() const {
  return !ended_ && state_ != GrammarAutomaton::kDead && automaton_.CanEnd(state_);
}

bool TokenConstraint::IsComplete() const {
  return ended_ || (state_ != GrammarAutomaton::kDead && automaton_.IsComplete(state_));
}

TokenMask TokenConstraint::BruteForceMask() {
  TokenMask mask(vocab_->n_vocab());
  if (ended_ || state_ == GrammarAutomaton::kDead) return mask;
  for (int32_t t = 0; t < vocab_->n_vocab(); ++t) {
    const std::string& piece = vocab_->piece(t);
    if (!piece.empty() && piece.size() <= 65535 && Feed(state_, piece) != GrammarAutomaton::kDead) {
      mask.Set(t);
    }
  }
  if (CanEnd()) {
    for (int32_t t : vocab_->end_of_generation()) {
      if (t >= 0 && t < mask.size()) mask.Set(t);
    }
  }
  return mask;
}

}  // namespace shardlm
