// The per-sequence object the sampler consults: which tokens keep the
// output a prefix of a sentence of the grammar (Mask), what the sequence
// chose (Accept), and whether the output is finished (IsComplete: the
// grammar admits nothing more, so generation ends there).
//
// End-of-generation tokens are allowed exactly when the grammar may end.
// Masks are cached per automaton state (a long string value revisits the
// same state token after token), so most steps cost a hash lookup.
#ifndef SHARDLM_COORDINATOR_GRAMMAR_TOKEN_CONSTRAINT_H_
#define SHARDLM_COORDINATOR_GRAMMAR_TOKEN_CONSTRAINT_H_

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "coordinator/grammar/grammar.h"
#include "coordinator/grammar/grammar_matcher.h"
#include "coordinator/grammar/vocab_trie.h"

namespace shardlm {

// One bit per token id.
class TokenMask {
 public:
  explicit TokenMask(int32_t n = 0) : n_(n), words_((n + 63) / 64, 0) {}
  int32_t size() const { return n_; }
  bool Test(int32_t token) const {
    return token >= 0 && token < n_ && ((words_[token >> 6] >> (token & 63)) & 1);
  }
  void Set(int32_t token) { words_[token >> 6] |= uint64_t{1} << (token & 63); }
  int32_t Count() const;
  bool operator==(const TokenMask& o) const { return n_ == o.n_ && words_ == o.words_; }

 private:
  int32_t n_;
  std::vector<uint64_t> words_;
};

class TokenConstraint {
 public:
  // `strip_first_space`: the first generated token's leading ' ' is not
  // part of the output (SentencePiece's dummy prefix right after BOS, see
  // tokenizer.h's leading-space rule), so the grammar does not see it.
  TokenConstraint(GrammarPtr grammar, std::shared_ptr<const VocabTrie> vocab,
                  bool strip_first_space = false);

  // The tokens allowed next. Valid until the next Accept.
  const TokenMask& Mask();
  // Advances past `token`; FAILED_PRECONDITION when the mask forbids it.
  absl::Status Accept(int32_t token);
  bool CanEnd() const;
  bool IsComplete() const;

  // Drops the cached masks and automaton states (benchmarks of cold masks).
  void ResetCaches();

  // The scalar reference for tests: each token checked on its own.
  TokenMask BruteForceMask();

 private:
  // Past this many automaton states the constraint compacts its automaton
  // (and drops its mask cache); at most kMaxCachedMasks masks are kept.
  static constexpr size_t kCompactStates = 20000;
  static constexpr size_t kMaxCachedMasks = 64;

  // The state after `bytes` from `s` (kDead when they do not fit).
  GrammarAutomaton::StateId Feed(GrammarAutomaton::StateId s, std::string_view bytes);
  bool StripsSpaceNow() const { return strip_first_space_ && first_; }
  void Walk(GrammarAutomaton::StateId start, TokenMask* mask);

  std::shared_ptr<const VocabTrie> vocab_;
  GrammarAutomaton automaton_;
  GrammarAutomaton::StateId state_;
  bool first_ = true;
  bool ended_ = false;  // an end-of-generation token was accepted
  bool strip_first_space_;
  absl::flat_hash_map<GrammarAutomaton::StateId, std::unique_ptr<TokenMask>> cache_;
  TokenMask scratch_;                                   // the first step's mask (not cached)
  const TokenMask* current_ = nullptr;
  std::vector<GrammarAutomaton::StateId> walk_states_;  // by trie depth, reused by Walk
};

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_GRAMMAR_TOKEN_CONSTRAINT_H_
