#include "coordinator/request_builder.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "common/base/field_error.h"

namespace shardlm {

absl::StatusOr<GenerationRequest> BuildGenerationRequest(const Tokenizer& tokenizer,
                                                         std::string_view model_chat_template,
                                                         ClientRequest request) {
  GenerationRequest g;
  g.params = std::move(request.params);
  g.deadline = request.deadline;
  g.request_id = std::move(request.request_id);
  if (request.output_format.kind != OutputFormat::Kind::kText) {
    absl::StatusOr<GrammarPtr> grammar = CompileOutputFormat(request.output_format);
    if (!grammar.ok()) return grammar.status();
    g.params.grammar = *std::move(grammar);
  }
  const std::string& field = request.prompt_field;
  switch (request.kind) {
    case ClientRequest::Kind::kChat: {
      absl::StatusOr<ChatPrompt> chat = BuildChatPrompt(
          tokenizer, model_chat_template, request.chat_template, request.messages, kMaxPromptBytes,
          request.tools_json);
      if (!chat.ok()) return chat.status();
      g.prompt = std::move(chat->tokens);
      MergeStops(chat->stop, &g.params.stop);
      break;
    }
    case ClientRequest::Kind::kTokens:
      if (request.tokens.size() > static_cast<size_t>(kMaxPromptTokens)) {
        return InvalidFieldError(field, absl::StrCat("more than ", kMaxPromptTokens, " tokens"));
      }
      g.prompt = std::move(request.tokens);
      break;
    case ClientRequest::Kind::kText:
      if (request.text.size() > kMaxPromptBytes) {
        return InvalidFieldError(
            field,
            absl::StrCat(request.text.size(), " bytes exceed the limit of ", kMaxPromptBytes));
      }
      g.prompt = tokenizer.Encode(request.text, request.add_bos, /*parse_special=*/false);
      break;
  }
  return g;
}

}  // namespace shardlm
