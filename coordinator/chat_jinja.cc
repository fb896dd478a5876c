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

absl::StatusOr<RenderedChat> RenderJinjaChat(const jinja::Template& tmpl, std::string_view source,
                                             const std::vector<ChatMessage>& messages,
                                             const JinjaChatOptions& options) {
  std::vector<jinja::Value> list;
  for (const ChatMessage& m : messages) {
    jinja::Dict d;
    d.Set("role", jinja::Value::String(m.role));
    d.Set("content", jinja::Value::String(m.content));
    list.push_back(jinja::Value::MakeDict(std::move(d)));
  }
  jinja::Dict vars;
  vars.Set("messages", jinja::Value::List(std::move(list)));
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
