// Client input -> engine GenerationRequest, for every front end (gRPC
// Generate and Chat, the OpenAI HTTP API, the CLI): prompt text is
// tokenized, token ids are taken as they are, chat messages are rendered
// with a chat template (BuildChatPrompt) and its end-of-turn stop strings
// merged in. The bounds on what a client controls live here, once.
#ifndef SHARDLM_COORDINATOR_REQUEST_BUILDER_H_
#define SHARDLM_COORDINATOR_REQUEST_BUILDER_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/tokenizer/tokenizer.h"
#include "coordinator/chat_template.h"
#include "coordinator/engine.h"
#include "coordinator/grammar/output_format.h"

namespace shardlm {

// Prompt text (or a rendered chat) and prompt token ids a request may carry.
inline constexpr size_t kMaxPromptBytes = 1 << 20;
inline constexpr int kMaxPromptTokens = 1 << 16;

// What a client asked for, in any API's terms. One of text, token ids or
// chat messages is used, by `kind`.
struct ClientRequest {
  enum class Kind { kText, kTokens, kChat };
  Kind kind = Kind::kText;
  std::string text;
  bool add_bos = true;  // kText: let the tokenizer add BOS
  std::vector<int32_t> tokens;
  std::vector<ChatMessage> messages;
  std::string chat_template;  // kChat: a family name the request asked for; empty: the server's
  std::string tools_json;     // kChat: OpenAI `tools` (JSON array text) to render; empty: none
  // The request's name of the field that carried the prompt ("prompt",
  // "prompt_tokens", "messages"): errors about the prompt name it.
  std::string prompt_field = "prompt";
  SamplingParams params;
  // Structured output; compiled into params.grammar by
  // BuildGenerationRequest (a grammar already in params is kept when this
  // is kText).
  OutputFormat output_format;
  absl::Time deadline = absl::InfiniteFuture();
  std::string request_id;
};

// `model_chat_template` is the server's default: a family name or the
// model's Jinja text (see ChatTemplate::Resolve). INVALID_ARGUMENT naming
// the field (common/base/field_error.h) for a prompt over the limits or a
// chat the template cannot render; FAILED_PRECONDITION when a chat has no
// template to use.
absl::StatusOr<GenerationRequest> BuildGenerationRequest(const Tokenizer& tokenizer,
                                                         std::string_view model_chat_template,
                                                         ClientRequest request);

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_REQUEST_BUILDER_H_
