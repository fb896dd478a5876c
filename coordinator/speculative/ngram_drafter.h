// Prompt-lookup drafts (--spec-ngram K): the continuation of a sequence is
// often a copy of something earlier in it (code, quoted documents, names,
// the loops small models fall into). The drafter finds the most recent
// earlier occurrence of the sequence's last n tokens — n = 3, then 2, then 1:
// the longest suffix that matched before is the most specific evidence —
// and proposes the tokens that followed it.
//
// Incremental: an index maps each n-gram to where it last ended; appending
// a token updates it in O(1), so a step costs a few hash lookups per draft
// token, never a rescan of the history. A K-token draft is K one-token
// proposals, each on the history extended by the tokens drafted so far
// (pushed into the index and popped afterwards), so draft i is exactly what
// Propose would answer once drafts 0..i-1 are accepted: a sequence's tokens
// never depend on how many drafts a step had room for (acceptance.h).
#ifndef SHARDLM_COORDINATOR_SPECULATIVE_NGRAM_DRAFTER_H_
#define SHARDLM_COORDINATOR_SPECULATIVE_NGRAM_DRAFTER_H_

#include <array>
#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/types/span.h"

namespace shardlm {

class NgramDrafter {
 public:
  static constexpr int kMaxN = 3;  // longest n-gram matched

  // Brings the index up to `tokens` (the sequence's prompt and accepted
  // tokens; it only ever grows, and must extend what was seen before).
  void Sync(absl::Span<const int32_t> tokens);
  // Up to `k` draft tokens following `tokens` (which Sync has seen); fewer
  // or none when no suffix occurred before.
  std::vector<int32_t> Propose(int k);
  // The one-token proposal for the next position, or -1.
  int32_t ProposeNext() const;

  int seen() const { return static_cast<int>(history_.size()); }

 private:
  // An n-gram, padded with -1 (never a token id).
  using Key = std::array<int32_t, kMaxN>;
  struct Undo {
    Key key;
    int32_t old;  // previous follower position, or -1 when it was new
  };
  // Appends a token: the n-grams ending just before it now map to its
  // position (their most recent follower).
  void Push(int32_t token, std::vector<Undo>* undo);
  Key SuffixKey(int n) const;

  std::vector<int32_t> history_;
  // n-gram -> position of the token that followed its latest occurrence.
  absl::flat_hash_map<Key, int32_t> follower_;
};

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_SPECULATIVE_NGRAM_DRAFTER_H_
