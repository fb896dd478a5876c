// Parses llama.cpp's GBNF grammar syntax:
//
//   root   ::= object
//   object ::= "{" ws ( pair ( "," ws pair )* )? "}"
//   ws     ::= [ \t\n]*      # comments run to the end of the line
//
// Rules `name ::= alternatives`, alternatives separated by `|`; elements are
// string literals ("..."), character classes ([a-z], [^"\\]), `.` (any code
// point), rule names, parenthesised groups, and the postfix operators `*`,
// `+`, `?`, `{m}`, `{m,}`, `{m,n}`. Escapes: \n \r \t \\ \" \] \[ \- \xHH
// \uHHHH \UHHHHHHHH. As in llama.cpp, a rule continues on the next line
// only inside parentheses or right after a `|`.
//
// Errors are INVALID_ARGUMENT with "line L, column C: ..." of the input; a
// rule that is used but never defined, a missing root, and left recursion
// (which a top-down matcher cannot run) are errors too.
#ifndef SHARDLM_COORDINATOR_GRAMMAR_GBNF_PARSER_H_
#define SHARDLM_COORDINATOR_GRAMMAR_GBNF_PARSER_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "coordinator/grammar/grammar.h"

namespace shardlm {

// At most this many bytes of grammar text and this many rules (after the
// rewrite of repetitions): a request cannot make the coordinator build an
// arbitrarily large grammar.
inline constexpr size_t kMaxGrammarBytes = 1 << 20;
inline constexpr size_t kMaxGrammarRules = 20000;
// `x{m,n}` repetitions larger than this are refused (each copy is a rule).
inline constexpr int kMaxGrammarRepeat = 1000;

absl::StatusOr<GrammarPtr> ParseGbnf(std::string_view text, std::string_view root = "root");

// `text` as a GBNF string literal ("..." with \" \\ and \xHH escapes), for
// code that writes grammars (JSON Schema, tool calls).
std::string GbnfLiteral(std::string_view text);

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_GRAMMAR_GBNF_PARSER_H_
