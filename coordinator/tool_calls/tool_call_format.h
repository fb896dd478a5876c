// How a model writes a function call, by the chat template that prompts it:
//   Hermes / Qwen2.5 / Qwen3 (and ChatML with tools, see
//   chatml_tools_template.h):
//       <tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>
//   Llama 3.1 / 3.2 (JSON tool calls): the whole reply is
//       {"name": "f", "parameters": {...}}
//   Mistral (Nemo and later):
//       [TOOL_CALLS][{"name": "f", "arguments": {...}, "id": "abcDEF123"}]
// The same three shapes llama.cpp's common/chat.cpp parses for these
// templates.
#ifndef SHARDLM_COORDINATOR_TOOL_CALLS_TOOL_CALL_FORMAT_H_
#define SHARDLM_COORDINATOR_TOOL_CALLS_TOOL_CALL_FORMAT_H_

#include <random>
#include <string>
#include <string_view>

namespace shardlm {

enum class ToolCallStyle { kHermes, kLlama3Json, kMistral };

// "hermes", "llama3", "mistral".
const char* ToolCallStyleName(ToolCallStyle style);

// The style of the template a chat request is rendered with: the request's
// template name when it gives one (a native family: ChatML presents tools
// Hermes-style), else the server's default `model_template` (a family name,
// the model's Jinja text, or empty for ChatML). A Jinja template that shows
// none of the three shapes gets Hermes, the most common one.
ToolCallStyle DetectToolCallStyle(std::string_view model_template,
                                  std::string_view requested_template);

// The text that opens a call in the reply ("" for Llama 3: the reply is the
// call's JSON object itself).
std::string_view ToolCallOpenMarker(ToolCallStyle style);

// A fresh call id: Mistral's templates require exactly 9 alphanumerics when
// the call comes back in the conversation; the others get OpenAI's shape,
// "call_" and 24 alphanumerics.
std::string MakeToolCallId(ToolCallStyle style, std::mt19937_64* rng);

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_TOOL_CALLS_TOOL_CALL_FORMAT_H_
