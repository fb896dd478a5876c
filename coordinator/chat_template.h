// Chat templates: role-tagged messages -> one prompt string.
//
// A model's own template (GGUF `tokenizer.chat_template`, Hugging Face Jinja
// text) is rendered by the Jinja interpreter (coordinator/jinja, through
// chat_jinja.h) exactly as Jinja2 renders it under HF's apply_chat_template
// conventions. Three families are also rendered natively, by hand, exactly
// as their official templates render with `add_generation_prompt=True`
// (quoted in chat_template.cc, pinned by the unit tests): a request or the
// server's --chat-template may name one (`zephyr`, `llama2`, `chatml`), and
// a model with no template gets ChatML, as with llama.cpp's server.
//
// The rendered text contains control-token text (`</s>`, `<s>`,
// `<|im_start|>`): tokenize it with parse_special=true. Like llama.cpp's
// server, message content is not escaped, so a message that spells such a
// marker produces the marker's token.
#ifndef SHARDLM_COORDINATOR_CHAT_TEMPLATE_H_
#define SHARDLM_COORDINATOR_CHAT_TEMPLATE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace shardlm {

class Tokenizer;

// A function call an assistant message made (OpenAI `tool_calls[]`).
struct ChatToolCall {
  std::string id;
  std::string name;
  std::string arguments;  // JSON text, as the OpenAI API carries it
};

struct ChatMessage {
  std::string role;  // "system", "user", "assistant" or "tool"
  std::string content;
  // Initialized here so {role, content} stays a complete initializer.
  std::vector<ChatToolCall> tool_calls = {};  // assistant: the calls it made
  std::string tool_call_id = {};              // tool: the call this is the result of
  std::string name = {};                      // tool: the function's name
};

enum class ChatFamily { kZephyr, kLlama2, kChatMl };

// "zephyr", "llama2", "chatml".
const char* ChatFamilyName(ChatFamily family);

struct RenderedChat {
  std::string prompt;   // ends with the assistant's turn opened
  bool add_bos = true;  // let the tokenizer add BOS (false: the text spells it)
  // The family's end-of-turn text: generation stops there (as a stop string;
  // it is usually also the model's EOS token, which ends it anyway).
  std::vector<std::string> stop;
};

class ChatTemplate {
 public:
  // By name: "zephyr", "llama2", "chatml" (case-insensitive; "llama-2",
  // "tinyllama" and "chat-ml" are accepted too). INVALID_ARGUMENT naming the
  // name and the known ones otherwise.
  static absl::StatusOr<ChatTemplate> FromName(std::string_view name);
  // From a model's Jinja template text, by its markers. FAILED_PRECONDITION
  // naming what was found (e.g. Llama-3 or Mistral markers) when it is none
  // of the supported families.
  static absl::StatusOr<ChatTemplate> Detect(std::string_view jinja);
  // The request's template name when given (FromName), else the server's
  // default: a family name (the --chat-template flag) or the model's Jinja
  // text (Detect); ChatML when there is none. (BuildChatPrompt renders a
  // model's Jinja text with the interpreter instead of Detect.)
  static absl::StatusOr<ChatTemplate> Resolve(std::string_view requested_name,
                                              std::string_view model_template);

  // INVALID_ARGUMENT for no messages, an unknown role or an order the family
  // cannot express (Llama-2: one optional leading system message, then
  // user/assistant alternating, ending with the user).
  absl::StatusOr<RenderedChat> Render(const std::vector<ChatMessage>& messages) const;

  ChatFamily family() const { return family_; }
  const char* name() const { return ChatFamilyName(family_); }

 private:
  explicit ChatTemplate(ChatFamily family) : family_(family) {}
  ChatFamily family_;
};

// A chat turned into engine input: prompt token ids (rendered, then encoded
// with parse_special=true) and the stop strings to add to the request.
struct ChatPrompt {
  std::vector<int32_t> tokens;
  std::vector<std::string> stop;
  std::string template_name;
};

// Renders and encodes a chat: with the requested family when the request
// names one, else the server default `model_template` — a family name (the
// --chat-template flag), the model's Jinja text (rendered by the
// interpreter with the vocabulary's BOS/EOS texts and today's date; a family
// when it uses a construct the interpreter lacks) or empty (ChatML).
// `max_prompt_bytes` bounds the rendered text. `tools_json` (the request's
// OpenAI `tools` array as JSON text; empty: none) reaches a Jinja template as
// `tools`; ChatML presents tools and tool messages Hermes-style
// (tool_calls/chatml_tools_template.h); zephyr and llama2 refuse them.
// INVALID_ARGUMENT for no messages or ones the template refuses (its
// message included).
absl::StatusOr<ChatPrompt> BuildChatPrompt(const Tokenizer& tokenizer,
                                           std::string_view model_template,
                                           std::string_view requested_template,
                                           const std::vector<ChatMessage>& messages,
                                           size_t max_prompt_bytes,
                                           std::string_view tools_json = {});

// True when BuildChatPrompt renders with the model's Jinja template (rather
// than a family): the request names no template and the server default
// `model_template` is Jinja text, not empty and not a family name.
bool UsesModelJinja(std::string_view model_template, std::string_view requested_template);

// What BuildChatPrompt renders with when a request names no template, for
// the server's startup log; the error when the model's Jinja template can be
// neither interpreted nor matched to a family.
absl::StatusOr<std::string> DescribeDefaultTemplate(std::string_view model_template);

// Appends the stops not already present in `stop` (a user's own stop strings
// come first).
void MergeStops(const std::vector<std::string>& extra, std::vector<std::string>* stop);

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_CHAT_TEMPLATE_H_
