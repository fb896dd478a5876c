#include "coordinator/tool_calls/tool_call_grammar.h"

#include <nlohmann/json.hpp>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/base/field_error.h"
#include "coordinator/grammar/gbnf_parser.h"
#include "coordinator/grammar/json_schema_to_grammar.h"

namespace shardlm {
namespace {

// One call of `fn` in the style's syntax, its arguments the rule `args`.
std::string CallBody(ToolCallStyle style, const std::string& name, const std::string& args) {
  switch (style) {
    case ToolCallStyle::kHermes:
      return absl::StrCat(GbnfLiteral("<tool_call>\n{\"name\": \"" + name + "\", \"arguments\": "),
                          " ", args, " ", GbnfLiteral("}\n</tool_call>"));
    case ToolCallStyle::kLlama3Json:
      return absl::StrCat(GbnfLiteral("{\"name\": \"" + name + "\", \"parameters\": "), " ", args,
                          " ", GbnfLiteral("}"));
    case ToolCallStyle::kMistral:
      return absl::StrCat(GbnfLiteral("{\"name\": \"" + name + "\", \"arguments\": "), " ", args,
                          " ", GbnfLiteral("}"));
  }
  return "";
}

}  // namespace

absl::StatusOr<std::string> ToolCallGbnf(const ToolRequest& tools, ToolCallStyle style) {
  if (tools.choice != ToolChoice::kRequired && tools.choice != ToolChoice::kNamed) return "";
  SchemaGrammarBuilder builder;
  std::vector<std::string> calls;
  for (size_t i = 0; i < tools.functions.size(); ++i) {
    const ToolFunction& fn = tools.functions[i];
    if (tools.choice == ToolChoice::kNamed && fn.name != tools.choice_name) continue;
    absl::StatusOr<std::string> args = builder.AddSchema(fn.parameters, fn.name + "-args");
    if (!args.ok()) {
      return InvalidFieldError(
          "tools",
          absl::StrCat("tools[", i, "].function.parameters (", fn.name,
                       "): cannot be enforced for tool_choice: ", args.status().message()));
    }
    calls.push_back(CallBody(style, fn.name, *args));
  }
  if (calls.empty()) return InvalidFieldError("tool_choice", "names no offered function");
  const std::string call = absl::StrCat("( ", absl::StrJoin(calls, " | "), " )");
  // Llama 3.1's template takes one call per turn.
  const bool several = tools.parallel && style != ToolCallStyle::kLlama3Json;
  switch (style) {
    case ToolCallStyle::kHermes:
      return builder.Build(several ? absl::StrCat(call, " ( \"\\n\" ", call, " )*") : call);
    case ToolCallStyle::kLlama3Json:
      return builder.Build(call);
    case ToolCallStyle::kMistral:
      return builder.Build(absl::StrCat("\"[TOOL_CALLS][\" ", call,
                                        several ? absl::StrCat(" ( \", \" ", call, " )*") : "",
                                        " \"]\""));
  }
  return "";
}

}  // namespace shardlm
