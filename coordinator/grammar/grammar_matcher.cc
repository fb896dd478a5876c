#include "coordinator/grammar/grammar_matcher.h"

#include <algorithm>
#include <utility>

namespace shardlm {
namespace {

using Type = GrammarElement::Type;

bool EndsAlternative(const GrammarElement& e) {
  return e.type == Type::kEnd || e.type == Type::kAlt;
}

}  // namespace

GrammarAutomaton::GrammarAutomaton(GrammarPtr grammar) : grammar_(std::move(grammar)) {
  for (uint32_t r = 0; r < grammar_->rule_start.size(); ++r) {
    alternatives_.push_back(grammar_->Alternatives(r));
  }
  State start;
  // The start: every alternative of the root rule, expanded.
  for (uint32_t alt : alternatives_[grammar_->root]) {
    Stack s;
    if (!EndsAlternative(grammar_->elements[alt])) s.push_back(alt);
    Expand(s, &start.stacks);
  }
  std::sort(start.stacks.begin(), start.stacks.end());
  start.stacks.erase(std::unique(start.stacks.begin(), start.stacks.end()), start.stacks.end());
  Intern(std::move(start));
}

void GrammarAutomaton::Expand(Stack& stack, std::vector<Stack>* out) const {
  if (stack.empty() || stack.size() > kMaxStackDepth) {
    if (stack.empty()) out->push_back(stack);
    return;
  }
  const uint32_t pos = stack.back();
  const GrammarElement& e = grammar_->elements[pos];
  if (e.type == Type::kClass) {
    out->push_back(stack);
    return;
  }
  // A rule reference: replace it by its continuation (unless the reference
  // ends its alternative: a tail call keeps right recursion flat) topped by
  // the first element of each alternative of the rule.
  stack.pop_back();
  if (!EndsAlternative(grammar_->elements[pos + 1])) stack.push_back(pos + 1);
  const size_t base = stack.size();
  for (uint32_t alt : alternatives_[e.value]) {
    stack.resize(base);
    if (!EndsAlternative(grammar_->elements[alt])) stack.push_back(alt);
    Expand(stack, out);
  }
  // Restore the caller's stack (it may reuse it).
  stack.resize(base);
  if (!EndsAlternative(grammar_->elements[pos + 1])) stack.pop_back();
  stack.push_back(pos);
}

std::vector<GrammarAutomaton::Stack> GrammarAutomaton::Advance(const std::vector<Stack>& stacks,
                                                                uint8_t byte) const {
  std::vector<Stack> out;
  Stack next;
  for (const Stack& s : stacks) {
    if (s.empty()) continue;
    const uint32_t pos = s.back();
    if (!grammar_->classes[grammar_->elements[pos].value].Contains(byte)) continue;
    next.assign(s.begin(), s.end() - 1);
    if (!EndsAlternative(grammar_->elements[pos + 1])) next.push_back(pos + 1);
    Expand(next, &out);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

GrammarAutomaton::StateId GrammarAutomaton::Intern(State s) {
  if (s.stacks.empty()) return kDead;
  std::string key;
  key.reserve(16 + s.stacks.size() * 16);
  auto put = [&key](uint32_t v) { key.append(reinterpret_cast<const char*>(&v), sizeof v); };
  for (const Stack& st : s.stacks) {
    put(static_cast<uint32_t>(st.size()));
    for (uint32_t p : st) put(p);
  }
  auto [it, added] = index_.try_emplace(std::move(key), static_cast<StateId>(states_.size()));
  if (!added) return it->second;
  bool any_empty = false, all_empty = true;
  for (const Stack& st : s.stacks) {
    any_empty |= st.empty();
    all_empty &= st.empty();
  }
  s.can_end = any_empty;
  s.complete = all_empty;
  states_.push_back(std::move(s));
  next_.resize(states_.size() * 256, kUnknown);
  loops_.resize(states_.size());
  return it->second;
}

GrammarAutomaton::StateId GrammarAutomaton::Compute(StateId state, uint8_t byte) {
  State next;
  next.stacks = Advance(states_[state].stacks, byte);
  const StateId result = Intern(std::move(next));
  next_[static_cast<size_t>(state) * 256 + byte] = result;  // resized by Intern
  return result;
}

bool GrammarAutomaton::LoopsOver(StateId state, const uint64_t bytes[4]) {
  for (int w = 0; w < 4; ++w) {
    // A byte already known not to loop answers at once.
    if (bytes[w] & loops_[state].known[w] & ~loops_[state].self[w]) return false;
  }
  for (int w = 0; w < 4; ++w) {
    uint64_t unknown = bytes[w] & ~loops_[state].known[w];
    while (unknown != 0) {
      const int bit = __builtin_ctzll(unknown);
      unknown &= unknown - 1;
      const bool loop = Next(state, static_cast<uint8_t>(w * 64 + bit)) == state;
      Loops& l = loops_[state];  // Next may have grown loops_
      l.known[w] |= uint64_t{1} << bit;
      if (!loop) return false;
      l.self[w] |= uint64_t{1} << bit;
    }
  }
  return true;
}

void GrammarAutomaton::Compact(StateId* keep) {
  State kept = std::move(states_[*keep]);
  states_.clear();
  next_.clear();
  loops_.clear();
  index_.clear();
  *keep = Intern(std::move(kept));
}

bool GrammarMatcher::Accept(std::string_view bytes) {
  for (char c : bytes) {
    if (dead()) return false;
    state_ = automaton_.Next(state_, static_cast<uint8_t>(c));
  }
  return !dead();
}

bool GrammarAccepts(GrammarPtr grammar, std::string_view text) {
  GrammarMatcher m(std::move(grammar));
  return m.Accept(text) && m.CanEnd();
}

}  // namespace shardlm
