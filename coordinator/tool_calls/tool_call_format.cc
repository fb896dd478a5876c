#include "coordinator/tool_calls/tool_call_format.h"

#include "coordinator/chat_template.h"

namespace shardlm {
namespace {

bool Has(std::string_view text, std::string_view marker) {
  return text.find(marker) != std::string_view::npos;
}

}  // namespace

const char* ToolCallStyleName(ToolCallStyle style) {
  switch (style) {
    case ToolCallStyle::kHermes:
      return "hermes";
    case ToolCallStyle::kLlama3Json:
      return "llama3";
    case ToolCallStyle::kMistral:
      return "mistral";
  }
  return "unknown";
}

ToolCallStyle DetectToolCallStyle(std::string_view model_template,
                                  std::string_view requested_template) {
  // A family renders the chat: ChatML presents tools Hermes-style (and
  // zephyr and llama2 refuse them).
  if (!UsesModelJinja(model_template, requested_template)) return ToolCallStyle::kHermes;
  // Mistral's and Hermes' markers are unambiguous; Llama 3's templates
  // describe the JSON shape in words ("parameters": dictionary of argument
  // name ...) inside its header-id turn markers.
  if (Has(model_template, "[TOOL_CALLS]")) return ToolCallStyle::kMistral;
  if (Has(model_template, "<tool_call>")) return ToolCallStyle::kHermes;
  if (Has(model_template, "<|start_header_id|>")) return ToolCallStyle::kLlama3Json;
  return ToolCallStyle::kHermes;
}

std::string_view ToolCallOpenMarker(ToolCallStyle style) {
  switch (style) {
    case ToolCallStyle::kHermes:
      return "<tool_call>";
    case ToolCallStyle::kMistral:
      return "[TOOL_CALLS]";
    case ToolCallStyle::kLlama3Json:
      return "";
  }
  return "";
}

std::string MakeToolCallId(ToolCallStyle style, std::mt19937_64* rng) {
  static constexpr char kAlnum[] =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
  const int n = style == ToolCallStyle::kMistral ? 9 : 24;
  std::string id = style == ToolCallStyle::kMistral ? "" : "call_";
  for (int i = 0; i < n; ++i) id += kAlnum[(*rng)() % (sizeof(kAlnum) - 1)];
  return id;
}

}  // namespace shardlm
