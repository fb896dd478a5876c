// The coordinator's prefix cache: token prefixes whose KV stays on the
// stages after their request ended, so a later request starting with the
// same tokens forks that KV (Stage::Fork) and computes only the rest.
//
// An entry is a sequence on the workers of one Route (a replica per range)
// and the tokens its KV holds. Lookups compare the prompt with every entry
// of the route (longest common prefix): the entries are few and bounded by
// the token cap, so a linear scan costs microseconds and needs no tree.
// Entries are evicted least recently used, over the cap or when a stage's
// KV budget is full; an entry pinned by a fork in flight is never evicted.
// Not thread-safe: the engine's lock guards it.
#ifndef SHARDLM_COORDINATOR_PREFIX_CACHE_H_
#define SHARDLM_COORDINATOR_PREFIX_CACHE_H_

#include <cstdint>
#include <list>
#include <vector>

#include "absl/types/span.h"
#include "coordinator/pipeline.h"

namespace shardlm {

// Exactness: a token's numbers depend on the kernels its prefill chunk
// takes (the 4-token gemm for the first size - size % 4 tokens of a chunk of
// >= 4, gemv for the rest; batched matmul and attention orders for chunks of
// >= 2). A fresh server prefills a prompt of n tokens in chunks of `chunk`
// from position 0. Positions computed as "gemm and batched" there and in the
// cached request have identical KV, so only those are reused:
//
// The leading positions of a fresh prefill of n tokens that take the gemm
// and batched kernels.
int FreshGemmPrefix(int n, int chunk);
// How many positions of a prompt of n tokens to fork from an entry sharing
// its first `common` tokens (all of them gemm-and-batched in the entry) so
// the result equals a fresh prefill bit for bit: at most FreshGemmPrefix
// and n - 1 (the last token must be computed for its logits), a multiple of
// 4, and never leaving a lone last token the fresh prefill would have
// computed in a batch. The suffix must then be prefilled in chunks that end
// at multiples of `chunk` (as the fresh prefill's do). 0: no reuse (also
// when chunk % 4 != 0).
int ExactForkLength(int common, int n, int chunk);

class PrefixCache {
 public:
  // `max_tokens`: cap on the tokens of all entries together.
  explicit PrefixCache(int64_t max_tokens) : max_tokens_(max_tokens) {}

  struct Match {
    SeqId entry = 0;
    int common = 0;  // leading tokens the prompt shares with the entry
  };
  // The entry on `route` sharing the longest start with `prompt` (common 0:
  // none). Acquire also pins it and marks it used; Unpin when the fork is done.
  Match Find(absl::Span<const int32_t> prompt, const Route& route) const;
  Match Acquire(absl::Span<const int32_t> prompt, const Route& route);
  void Unpin(SeqId entry);

  // Whether an entry on `route` already starts with all of `tokens`.
  bool Covers(absl::Span<const int32_t> tokens, const Route& route) const;
  // Adds the entry `seq` (its KV holds `tokens`, on `route`). Entries it
  // makes redundant (their tokens a prefix of these) and, over the cap, the
  // least recently used ones go to `released` (their KV must be freed);
  // so does `seq` itself when an entry already covers it.
  void Insert(SeqId seq, std::vector<int32_t> tokens, Route route, std::vector<SeqId>* released);
  // Evicts the least recently used unpinned entry; false when none is left.
  bool EvictOne(std::vector<SeqId>* released);
  // Drops an entry whose KV is gone (a failed fork); it is released too.
  void Drop(SeqId entry, std::vector<SeqId>* released);
  // The unpinned entries of `route` (a failover found some of its KV gone);
  // pinned ones fail their fork and are dropped then.
  void DropRoute(const Route& route, std::vector<SeqId>* released);
  // Everything (shutdown).
  void Clear(std::vector<SeqId>* released);

  int entries() const { return static_cast<int>(entries_.size()); }
  int64_t tokens() const { return tokens_; }

 private:
  struct Entry {
    SeqId seq;
    std::vector<int32_t> tokens;
    Route route;
    int pins = 0;
  };
  using List = std::list<Entry>;  // most recently used first
  List::iterator FindEntry(SeqId seq);
  void Erase(List::iterator it, std::vector<SeqId>* released);

  int64_t max_tokens_;
  int64_t tokens_ = 0;
  List entries_;
};

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_PREFIX_CACHE_H_
