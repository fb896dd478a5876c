#include "coordinator/grammar/gbnf_parser.h"

#include <algorithm>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"

namespace shardlm {
namespace {

using Elem = GrammarElement;
using Type = GrammarElement::Type;
constexpr int kUnbounded = -1;

// A set of code points as written in the grammar: ranges, maybe negated.
struct CodePointClass {
  std::vector<std::pair<uint32_t, uint32_t>> ranges;
  bool negated = false;
};

constexpr uint32_t kMaxCodePoint = 0x10FFFF;

// The class as sorted, disjoint ranges of Unicode scalar values (negation
// applied, surrogates removed: UTF-8 cannot encode them).
std::vector<std::pair<uint32_t, uint32_t>> Normalize(const CodePointClass& c) {
  std::vector<std::pair<uint32_t, uint32_t>> r;
  for (auto [lo, hi] : c.ranges) {
    if (lo <= kMaxCodePoint) r.push_back({lo, std::min(hi, kMaxCodePoint)});
  }
  std::sort(r.begin(), r.end());
  std::vector<std::pair<uint32_t, uint32_t>> merged;
  for (auto [lo, hi] : r) {
    if (!merged.empty() && lo <= merged.back().second + 1) {
      merged.back().second = std::max(merged.back().second, hi);
    } else {
      merged.push_back({lo, hi});
    }
  }
  if (c.negated) {
    std::vector<std::pair<uint32_t, uint32_t>> inv;
    uint32_t next = 0;
    for (auto [lo, hi] : merged) {
      if (lo > next) inv.push_back({next, lo - 1});
      next = hi + 1;
    }
    if (next <= kMaxCodePoint) inv.push_back({next, kMaxCodePoint});
    merged = std::move(inv);
  }
  std::vector<std::pair<uint32_t, uint32_t>> out;
  for (auto [lo, hi] : merged) {
    if (hi < 0xD800 || lo > 0xDFFF) {
      out.push_back({lo, hi});
      continue;
    }
    if (lo < 0xD800) out.push_back({lo, 0xD7FF});
    if (hi > 0xDFFF) out.push_back({0xE000, hi});
  }
  return out;
}

int Utf8Encode(uint32_t cp, uint8_t* out) {
  if (cp < 0x80) {
    out[0] = static_cast<uint8_t>(cp);
    return 1;
  }
  if (cp < 0x800) {
    out[0] = static_cast<uint8_t>(0xC0 | (cp >> 6));
    out[1] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = static_cast<uint8_t>(0xE0 | (cp >> 12));
    out[1] = static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F));
    out[2] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = static_cast<uint8_t>(0xF0 | (cp >> 18));
  out[1] = static_cast<uint8_t>(0x80 | ((cp >> 12) & 0x3F));
  out[2] = static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F));
  out[3] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
  return 4;
}

// A byte range per position of a UTF-8 encoding.
using ByteSequence = std::vector<std::pair<uint8_t, uint8_t>>;

// [lo, hi] (scalar values) as UTF-8 byte-range sequences: split at the
// encoding lengths, then until every continuation byte spans a whole
// 0x80-0xBF block or a single prefix (the utf8-ranges construction of RE2
// and Rust's regex-syntax).
void SplitUtf8(uint32_t lo, uint32_t hi, std::vector<ByteSequence>* out) {
  for (uint32_t max : {0x7Fu, 0x7FFu, 0xFFFFu}) {
    if (lo <= max && hi > max) {
      SplitUtf8(lo, max, out);
      SplitUtf8(max + 1, hi, out);
      return;
    }
  }
  uint8_t a[4], b[4];
  const int n = Utf8Encode(lo, a);
  Utf8Encode(hi, b);
  for (int i = 1; i < n; ++i) {
    const uint32_t m = (uint32_t{1} << (6 * i)) - 1;
    if ((lo & ~m) != (hi & ~m)) {
      if ((lo & m) != 0) {
        SplitUtf8(lo, lo | m, out);
        SplitUtf8((lo | m) + 1, hi, out);
        return;
      }
      if ((hi & m) != m) {
        SplitUtf8(lo, (hi & ~m) - 1, out);
        SplitUtf8(hi & ~m, hi, out);
        return;
      }
    }
  }
  ByteSequence seq;
  for (int i = 0; i < n; ++i) seq.push_back({a[i], b[i]});
  out->push_back(std::move(seq));
}

bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '_';
}

// Recursive-descent parser; rules are built as element vectors (alternatives
// separated by kAlt, closed by kEnd) and flattened at the end.
class Parser {
 public:
  explicit Parser(std::string_view text) : text_(text) {}

  absl::StatusOr<GrammarPtr> Parse(std::string_view root) {
    SkipSpace(true);
    while (pos_ < text_.size() && error_.ok()) {
      ParseRule();
      SkipSpace(true);
    }
    if (!error_.ok()) return error_;
    // Every referenced rule must be defined.
    for (size_t r = 0; r < rules_.size(); ++r) {
      if (!defined_[r]) {
        return Fail(first_use_[r], absl::StrCat("rule '", names_[r], "' is used but not defined"));
      }
    }
    auto it = ids_.find(std::string(root));
    if (it == ids_.end()) {
      return absl::InvalidArgumentError(absl::StrCat("grammar: no rule '", std::string(root), "' (the start)"));
    }
    if (rules_.size() > kMaxGrammarRules) {
      return absl::InvalidArgumentError(
          absl::StrCat("grammar: more than ", kMaxGrammarRules, " rules after expansion"));
    }
    auto g = std::make_shared<Grammar>();
    g->root = it->second;
    g->rule_names = names_;
    g->classes = std::move(classes_);
    for (auto& rule : rules_) {
      g->rule_start.push_back(static_cast<uint32_t>(g->elements.size()));
      g->elements.insert(g->elements.end(), rule.begin(), rule.end());
    }
    if (absl::Status st = CheckLeftRecursion(*g); !st.ok()) return st;
    return GrammarPtr(std::move(g));
  }

 private:
  absl::Status Fail(size_t at, const std::string& what) {
    int line = 1, column = 1;
    for (size_t i = 0; i < at && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
    return absl::InvalidArgumentError(
        absl::StrCat("grammar: line ", line, ", column ", column, ": ", what));
  }
  void SetError(size_t at, const std::string& what) {
    if (error_.ok()) error_ = Fail(at, what);
  }
  bool AtEnd() const { return pos_ >= text_.size(); }
  char Peek(size_t ahead = 0) const {
    return pos_ + ahead < text_.size() ? text_[pos_ + ahead] : '\0';
  }

  // Spaces, tabs, comments; newlines too when `newlines`.
  void SkipSpace(bool newlines) {
    while (!AtEnd()) {
      const char c = Peek();
      if (c == ' ' || c == '\t' || (newlines && (c == '\n' || c == '\r'))) {
        ++pos_;
      } else if (c == '#') {
        while (!AtEnd() && Peek() != '\n') ++pos_;
      } else {
        break;
      }
    }
  }

  uint32_t RuleId(const std::string& name, size_t at) {
    auto [it, added] = ids_.try_emplace(name, static_cast<uint32_t>(rules_.size()));
    if (added) {
      names_.push_back(name);
      rules_.emplace_back();
      defined_.push_back(false);
      first_use_.push_back(at);
    }
    return it->second;
  }
  uint32_t NewHelperRule(const std::string& base) {
    std::string name;
    do {
      name = absl::StrCat(base, "_", ++helper_count_);
    } while (ids_.contains(name));
    return RuleId(name, pos_);
  }
  Elem Byte(uint8_t lo, uint8_t hi) {
    const uint32_t key = (uint32_t{lo} << 8) | hi;
    auto [it, added] = byte_range_ids_.try_emplace(key, static_cast<uint32_t>(classes_.size()));
    if (added) {
      ByteClass c;
      c.Add(lo, hi);
      classes_.push_back(c);
    }
    return {Type::kClass, it->second};
  }
  // A literal code point: its UTF-8 bytes.
  void AppendChar(uint32_t cp, std::vector<Elem>* out) {
    uint8_t bytes[4];
    const int n = Utf8Encode(std::min(cp, kMaxCodePoint), bytes);
    for (int i = 0; i < n; ++i) out->push_back(Byte(bytes[i], bytes[i]));
  }
  // A class of code points as one element: a byte class when it is ASCII
  // only, else a helper rule whose alternatives are its UTF-8 byte
  // sequences (one helper per distinct class).
  Elem ClassElement(const CodePointClass& c, const std::string& rule) {
    const std::vector<std::pair<uint32_t, uint32_t>> ranges = Normalize(c);
    std::string key;
    for (auto [lo, hi] : ranges) absl::StrAppend(&key, lo, "-", hi, ",");
    if (auto it = class_elements_.find(key); it != class_elements_.end()) return it->second;
    ByteClass ascii;
    bool has_ascii = false;
    std::vector<ByteSequence> multi;
    for (auto [lo, hi] : ranges) {
      if (lo < 0x80) {
        ascii.Add(static_cast<uint8_t>(lo), static_cast<uint8_t>(std::min(hi, 0x7Fu)));
        has_ascii = true;
      }
      if (hi >= 0x80) SplitUtf8(std::max(lo, 0x80u), hi, &multi);
    }
    Elem e;
    if (multi.empty() && has_ascii) {
      e = {Type::kClass, static_cast<uint32_t>(classes_.size())};
      classes_.push_back(ascii);
    } else {
      // An empty class (matches nothing) is a rule with one impossible
      // alternative: a byte class with no bytes.
      const uint32_t helper = NewHelperRule(rule);
      std::vector<Elem> body;
      if (has_ascii || multi.empty()) {
        body.push_back({Type::kClass, static_cast<uint32_t>(classes_.size())});
        classes_.push_back(ascii);
      }
      for (const ByteSequence& seq : multi) {
        if (!body.empty()) body.push_back({Type::kAlt, 0});
        for (auto [lo, hi] : seq) body.push_back(Byte(lo, hi));
      }
      body.push_back({Type::kEnd, 0});
      rules_[helper] = std::move(body);
      defined_[helper] = true;
      e = {Type::kRuleRef, helper};
    }
    class_elements_.emplace(std::move(key), e);
    return e;
  }

  std::string ParseName() {
    const size_t start = pos_;
    while (!AtEnd() && IsNameChar(Peek())) ++pos_;
    return std::string(text_.substr(start, pos_ - start));
  }

  // One UTF-8 character of the grammar text.
  uint32_t DecodeUtf8() {
    const unsigned char c0 = static_cast<unsigned char>(Peek());
    int len = c0 < 0x80 ? 1 : (c0 >> 5) == 6 ? 2 : (c0 >> 4) == 14 ? 3 : (c0 >> 3) == 30 ? 4 : 0;
    if (len == 0 || pos_ + len > text_.size()) {
      SetError(pos_, "invalid UTF-8");
      ++pos_;
      return 0xFFFD;
    }
    uint32_t cp = len == 1 ? c0 : c0 & (0x7F >> len);
    for (int i = 1; i < len; ++i) {
      const unsigned char c = static_cast<unsigned char>(text_[pos_ + i]);
      if ((c & 0xC0) != 0x80) {
        SetError(pos_, "invalid UTF-8");
        ++pos_;
        return 0xFFFD;
      }
      cp = (cp << 6) | (c & 0x3F);
    }
    pos_ += len;
    return cp;
  }

  uint32_t ParseHex(int digits) {
    uint32_t v = 0;
    for (int i = 0; i < digits; ++i) {
      const char c = Peek();
      int d = c >= '0' && c <= '9' ? c - '0'
              : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                     : -1;
      if (d < 0) {
        SetError(pos_, absl::StrCat("expected ", digits, " hex digits"));
        return 0;
      }
      v = v * 16 + d;
      ++pos_;
    }
    return v;
  }

  // A character of a literal or class, escapes resolved.
  uint32_t ParseChar() {
    if (Peek() != '\\') return DecodeUtf8();
    const size_t at = pos_;
    ++pos_;
    const char c = Peek();
    ++pos_;
    switch (c) {
      case 'n': return '\n';
      case 'r': return '\r';
      case 't': return '\t';
      case '\\': case '"': case '[': case ']': case '-': case '/': case '^': return c;
      case 'x': return ParseHex(2);
      case 'u': return ParseHex(4);
      case 'U': return ParseHex(8);
      default:
        SetError(at, absl::StrCat("unknown escape '\\", std::string(1, c), "'"));
        return 0;
    }
  }

  void ParseRule() {
    const size_t at = pos_;
    const std::string name = ParseName();
    if (name.empty()) return SetError(at, "expected a rule name");
    SkipSpace(false);
    if (text_.substr(pos_, 3) != "::=") return SetError(pos_, "expected '::='");
    pos_ += 3;
    SkipSpace(true);
    const uint32_t id = RuleId(name, at);
    if (defined_[id]) return SetError(at, absl::StrCat("rule '", name, "' is defined twice"));
    defined_[id] = true;
    std::vector<Elem> body = ParseAlternates(name, /*nested=*/false);
    body.push_back({Type::kEnd, 0});
    rules_[id] = std::move(body);
    if (!error_.ok()) return;
    SkipSpace(false);
    if (!AtEnd() && Peek() != '\n' && Peek() != '\r') {
      SetError(pos_, absl::StrCat("unexpected '", std::string(1, Peek()), "'"));
    }
  }

  std::vector<Elem> ParseAlternates(const std::string& rule, bool nested) {
    std::vector<Elem> out = ParseSequence(rule, nested);
    while (error_.ok() && Peek() == '|') {
      ++pos_;
      SkipSpace(true);
      out.push_back({Type::kAlt, 0});
      std::vector<Elem> seq = ParseSequence(rule, nested);
      out.insert(out.end(), seq.begin(), seq.end());
    }
    return out;
  }

  std::vector<Elem> ParseSequence(const std::string& rule, bool nested) {
    std::vector<Elem> out;
    size_t last_start = std::string::npos;  // where the last symbol's elements begin
    while (!AtEnd() && error_.ok() && ++steps_ < kMaxSteps) {
      const char c = Peek();
      const size_t at = pos_;
      if (c == '"') {
        ++pos_;
        last_start = out.size();
        while (!AtEnd() && Peek() != '"' && error_.ok()) {
          if (Peek() == '\n') return SetError(at, "unterminated string"), out;
          AppendChar(ParseChar(), &out);
        }
        if (AtEnd()) return SetError(at, "unterminated string"), out;
        ++pos_;
      } else if (c == '[') {
        ++pos_;
        CodePointClass cls;
        if (Peek() == '^') {
          cls.negated = true;
          ++pos_;
        }
        while (!AtEnd() && Peek() != ']' && error_.ok()) {
          if (Peek() == '\n') return SetError(at, "unterminated character class"), out;
          const uint32_t lo = ParseChar();
          uint32_t hi = lo;
          if (Peek() == '-' && Peek(1) != ']' && Peek(1) != '\0') {
            ++pos_;
            hi = ParseChar();
            if (hi < lo) SetError(at, "character range out of order");
          }
          cls.ranges.push_back({lo, hi});
        }
        if (AtEnd()) return SetError(at, "unterminated character class"), out;
        ++pos_;
        last_start = out.size();
        out.push_back(ClassElement(cls, rule));
      } else if (c == '.') {
        ++pos_;
        CodePointClass any;
        any.negated = true;
        last_start = out.size();
        out.push_back(ClassElement(any, rule));
      } else if (IsNameChar(c)) {
        const std::string name = ParseName();
        last_start = out.size();
        out.push_back({Type::kRuleRef, RuleId(name, at)});
      } else if (c == '(') {
        ++pos_;
        SkipSpace(true);
        const uint32_t sub = NewHelperRule(rule);
        std::vector<Elem> body = ParseAlternates(rule, /*nested=*/true);
        body.push_back({Type::kEnd, 0});
        rules_[sub] = std::move(body);
        defined_[sub] = true;
        if (Peek() != ')') return SetError(at, "expected ')'"), out;
        ++pos_;
        last_start = out.size();
        out.push_back({Type::kRuleRef, sub});
      } else if (c == '*' || c == '+' || c == '?' || c == '{') {
        if (last_start == std::string::npos) {
          return SetError(at, absl::StrCat("'", std::string(1, c), "' follows nothing")), out;
        }
        ++pos_;
        int min = 0, max = kUnbounded;
        if (c == '+') min = 1;
        if (c == '?') max = 1;
        if (c == '{') {
          SkipSpace(false);
          min = ParseInt();
          SkipSpace(false);
          max = min;
          if (Peek() == ',') {
            ++pos_;
            SkipSpace(false);
            max = (Peek() >= '0' && Peek() <= '9') ? ParseInt() : kUnbounded;
            SkipSpace(false);
          }
          if (Peek() != '}') return SetError(pos_, "expected '}'"), out;
          ++pos_;
          if (!error_.ok()) return out;
          if ((max != kUnbounded && max < min) || min > kMaxGrammarRepeat ||
              max > kMaxGrammarRepeat) {
            return SetError(at, absl::StrCat("repetition {", min, ",", max,
                                             "} out of range (at most ", kMaxGrammarRepeat, ")")),
                   out;
          }
        }
        Repeat(rule, &out, last_start, min, max);
        last_start = std::string::npos;  // `x**` is an error, as in llama.cpp
      } else {
        break;
      }
      SkipSpace(nested);
    }
    if (steps_ >= kMaxSteps) SetError(pos_, "grammar too large");
    return out;
  }

  int ParseInt() {
    const size_t at = pos_;
    long v = 0;
    while (Peek() >= '0' && Peek() <= '9') {
      v = v * 10 + (Peek() - '0');
      if (v > std::numeric_limits<int>::max() / 20) v = std::numeric_limits<int>::max() / 20;
      ++pos_;
    }
    if (pos_ == at) SetError(at, "expected a number");
    return static_cast<int>(v);
  }

  // Rewrites out[start..] (one symbol) repeated min..max times into helper
  // rules, as llama.cpp does: `x{2,4}` -> x x r1, r1 ::= x r2 |, r2 ::= x |.
  void Repeat(const std::string& rule, std::vector<Elem>* out, size_t start, int min, int max) {
    const std::vector<Elem> sym(out->begin() + start, out->end());
    out->resize(start);
    for (int i = 0; i < min; ++i) out->insert(out->end(), sym.begin(), sym.end());
    if (max == kUnbounded) {
      const uint32_t star = NewHelperRule(rule);  // star ::= sym star |
      std::vector<Elem> body = sym;
      body.push_back({Type::kRuleRef, star});
      body.push_back({Type::kAlt, 0});
      body.push_back({Type::kEnd, 0});
      rules_[star] = std::move(body);
      defined_[star] = true;
      out->push_back({Type::kRuleRef, star});
      return;
    }
    uint32_t next = 0;
    bool has_next = false;
    for (int i = 0; i < max - min; ++i) {  // innermost first
      const uint32_t opt = NewHelperRule(rule);  // opt ::= sym next |
      std::vector<Elem> body = sym;
      if (has_next) body.push_back({Type::kRuleRef, next});
      body.push_back({Type::kAlt, 0});
      body.push_back({Type::kEnd, 0});
      rules_[opt] = std::move(body);
      defined_[opt] = true;
      next = opt;
      has_next = true;
      if (rules_.size() > kMaxGrammarRules) return SetError(pos_, "grammar too large");
    }
    if (has_next) out->push_back({Type::kRuleRef, next});
  }

  // A top-down matcher loops forever on `a ::= a "x" | ...`: refuse rules
  // that can reach themselves without consuming a character.
  absl::Status CheckLeftRecursion(const Grammar& g) {
    const size_t n = g.rule_start.size();
    // Nullable rules, to a fixed point.
    std::vector<bool> nullable(n, false);
    for (bool changed = true; changed;) {
      changed = false;
      for (size_t r = 0; r < n; ++r) {
        if (nullable[r]) continue;
        for (uint32_t p : g.Alternatives(r)) {
          bool all = true;
          for (; g.elements[p].type != Type::kEnd && g.elements[p].type != Type::kAlt; ++p) {
            const Elem& e = g.elements[p];
            if (e.type == Type::kClass || !nullable[e.value]) {
              all = false;
              break;
            }
          }
          if (all) {
            nullable[r] = changed = true;
            break;
          }
        }
      }
    }
    // Edges r -> s when s can start r; then look for a cycle.
    std::vector<std::vector<uint32_t>> first(n);
    for (size_t r = 0; r < n; ++r) {
      for (uint32_t p : g.Alternatives(r)) {
        for (; g.elements[p].type == Type::kRuleRef; ++p) {
          first[r].push_back(g.elements[p].value);
          if (!nullable[g.elements[p].value]) break;
        }
      }
    }
    std::vector<int> color(n, 0);  // 0 new, 1 on the path, 2 done
    for (size_t s = 0; s < n; ++s) {
      if (color[s] != 0) continue;
      std::vector<std::pair<uint32_t, size_t>> path{{static_cast<uint32_t>(s), 0}};
      color[s] = 1;
      while (!path.empty()) {
        auto& [r, i] = path.back();
        if (i == first[r].size()) {
          color[r] = 2;
          path.pop_back();
          continue;
        }
        const uint32_t t = first[r][i++];
        if (color[t] == 1) {
          return absl::InvalidArgumentError(absl::StrCat(
              "grammar: rule '", g.rule_names[t],
              "' is left-recursive (it can reach itself before reading a character)"));
        }
        if (color[t] == 0) {
          color[t] = 1;
          path.push_back({t, 0});
        }
      }
    }
    return absl::OkStatus();
  }

  static constexpr size_t kMaxSteps = 4 * kMaxGrammarBytes;
  std::string_view text_;
  size_t pos_ = 0;
  size_t steps_ = 0;
  absl::Status error_;
  std::vector<std::vector<Elem>> rules_;
  std::vector<std::string> names_;
  std::vector<bool> defined_;
  std::vector<size_t> first_use_;
  absl::flat_hash_map<std::string, uint32_t> ids_;
  std::vector<ByteClass> classes_;
  absl::flat_hash_map<uint32_t, uint32_t> byte_range_ids_;       // lo << 8 | hi -> class
  absl::flat_hash_map<std::string, Elem> class_elements_;  // normalized ranges -> element
  int helper_count_ = 0;
};

}  // namespace

std::vector<uint32_t> Grammar::Alternatives(uint32_t rule) const {
  std::vector<uint32_t> out;
  uint32_t p = rule_start[rule];
  out.push_back(p);
  for (; elements[p].type != GrammarElement::Type::kEnd; ++p) {
    if (elements[p].type == GrammarElement::Type::kAlt) out.push_back(p + 1);
  }
  return out;
}

absl::StatusOr<GrammarPtr> ParseGbnf(std::string_view text, std::string_view root) {
  if (text.size() > kMaxGrammarBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("grammar: ", text.size(), " bytes exceed the limit of ", kMaxGrammarBytes));
  }
  return Parser(text).Parse(root);
}

std::string GbnfLiteral(std::string_view text) {
  std::string out = "\"";
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c == 0x7F) {
      static const char* kHex = "0123456789ABCDEF";
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

}  // namespace shardlm
