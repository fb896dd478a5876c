// Python's operators on template values, as Jinja2 evaluates them: + - * /
// // % ** ~, comparisons, `in`. Undefined operands of arithmetic raise
// (Jinja2's UndefinedError); `~` prints them as "".
#ifndef SHARDLM_COORDINATOR_JINJA_OPERATORS_H_
#define SHARDLM_COORDINATOR_JINJA_OPERATORS_H_

#include <string>

#include "absl/status/statusor.h"
#include "coordinator/jinja/value.h"

namespace shardlm::jinja {

// op: "+", "-", "*", "/", "//", "%", "**", "~". INVALID_ARGUMENT with
// Python's TypeError/ZeroDivisionError text otherwise.
absl::StatusOr<Value> BinaryOp(const std::string& op, const Value& a, const Value& b);
// op: "==", "!=", "<", "<=", ">", ">=", "in", "notin".
absl::StatusOr<bool> CompareOp(const std::string& op, const Value& a, const Value& b);
// The error Jinja2 raises when an Undefined is used as a value.
absl::Status UndefinedError(const Value& undefined);

}  // namespace shardlm::jinja

#endif  // SHARDLM_COORDINATOR_JINJA_OPERATORS_H_
