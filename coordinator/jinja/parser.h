// Tokens -> statement tree: the subset of Jinja2 chat templates use (if,
// for with loop filters and else, set, block set, macro, break/continue,
// HF's generation tag; expressions with Jinja2's precedence, where filters
// bind tighter than every binary operator). Anything else is refused with
// its line, never guessed.
#ifndef SHARDLM_COORDINATOR_JINJA_PARSER_H_
#define SHARDLM_COORDINATOR_JINJA_PARSER_H_

#include <string_view>

#include "absl/status/statusor.h"
#include "coordinator/jinja/ast.h"

namespace shardlm::jinja {

// FAILED_PRECONDITION "chat template line N: ..." for a syntax error or an
// unsupported construct.
absl::StatusOr<Body> Parse(std::string_view source);

}  // namespace shardlm::jinja

#endif  // SHARDLM_COORDINATOR_JINJA_PARSER_H_
