// Template source -> tokens, with Jinja2's whitespace rules as Hugging Face
// configures them (trim_blocks, lstrip_blocks, keep_trailing_newline=False):
// the text between tags is already trimmed when it leaves the lexer, so the
// parser and interpreter never think about whitespace.
#ifndef SHARDLM_COORDINATOR_JINJA_LEXER_H_
#define SHARDLM_COORDINATOR_JINJA_LEXER_H_

#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace shardlm::jinja {

struct Token {
  enum class Type {
    kText,        // template text, printed as is
    kVarBegin,    // {{
    kVarEnd,      // }}
    kBlockBegin,  // {%
    kBlockEnd,    // %}
    kName,
    kString,  // value: the literal with escapes resolved
    kInt,
    kFloat,
    kOperator,  // value: "+", "==", "(", ...
    kEnd,
  };
  Type type;
  std::string value;
  int line;
};

// FAILED_PRECONDITION naming the line for an unterminated tag, comment or
// string, or a character no expression uses.
absl::StatusOr<std::vector<Token>> Tokenize(std::string_view source);

}  // namespace shardlm::jinja

#endif  // SHARDLM_COORDINATOR_JINJA_LEXER_H_
