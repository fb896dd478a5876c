// Jinja2's built-in filters and tests that chat templates use, with HF's
// `tojson` (input key order, raw UTF-8, `indent`) in place of Jinja2's.
// Filters: abs, capitalize, count, d/default, first, float, indent, int,
// items, join, last, length, list, lower, map, reject, rejectattr, replace,
// reverse, safe, select, selectattr, sort, string, title, tojson, trim,
// unique, upper. Tests: boolean, callable, defined, divisibleby, eq/equalto/==,
// even, false, float, ge/>=, gt/>, in, integer, iterable, le/<=, lower,
// lt/<, mapping, ne/!=, none, number, odd, sameas, sequence, string, true,
// undefined, upper.
#ifndef SHARDLM_COORDINATOR_JINJA_FILTERS_H_
#define SHARDLM_COORDINATOR_JINJA_FILTERS_H_

#include <string>

#include "absl/status/statusor.h"
#include "coordinator/jinja/value.h"

namespace shardlm::jinja {

// UNIMPLEMENTED for an unknown filter; INVALID_ARGUMENT for bad input.
absl::StatusOr<Value> ApplyFilter(const std::string& name, const Value& input,
                                  const CallArgs& args);
absl::StatusOr<bool> ApplyTest(const std::string& name, const Value& input, const CallArgs& args);

}  // namespace shardlm::jinja

#endif  // SHARDLM_COORDINATOR_JINJA_FILTERS_H_
