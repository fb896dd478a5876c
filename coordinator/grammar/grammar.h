// A compiled context-free grammar over Unicode code points, in the shape of
// llama.cpp's GBNF grammars: rules of alternatives, each a sequence of
// elements (a code-point class or a reference to a rule). Repetitions
// (`x*`, `x+`, `x?`, `x{m,n}`) and groups are rewritten into helper rules
// when parsing, so the matcher only ever sees classes and references.
//
// A Grammar is immutable once built and shared (std::shared_ptr<const
// Grammar>) by every sequence that uses it; each sequence walks it with its
// own GrammarMatcher / TokenConstraint.
#ifndef SHARDLM_COORDINATOR_GRAMMAR_GRAMMAR_H_
#define SHARDLM_COORDINATOR_GRAMMAR_GRAMMAR_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace shardlm {

// One element of an alternative.
struct GrammarElement {
  enum class Type : uint8_t {
    kEnd,      // ends an alternative (and the rule after its last one)
    kAlt,      // separates two alternatives of a rule
    kRuleRef,  // value: rule index
    kClass,    // value: index into Grammar::classes
  };
  Type type = Type::kEnd;
  uint32_t value = 0;
};

// A set of code points: ranges [lo, hi], negated for `[^...]`.
struct CodePointClass {
  std::vector<std::pair<uint32_t, uint32_t>> ranges;
  bool negated = false;
  bool Contains(uint32_t cp) const {
    bool in = false;
    for (const auto& [lo, hi] : ranges) in |= cp >= lo && cp <= hi;
    return in != negated;
  }
  // Whether some code point in [lo, hi] is in the class.
  bool Intersects(uint32_t lo, uint32_t hi) const;
};

struct Grammar {
  // All rules' elements, flattened: rule r starts at rule_start[r]; its
  // alternatives are separated by kAlt and the rule ends with kEnd.
  std::vector<GrammarElement> elements;
  std::vector<uint32_t> rule_start;
  std::vector<std::string> rule_names;  // for errors and debugging
  std::vector<CodePointClass> classes;
  uint32_t root = 0;  // rule index of the start symbol

  // Positions of the first element of each alternative of `rule`.
  std::vector<uint32_t> Alternatives(uint32_t rule) const;
};

using GrammarPtr = std::shared_ptr<const Grammar>;

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_GRAMMAR_GRAMMAR_H_
