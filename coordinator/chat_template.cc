#include "coordinator/chat_template.h"

#include <algorithm>
#include <cctype>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/string_view.h"
#include "common/base/field_error.h"
#include "common/tokenizer/tokenizer.h"
#include "coordinator/chat_jinja.h"
#include "coordinator/jinja/template.h"
#include "coordinator/tool_calls/chatml_tools_template.h"

namespace shardlm {
namespace {

constexpr absl::string_view kNoMessages = "empty (a chat needs at least one message)";

// The official templates, as published in the models' tokenizer_config.json
// (Hugging Face Jinja, rendered with trim_blocks/lstrip_blocks and
// add_generation_prompt=True):
//
// Zephyr — HuggingFaceH4/zephyr-7b-beta, TinyLlama/TinyLlama-1.1B-Chat-v1.0:
//   {% for message in messages %}
//   {% if message['role'] == 'user' %}
//   {{ '<|user|>\n' + message['content'] + eos_token }}
//   {% elif message['role'] == 'system' %}
//   {{ '<|system|>\n' + message['content'] + eos_token }}
//   {% elif message['role'] == 'assistant' %}
//   {{ '<|assistant|>\n'  + message['content'] + eos_token }}
//   {% endif %}
//   {% if loop.last and add_generation_prompt %}
//   {{ '<|assistant|>' }}
//   {% endif %}
//   {% endfor %}
// trim_blocks drops the newline after each `%}` but not after `}}`, so every
// turn is "<|role|>\n" + content + "</s>\n" and the prompt ends "<|assistant|>\n".
//
// Llama-2 chat — meta-llama/Llama-2-7b-chat-hf:
//   {% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}
//   {% set system_message = messages[0]['content'] %}{% else %}
//   {% set loop_messages = messages %}{% set system_message = false %}{% endif %}
//   {% for message in loop_messages %}
//   {% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
//   {{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}
//   {% endif %}
//   {% if loop.index0 == 0 and system_message != false %}
//   {% set content = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] %}
//   {% else %}{% set content = message['content'] %}{% endif %}
//   {% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}
//   {% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}
//   {% endif %}{% endfor %}
// (written on one line in the original). transformers' own test renders
//   "<s>[INST] <<SYS>>\nSYS\n<</SYS>>\n\nHello [/INST] Hi </s><s>[INST] Again [/INST]".
//
// ChatML — teknium/OpenHermes-2.5-Mistral-7B (and Qwen, Yi, ...):
//   {% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' +
//   message['content'] + '<|im_end|>' + '\n'}}{% endfor %}
//   {% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}
// llama.cpp's tests/test-chat-template.cpp pins the same renderings.

constexpr char kKnownNames[] = "zephyr, llama2, chatml";

// Python's str.strip() on ASCII whitespace (what the Llama-2 template calls).
std::string_view Strip(std::string_view s) {
  const char* ws = " \t\n\r\f\v";
  const size_t a = s.find_first_not_of(ws);
  if (a == std::string_view::npos) return {};
  const size_t b = s.find_last_not_of(ws);
  return s.substr(a, b - a + 1);
}

bool Has(std::string_view text, std::string_view marker) {
  return text.find(marker) != std::string_view::npos;
}

absl::Status CheckRoles(const std::vector<ChatMessage>& messages) {
  if (messages.empty()) {
    return InvalidFieldError("messages", kNoMessages);
  }
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string& r = messages[i].role;
    if (r != "system" && r != "user" && r != "assistant") {
      return WithField(
          absl::InvalidArgumentError(absl::StrCat("messages[", i, "].role: '", r,
                                                  "' is not one of system, user, assistant")),
          "messages");
    }
  }
  return absl::OkStatus();
}

// Each message as open + role + close + content + end + "\n", then the
// assistant's header; generation stops at `end`.
RenderedChat RenderRoleTagged(const std::vector<ChatMessage>& messages, absl::string_view open,
                              absl::string_view close, absl::string_view end) {
  RenderedChat out;
  for (const ChatMessage& m : messages) {
    absl::StrAppend(&out.prompt, open, m.role, close, m.content, end, "\n");
  }
  absl::StrAppend(&out.prompt, open, "assistant", close);
  out.stop = {std::string(end)};
  return out;
}

RenderedChat RenderZephyr(const std::vector<ChatMessage>& messages) {
  return RenderRoleTagged(messages, "<|", "|>\n", "</s>");
}

absl::StatusOr<RenderedChat> RenderLlama2(const std::vector<ChatMessage>& messages) {
  size_t first = 0;
  std::string system;
  bool has_system = false;
  if (messages[0].role == "system") {
    system = messages[0].content;
    has_system = true;
    first = 1;
  }
  if (first == messages.size()) {
    return InvalidFieldError("messages", "llama2 needs a user message after the system one");
  }
  RenderedChat out;
  out.add_bos = false;  // the template spells "<s>" before every [INST]
  for (size_t i = first; i < messages.size(); ++i) {
    const ChatMessage& m = messages[i];
    const bool want_user = (i - first) % 2 == 0;
    if ((m.role == "user") != want_user || m.role == "system") {
      return WithField(
          absl::InvalidArgumentError(absl::StrCat(
              "messages[", i, "].role: '", m.role, "' — llama2 takes one optional system message ",
              "first, then user and assistant messages alternating, starting with user")),
          "messages");
    }
    if (m.role == "user") {
      std::string content = m.content;
      if (i == first && has_system) {
        content = absl::StrCat("<<SYS>>\n", system, "\n<</SYS>>\n\n", m.content);
      }
      absl::StrAppend(&out.prompt, "<s>[INST] ", std::string(Strip(content)), " [/INST]");
    } else {
      absl::StrAppend(&out.prompt, " ", std::string(Strip(m.content)), " </s>");
    }
  }
  if (messages.back().role != "user") {
    return InvalidFieldError(
        "messages", "llama2 needs the last message to be the user's (the answer follows [/INST])");
  }
  out.stop = {"</s>"};
  return out;
}

RenderedChat RenderChatMl(const std::vector<ChatMessage>& messages) {
  return RenderRoleTagged(messages, "<|im_start|>", "\n", "<|im_end|>");
}

// What a template we do not render looks like, for the error message.
struct Lookalike {
  const char* marker;
  const char* family;
};
constexpr Lookalike kUnsupported[] = {
    {"<|start_header_id|>", "Llama-3"},
    {"<start_of_turn>", "Gemma"},
    {"<|im_sep|>", "Phi-4"},
    {"<|end|>", "Phi-3"},
    {"<|START_OF_TURN_TOKEN|>", "Command-R"},
    {"<|endoftext|>", "StableLM-Zephyr"},
    {"[SYSTEM_PROMPT]", "Mistral v7"},
    {"[INST]", "Mistral (no <<SYS>> block)"},
};

}  // namespace

const char* ChatFamilyName(ChatFamily family) {
  switch (family) {
    case ChatFamily::kZephyr:
      return "zephyr";
    case ChatFamily::kLlama2:
      return "llama2";
    case ChatFamily::kChatMl:
      return "chatml";
  }
  return "unknown";
}

namespace {

// The family a name stands for (case-insensitive), without copying the
// text: the server's default is tested with it on every chat request, and
// is usually a model's whole Jinja template.
std::optional<ChatFamily> FamilyOfName(std::string_view name) {
  const absl::string_view n(name.data(), name.size());
  const auto is = [n](absl::string_view a, absl::string_view b) {
    return absl::EqualsIgnoreCase(n, a) || absl::EqualsIgnoreCase(n, b);
  };
  if (is("zephyr", "tinyllama")) return ChatFamily::kZephyr;
  if (is("llama2", "llama-2")) return ChatFamily::kLlama2;
  if (is("chatml", "chat-ml")) return ChatFamily::kChatMl;
  return std::nullopt;
}

}  // namespace

absl::StatusOr<ChatTemplate> ChatTemplate::FromName(std::string_view name) {
  if (std::optional<ChatFamily> family = FamilyOfName(name)) return ChatTemplate(*family);
  return InvalidFieldError(
      "template", absl::StrCat("'", std::string(name),
                               "' is not a known chat template (known: ", kKnownNames, ")"));
}

absl::StatusOr<ChatTemplate> ChatTemplate::Detect(std::string_view jinja) {
  // Markers that would make a look-alike match a supported family wrongly
  // are checked inside each rule (Phi-4 uses <|im_start|> with <|im_sep|>,
  // Phi-3 and StableLM-Zephyr use <|user|> with other end-of-turn texts).
  if (Has(jinja, "<|im_start|>") && !Has(jinja, "<|im_sep|>")) {
    return ChatTemplate(ChatFamily::kChatMl);
  }
  if (Has(jinja, "[INST]") && Has(jinja, "<<SYS>>")) return ChatTemplate(ChatFamily::kLlama2);
  if (Has(jinja, "<|user|>") && Has(jinja, "<|assistant|>") &&
      (Has(jinja, "eos_token") || Has(jinja, "</s>")) && !Has(jinja, "<|end|>") &&
      !Has(jinja, "<|endoftext|>")) {
    return ChatTemplate(ChatFamily::kZephyr);
  }
  std::string found;
  for (const Lookalike& l : kUnsupported) {
    if (Has(jinja, l.marker)) {
      found = absl::StrCat(" It looks like ", l.family, " (it contains \"", l.marker, "\").");
      break;
    }
  }
  std::string head(jinja.substr(0, 60));
  std::replace(head.begin(), head.end(), '\n', ' ');
  return absl::FailedPreconditionError(absl::StrCat(
      "the model's chat template (tokenizer.chat_template, ", jinja.size(), " bytes, starting \"",
      head, jinja.size() > 60 ? "..." : "", "\") is none of the supported families (", kKnownNames,
      ").", found, " Name a template in the request to use one of those."));
}

bool UsesModelJinja(std::string_view model_template, std::string_view requested_template) {
  return requested_template.empty() && !model_template.empty() &&
         !FamilyOfName(model_template).has_value();
}

absl::StatusOr<ChatTemplate> ChatTemplate::Resolve(std::string_view requested_name,
                                                   std::string_view model_template) {
  if (!requested_name.empty()) return FromName(requested_name);
  // No template in the model: ChatML, as llama.cpp's server does.
  if (model_template.empty()) return ChatTemplate(ChatFamily::kChatMl);
  // The server's --chat-template is a family name, not Jinja text.
  if (std::optional<ChatFamily> family = FamilyOfName(model_template)) return ChatTemplate(*family);
  return Detect(model_template);
}

absl::StatusOr<RenderedChat> ChatTemplate::Render(const std::vector<ChatMessage>& messages) const {
  if (absl::Status st = CheckRoles(messages); !st.ok()) return st;
  switch (family_) {
    case ChatFamily::kZephyr:
      return RenderZephyr(messages);
    case ChatFamily::kLlama2:
      return RenderLlama2(messages);
    case ChatFamily::kChatMl:
      return RenderChatMl(messages);
  }
  return absl::InternalError("unknown chat family");
}

namespace {

// The vocabulary's text of a special token, or "" when it has none.
std::string SpecialText(const Tokenizer& tokenizer, int32_t id) {
  return tokenizer.IsValidId(id) ? tokenizer.TokenText(id) : std::string();
}

// True when the chat involves function calling: tools offered, an
// assistant turn that called one, or a tool result.
bool UsesTools(const std::vector<ChatMessage>& messages, std::string_view tools_json) {
  if (!tools_json.empty()) return true;
  for (const ChatMessage& m : messages) {
    if (m.role == "tool" || !m.tool_calls.empty()) return true;
  }
  return false;
}

// ChatML with tools: the Hermes-style template, parsed once.
absl::StatusOr<RenderedChat> RenderChatMlTools(const std::vector<ChatMessage>& messages,
                                               std::string_view tools_json) {
  static const absl::StatusOr<jinja::Template>* tmpl =
      new absl::StatusOr<jinja::Template>(jinja::Template::Parse(kChatMlToolsTemplate));
  if (!tmpl->ok()) return tmpl->status();
  JinjaChatOptions options;
  options.eos_token = "<|im_end|>";
  options.tools_json = std::string(tools_json);
  options.render = jinja::DefaultRenderOptions();
  absl::StatusOr<RenderedChat> r = RenderJinjaChat(**tmpl, kChatMlToolsTemplate, messages, options);
  // ChatML lets the tokenizer add its BOS, as the native rendering does.
  if (r.ok()) r->add_bos = true;
  return r;
}

// A family rendered natively; tools only where the family can present them.
absl::StatusOr<RenderedChat> RenderFamily(const ChatTemplate& family,
                                          const std::vector<ChatMessage>& messages,
                                          std::string_view tools_json) {
  if (!UsesTools(messages, tools_json)) return family.Render(messages);
  if (family.family() == ChatFamily::kChatMl) {
    return RenderChatMlTools(messages, tools_json);
  }
  const std::string can = "(chatml and the model's own Jinja template can)";
  if (!tools_json.empty()) {
    return InvalidFieldError(
        "tools", absl::StrCat("the ", family.name(), " chat template cannot present tools ", can));
  }
  size_t i = 0;
  while (i < messages.size() && messages[i].role != "tool" && messages[i].tool_calls.empty()) ++i;
  return InvalidFieldError(
      "messages",
      absl::StrCat("messages[", i, "]",
                   messages[i].role == "tool" ? ".role: 'tool' is a tool result, which"
                                              : ".tool_calls: a tool call, which",
                   " the ", family.name(), " chat template cannot present ", can));
}

absl::StatusOr<RenderedChat> RenderModelJinja(const Tokenizer& tokenizer,
                                              std::string_view model_template,
                                              const std::vector<ChatMessage>& messages,
                                              std::string_view tools_json, std::string* name) {
  absl::StatusOr<jinja::Template> tmpl = ParseChatTemplate(model_template);
  if (!tmpl.ok()) {
    // A construct the interpreter lacks: a known family still renders it
    // exactly; anything else is refused rather than guessed.
    absl::StatusOr<ChatTemplate> family = ChatTemplate::Detect(model_template);
    if (!family.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the model's chat template (tokenizer.chat_template) cannot be rendered: ",
          tmpl.status().message(), ". Name a template in the request (", kKnownNames, ")."));
    }
    *name = family->name();
    return RenderFamily(*family, messages, tools_json);
  }
  JinjaChatOptions options;
  options.tools_json = std::string(tools_json);
  options.bos_token = SpecialText(tokenizer, tokenizer.bos_id());
  options.eos_token = SpecialText(tokenizer, tokenizer.eos_id());
  options.render = jinja::DefaultRenderOptions();  // strftime_now: today
  *name = "jinja";
  return RenderJinjaChat(*tmpl, model_template, messages, options);
}

}  // namespace

absl::StatusOr<std::string> DescribeDefaultTemplate(std::string_view model_template) {
  if (model_template.empty()) return std::string("chatml (the model has no chat template)");
  if (absl::StatusOr<ChatTemplate> named = ChatTemplate::FromName(model_template); named.ok()) {
    return std::string(named->name());
  }
  absl::StatusOr<jinja::Template> tmpl = ParseChatTemplate(model_template);
  if (tmpl.ok()) {
    return absl::StrCat("the model's Jinja template (", model_template.size(), " bytes)");
  }
  absl::StatusOr<ChatTemplate> family = ChatTemplate::Detect(model_template);
  if (family.ok()) {
    return absl::StrCat(family->name(), " (the model's template, which the interpreter refuses: ",
                        tmpl.status().message(), ")");
  }
  return tmpl.status();
}

absl::StatusOr<ChatPrompt> BuildChatPrompt(const Tokenizer& tokenizer,
                                           std::string_view model_template,
                                           std::string_view requested_template,
                                           const std::vector<ChatMessage>& messages,
                                           size_t max_prompt_bytes,
                                           std::string_view tools_json) {
  if (messages.empty()) return InvalidFieldError("messages", kNoMessages);
  std::string name;
  absl::StatusOr<RenderedChat> r;
  if (UsesModelJinja(model_template, requested_template)) {
    r = RenderModelJinja(tokenizer, model_template, messages, tools_json, &name);
  } else {
    absl::StatusOr<ChatTemplate> t = ChatTemplate::Resolve(requested_template, model_template);
    if (!t.ok()) return t.status();
    name = t->name();
    r = RenderFamily(*t, messages, tools_json);
  }
  if (!r.ok()) return r.status();
  if (r->prompt.size() > max_prompt_bytes) {
    return InvalidFieldError("messages",
                             absl::StrCat("the rendered prompt has ", r->prompt.size(),
                                          " bytes, over the limit of ", max_prompt_bytes));
  }
  ChatPrompt out;
  out.tokens = tokenizer.Encode(r->prompt, r->add_bos, /*parse_special=*/true);
  out.stop = std::move(r->stop);
  out.template_name = std::move(name);
  return out;
}

void MergeStops(const std::vector<std::string>& extra, std::vector<std::string>* stop) {
  for (const std::string& s : extra) {
    if (std::find(stop->begin(), stop->end(), s) == stop->end()) stop->push_back(s);
  }
}

}  // namespace shardlm
