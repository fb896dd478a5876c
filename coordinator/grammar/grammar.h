// A compiled context-free grammar, in the shape of llama.cpp's GBNF
// grammars: rules of alternatives, each a sequence of elements (a byte
// class or a reference to a rule). Repetitions
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
    kClass,    // value: index into Grammar::classes (one byte)
  };
  Type type = Type::kEnd;
  uint32_t value = 0;
};

// A set of bytes. Grammars are written over code points; the parser turns
// each class of code points into alternatives of UTF-8 byte sequences (as
// regex engines do), so matching is byte by byte with no half-read
// character to remember, and invalid UTF-8 never matches.
struct ByteClass {
  uint64_t bits[4] = {0, 0, 0, 0};
  void Add(uint8_t lo, uint8_t hi) {
    for (int b = lo; b <= hi; ++b) bits[b >> 6] |= uint64_t{1} << (b & 63);
  }
  bool Contains(uint8_t b) const { return (bits[b >> 6] >> (b & 63)) & 1; }
};

struct Grammar {
  // All rules' elements, flattened: rule r starts at rule_start[r]; its
  // alternatives are separated by kAlt and the rule ends with kEnd.
  std::vector<GrammarElement> elements;
  std::vector<uint32_t> rule_start;
  std::vector<std::string> rule_names;  // for errors and debugging
  std::vector<ByteClass> classes;
  uint32_t root = 0;  // rule index of the start symbol

  // Positions of the first element of each alternative of `rule`.
  std::vector<uint32_t> Alternatives(uint32_t rule) const;
};

using GrammarPtr = std::shared_ptr<const Grammar>;

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_GRAMMAR_GRAMMAR_H_
