#include "coordinator/speculative/ngram_drafter.h"

namespace shardlm {

NgramDrafter::Key NgramDrafter::SuffixKey(int n) const {
  Key key;
  key.fill(-1);
  const int len = static_cast<int>(history_.size());
  for (int i = 0; i < n; ++i) key[i] = history_[len - n + i];
  return key;
}

void NgramDrafter::Push(int32_t token, std::vector<Undo>* undo) {
  // The n-grams ending at the current last token gain a follower: `token`
  // at position len. Indexed only now, so a lookup of the current suffix
  // finds an *earlier* occurrence, never itself.
  const int len = static_cast<int>(history_.size());
  for (int n = 1; n <= kMaxN && n <= len; ++n) {
    const Key key = SuffixKey(n);
    auto [it, inserted] = follower_.try_emplace(key, len);
    if (undo != nullptr) undo->push_back({key, inserted ? -1 : it->second});
    if (!inserted) it->second = len;
  }
  history_.push_back(token);
}

void NgramDrafter::Sync(absl::Span<const int32_t> tokens) {
  for (size_t i = history_.size(); i < tokens.size(); ++i) Push(tokens[i], nullptr);
}

int32_t NgramDrafter::ProposeNext() const {
  const int len = static_cast<int>(history_.size());
  for (int n = kMaxN; n >= 1; --n) {
    if (n > len) continue;
    auto it = follower_.find(SuffixKey(n));
    if (it != follower_.end()) return history_[it->second];
  }
  return -1;
}

std::vector<int32_t> NgramDrafter::Propose(int k) {
  std::vector<int32_t> draft;
  std::vector<Undo> undo;
  while (static_cast<int>(draft.size()) < k) {
    const int32_t next = ProposeNext();
    if (next < 0) break;
    draft.push_back(next);
    Push(next, &undo);
  }
  // Pop the drafted tokens: restore the index entries in reverse order.
  for (auto it = undo.rbegin(); it != undo.rend(); ++it) {
    if (it->old < 0) {
      follower_.erase(it->key);
    } else {
      follower_[it->key] = it->old;
    }
  }
  history_.resize(history_.size() - draft.size());
  return draft;
}

}  // namespace shardlm
