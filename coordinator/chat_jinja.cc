#include "coordinator/chat_jinja.h"

#include <mutex>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace shardlm {
namespace {

// Texts that end a turn in the common templates: where the template spells
// one, generation should stop there even when the vocabulary does not flag
// it as end-of-generation.
constexpr const char* kEndOfTurnMarkers[] = {"<|im_end|>", "<|eot_id|>",           "<|eom_id|>",
                                             "<|end|>",    "<end_of_turn>",        "<|endoftext|>",
                                             "</s>",       "<|END_OF_TURN_TOKEN|>"};

}  // namespace

absl::StatusOr<jinja::Template> ParseChatTemplate(std::string_view source) {
  static std::mutex mu;
  static bool parsed = false;
  static std::string* cached_source = new std::string;
  static absl::StatusOr<jinja::Template>* cached =
      new absl::StatusOr<jinja::Template>(absl::UnknownError("empty cache"));
  std::lock_guard<std::mutex> lock(mu);
  // A refusal is kept too: a template the interpreter lacks a construct for
  // falls back to its family on every request, without parsing it again.
  if (!parsed || *cached_source != source) {
    *cached = jinja::Template::Parse(source);
    *cached_source = std::string(source);
    parsed = true;
  }
  return *cached;
}

namespace {

// A call's arguments as the templates expect them: the object the JSON text
// holds (they `tojson` it or iterate it with |items, as llama.cpp passes
// it), or the text itself when it is not JSON (Hermes-style templates print
// a string as it is).
jinja::Value ArgumentsValue(const std::string& arguments) {
  const nlohmann::ordered_json j = nlohmann::ordered_json::parse(arguments, nullptr,
                                                                 /*allow_exceptions=*/false);
  if (j.is_discarded()) return jinja::Value::String(arguments);
  return jinja::Value::FromJson(j);
}

jinja::Value ToolCallsValue(const std::vector<ChatToolCall>& calls) {
  std::vector<jinja::Value> list;
  for (const ChatToolCall& c : calls) {
    jinja::Dict function;
    function.Set("name", jinja::Value::String(c.name));
    function.Set("arguments", ArgumentsValue(c.arguments));
    jinja::Dict call;
    call.Set("id", jinja::Value::String(c.id));
    call.Set("type", jinja::Value::String("function"));
    call.Set("function", jinja::Value::MakeDict(std::move(function)));
    list.push_back(jinja::Value::MakeDict(std::move(call)));
  }
  return jinja::Value::List(std::move(list));
}

}  // namespace

jinja::Value ChatMessagesValue(const std::vector<ChatMessage>& messages) {
  std::vector<jinja::Value> list;
  for (const ChatMessage& m : messages) {
    jinja::Dict d;
    d.Set("role", jinja::Value::String(m.role));
    // Never null: templates test `'</think>' in message.content` (Qwen3).
    d.Set("content", jinja::Value::String(m.content));
    // Only present when there are calls: Mistral's template treats a
    // defined, non-null `tool_calls` as a call turn.
    if (!m.tool_calls.empty()) d.Set("tool_calls", ToolCallsValue(m.tool_calls));
    if (!m.tool_call_id.empty()) d.Set("tool_call_id", jinja::Value::String(m.tool_call_id));
    if (!m.name.empty()) d.Set("name", jinja::Value::String(m.name));
    list.push_back(jinja::Value::MakeDict(std::move(d)));
  }
  return jinja::Value::List(std::move(list));
}

absl::StatusOr<RenderedChat> RenderJinjaChat(const jinja::Template& tmpl, std::string_view source,
                                             const std::vector<ChatMessage>& messages,
                                             const JinjaChatOptions& options) {
  jinja::Dict vars;
  vars.Set("messages", ChatMessagesValue(messages));
  if (!options.tools_json.empty()) {
    const nlohmann::ordered_json tools = nlohmann::ordered_json::parse(
        options.tools_json, nullptr, /*allow_exceptions=*/false);
    if (tools.is_discarded() || !tools.is_array()) {
      return absl::InvalidArgumentError("tools: must be a JSON array");
    }
    vars.Set("tools", jinja::Value::FromJson(tools));
  }
  vars.Set("add_generation_prompt", jinja::Value::Bool(options.add_generation_prompt));
  if (!options.bos_token.empty()) vars.Set("bos_token", jinja::Value::String(options.bos_token));
  if (!options.eos_token.empty()) vars.Set("eos_token", jinja::Value::String(options.eos_token));

  absl::StatusOr<std::string> text = tmpl.Render(vars, options.render);
  if (!text.ok()) {
    if (text.status().code() != absl::StatusCode::kInvalidArgument) return text.status();
    return absl::InvalidArgumentError(absl::StrCat(
        "messages: the model's chat template refused them (", text.status().message(), ")"));
  }
  RenderedChat out;
  out.prompt = *std::move(text);
  out.add_bos = options.bos_token.empty() || !absl::StartsWith(out.prompt, options.bos_token);
  if (!options.eos_token.empty()) out.stop.push_back(options.eos_token);
  for (const char* marker : kEndOfTurnMarkers) {
    if (source.find(marker) != std::string_view::npos) MergeStops({marker}, &out.stop);
  }
  return out;
}

}  // namespace shardlm
