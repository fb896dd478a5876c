// The function-calling fields of an OpenAI chat request: `tools`,
// `tool_choice` ("auto", "none", "required" or {"type": "function",
// "function": {"name"}}) and `parallel_tool_calls`, checked and kept in the
// request's own key order (templates print the tools with tojson, which
// keeps it).
#ifndef SHARDLM_COORDINATOR_TOOL_CALLS_TOOL_REQUEST_H_
#define SHARDLM_COORDINATOR_TOOL_CALLS_TOOL_REQUEST_H_

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace shardlm {

enum class ToolChoice { kAuto, kNone, kRequired, kNamed };

struct ToolFunction {
  std::string name;
  // The function's JSON schema (`parameters`); {"type": "object",
  // "properties": {}} when the tool gives none.
  nlohmann::ordered_json parameters;
};

struct ToolRequest {
  std::vector<ToolFunction> functions;  // empty: no tools
  std::string tools_json;               // `tools` as sent (key order kept), for the template
  ToolChoice choice = ToolChoice::kAuto;
  std::string choice_name;  // kNamed
  bool parallel = true;     // parallel_tool_calls

  // Tools are offered and may be called: render them, parse the reply.
  bool active() const { return !functions.empty() && choice != ToolChoice::kNone; }
  // The function to force: kNamed's, or the only one under kRequired; null
  // otherwise.
  const ToolFunction* Forced() const;
  std::vector<std::string> names() const;
};

// `body` is the whole request, parsed with its key order. INVALID_ARGUMENT
// naming the field for a tool that is not {"type": "function", "function":
// {"name", ...}}, a name that is not 1-64 of [a-zA-Z0-9_-] or appears
// twice, `parameters` that is not an object, a tool_choice that is none of
// the four forms or names a function not in `tools`, "required" or a named
// choice without tools, and the legacy `functions` / `function_call`.
absl::StatusOr<ToolRequest> ParseToolRequest(const nlohmann::ordered_json& body);

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_TOOL_CALLS_TOOL_REQUEST_H_
