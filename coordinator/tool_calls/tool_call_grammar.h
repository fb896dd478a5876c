// tool_choice "required" or a named function, enforced: the GBNF grammar
// (coordinator/grammar/) of a reply that is nothing but calls in the
// template's own syntax, each naming an offered function (the named one)
// with arguments that fit its `parameters` schema:
//   Hermes:  <tool_call>\n{"name": "f", "arguments": ARGS}\n</tool_call>
//            (several, one per line, unless parallel_tool_calls is false)
//   Llama 3: {"name": "f", "parameters": ARGS}   (one: its template takes one)
//   Mistral: [TOOL_CALLS][{"name": "f", "arguments": ARGS}, ...]
// Constrained sampling then makes every such reply parse (ToolCallParser)
// into calls whose arguments are valid JSON fitting the schema.
#ifndef SHARDLM_COORDINATOR_TOOL_CALLS_TOOL_CALL_GRAMMAR_H_
#define SHARDLM_COORDINATOR_TOOL_CALLS_TOOL_CALL_GRAMMAR_H_

#include <string>

#include "absl/status/statusor.h"
#include "coordinator/tool_calls/tool_call_format.h"
#include "coordinator/tool_calls/tool_request.h"

namespace shardlm {

// The GBNF for `tools` (choice kRequired or kNamed); "" for kAuto / kNone
// (no constraint). INVALID_ARGUMENT naming `tools` and the schema keyword
// the grammar converter cannot honour.
absl::StatusOr<std::string> ToolCallGbnf(const ToolRequest& tools, ToolCallStyle style);

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_TOOL_CALLS_TOOL_CALL_GRAMMAR_H_
