// Runs a Grammar over bytes. The grammar's pushdown state — the set of
// stacks of positions a top-down parser can be in (llama.cpp's "stacks") —
// is interned as a numbered state, and
// transitions (state, byte) -> state are computed once and cached. This
// lazily built automaton is what makes a token mask cheap: walking the
// vocabulary trie (vocab_trie.h) costs one table lookup per trie edge, and a
// dead state prunes the whole subtree below it.
//
// Not thread-safe: one per sequence (the Grammar itself is shared).
#ifndef SHARDLM_COORDINATOR_GRAMMAR_GRAMMAR_MATCHER_H_
#define SHARDLM_COORDINATOR_GRAMMAR_GRAMMAR_MATCHER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "coordinator/grammar/grammar.h"

namespace shardlm {

class GrammarAutomaton {
 public:
  using StateId = int32_t;
  static constexpr StateId kDead = -1;
  // A stack deeper than this (nesting) is dropped: a hostile grammar or a
  // model that keeps opening brackets cannot eat the coordinator's memory.
  static constexpr size_t kMaxStackDepth = 1024;

  explicit GrammarAutomaton(GrammarPtr grammar);

  StateId initial() const { return 0; }
  StateId Next(StateId state, uint8_t byte) {
    const StateId cached = next_[static_cast<size_t>(state) * 256 + byte];
    return cached != kUnknown ? cached : Compute(state, byte);
  }
  // Some stack is empty: the text so far is a complete sentence of the grammar.
  bool CanEnd(StateId state) const { return states_[state].can_end; }
  // CanEnd and nothing may follow: the output is finished.
  bool IsComplete(StateId state) const { return states_[state].complete; }
  // Whether Next(state, b) == state for every byte b in `bytes` (a 256-bit
  // set): then any string of those bytes leaves the state unchanged, and
  // the token-mask walk allows a whole vocabulary subtree at once.
  // Answers are remembered per state and byte.
  bool LoopsOver(StateId state, const uint64_t bytes[4]);
  size_t num_states() const { return states_.size(); }
  const Grammar& grammar() const { return *grammar_; }
  // Forgets every state but `*keep`, which becomes state 0 (the cache of a
  // long generation would otherwise only grow). Invalidates other ids.
  void Compact(StateId* keep);

 private:
  static constexpr StateId kUnknown = -2;
  using Stack = std::vector<uint32_t>;  // element positions, top last
  struct State {
    std::vector<Stack> stacks;  // sorted, unique; tops are classes (or the stack is empty)
    bool can_end = false;
    bool complete = false;
  };

  StateId Compute(StateId state, uint8_t byte);
  // Expands `stack` until its top is a class (or it is empty), adding the
  // results to `out`.
  void Expand(Stack& stack, std::vector<Stack>* out) const;
  std::vector<Stack> Advance(const std::vector<Stack>& stacks, uint8_t byte) const;
  StateId Intern(State s);

  GrammarPtr grammar_;
  std::vector<std::vector<uint32_t>> alternatives_;  // per rule
  std::vector<State> states_;
  std::vector<StateId> next_;  // states_.size() * 256
  struct Loops {
    uint64_t known[4] = {0, 0, 0, 0};  // bytes whose transition was looked at
    uint64_t self[4] = {0, 0, 0, 0};   // those that lead back to the state
  };
  std::vector<Loops> loops_;  // by state
  absl::flat_hash_map<std::string, StateId> index_;
};

// A single path through the automaton: feed bytes, ask whether they fit.
class GrammarMatcher {
 public:
  explicit GrammarMatcher(GrammarPtr grammar) : automaton_(std::move(grammar)) {}
  // False (and the matcher is dead from then on) when the bytes cannot
  // continue any sentence of the grammar.
  bool Accept(std::string_view bytes);
  bool dead() const { return state_ == GrammarAutomaton::kDead; }
  bool CanEnd() const { return !dead() && automaton_.CanEnd(state_); }
  bool IsComplete() const { return !dead() && automaton_.IsComplete(state_); }

 private:
  GrammarAutomaton automaton_;
  GrammarAutomaton::StateId state_ = 0;
};

// Whether the whole of `text` is a sentence of `grammar`.
bool GrammarAccepts(GrammarPtr grammar, std::string_view text);

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_GRAMMAR_GRAMMAR_MATCHER_H_
