// libFuzzer target for the chat-template interpreter: any text must parse
// or be refused, and any parsed template must render or fail with a status
// (never crash, hang or run out of stack) on a conversation with tool calls.
#include <cstddef>
#include <cstdint>
#include <string>

#include "coordinator/jinja/template.h"
#include "nlohmann/json.hpp"

namespace shardlm {
namespace {

// Messages with every shape the templates branch on: system, multi-turn,
// an assistant tool call with object arguments, a tool result, non-ASCII.
const jinja::Dict& Variables() {
  static const jinja::Dict* vars = [] {
    auto* d = new jinja::Dict;
    const auto messages = nlohmann::ordered_json::parse(R"([
      {"role": "system", "content": " Be terse.\u3000"},
      {"role": "user", "content": "Weather in Paris? <think>x</think>"},
      {"role": "assistant", "content": "", "tool_calls": [{"id": "abc123XYZ", "type": "function",
        "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": [1, 2.5]}}}]},
      {"role": "tool", "tool_call_id": "abc123XYZ", "content": "{\"t\": 21.5}"},
      {"role": "assistant", "content": "<think>\nok\n</think>\n\nSunny, 21.5 °C."}])");
    const auto tools = nlohmann::ordered_json::parse(R"([{"type": "function", "function": {
      "name": "get_weather", "description": "Weather.", "parameters": {"type": "object",
      "properties": {"city": {"type": "string"}, "days": {"type": ["integer", "string"]}},
      "required": ["city"]}}}])");
    d->Set("messages", jinja::Value::FromJson(messages));
    d->Set("tools", jinja::Value::FromJson(tools));
    d->Set("add_generation_prompt", jinja::Value::Bool(true));
    d->Set("bos_token", jinja::Value::String("<s>"));
    d->Set("eos_token", jinja::Value::String("</s>"));
    return d;
  }();
  return *vars;
}

}  // namespace
}  // namespace shardlm

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string source(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<shardlm::jinja::Template> t = shardlm::jinja::Template::Parse(source);
  if (!t.ok()) return 0;
  shardlm::jinja::RenderOptions options;
  options.max_steps = 20'000;  // keeps each run fast; the bound itself is what is tested
  options.max_output_bytes = 1 << 20;
  (void)t->Render(shardlm::Variables(), options);
  return 0;
}
