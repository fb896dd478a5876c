// A model's own chat template (GGUF `tokenizer.chat_template`, Hugging Face
// Jinja) rendered by the Jinja interpreter with the variables llama.cpp's
// server and HF's apply_chat_template pass: messages as {role, content}
// dicts (plus `tool_calls` on assistant messages that called functions, with
// the arguments parsed into objects, and `tool_call_id`/`name` on tool
// results), `tools` when the request offers any (left undefined otherwise,
// llama.cpp's convention), add_generation_prompt, bos_token/eos_token (the
// vocabulary's texts; left undefined when the model has none), and
// strftime_now on the clock.
#ifndef SHARDLM_COORDINATOR_CHAT_JINJA_H_
#define SHARDLM_COORDINATOR_CHAT_JINJA_H_

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/chat_template.h"
#include "coordinator/jinja/template.h"

namespace shardlm {

struct JinjaChatOptions {
  std::string bos_token;  // empty: undefined in the template
  std::string eos_token;  // empty: undefined in the template
  bool add_generation_prompt = true;
  // The request's `tools` as JSON text (an array, in request key order: the
  // templates print it with tojson); empty: `tools` stays undefined.
  std::string tools_json;
  jinja::RenderOptions render;  // the clock and the limits
};

// Parses `source`, reusing the last parse of the same text: a server
// renders its one model template for every request.
absl::StatusOr<jinja::Template> ParseChatTemplate(std::string_view source);

// Renders `messages` through `tmpl` (parsed from `source`). add_bos is false
// when the text already starts with the BOS text (Llama 3, Mistral spell
// it); the stops are the EOS text and the end-of-turn markers the template
// uses. INVALID_ARGUMENT when the template refuses the conversation
// (raise_exception, or what Jinja2 would raise), naming the template line.
// The `messages` variable a template receives.
jinja::Value ChatMessagesValue(const std::vector<ChatMessage>& messages);

absl::StatusOr<RenderedChat> RenderJinjaChat(const jinja::Template& tmpl, std::string_view source,
                                             const std::vector<ChatMessage>& messages,
                                             const JinjaChatOptions& options);

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_CHAT_JINJA_H_
