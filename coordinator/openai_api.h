// The OpenAI wire format, without sockets: request JSON -> OpenAiRequest
// (onto SamplingParams), engine events -> response JSON / server-sent
// events, and absl::Status -> OpenAI-shaped errors. openai_http.cc serves
// it; everything here is testable on its own.
//
// Shapes follow the OpenAI API reference for /v1/completions and
// /v1/chat/completions (objects "text_completion", "chat.completion",
// "chat.completion.chunk"; `usage`; errors as
// {"error": {"message", "type", "param", "code"}}).
#ifndef SHARDLM_COORDINATOR_OPENAI_API_H_
#define SHARDLM_COORDINATOR_OPENAI_API_H_

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "coordinator/chat_template.h"
#include "coordinator/engine.h"
#include "coordinator/request_builder.h"
#include "coordinator/sampling_params.h"
#include "coordinator/tool_calls/tool_call_format.h"
#include "coordinator/tool_calls/tool_call_parser.h"
#include "coordinator/tool_calls/tool_request.h"

namespace shardlm {

enum class OpenAiKind { kCompletion, kChat };

// One parsed request. Defaults are OpenAI's: temperature 1, top_p 1, no
// top_k / min_p (extensions `top_k`, `min_p`, `repetition_penalty`,
// `ignore_eos` are accepted as vLLM does), max_tokens 16 for completions and
// "until the context is full" for chat, a random seed unless one is given.
struct OpenAiRequest {
  OpenAiKind kind = OpenAiKind::kCompletion;
  std::string model;                   // as sent; we answer with ours
  std::string prompt;                  // completion, as text
  std::vector<int32_t> prompt_tokens;  // completion, as token ids (then used instead)
  bool has_prompt_tokens = false;
  std::vector<ChatMessage> messages;  // chat
  std::string chat_template;          // chat extension `template`: a family name
  SamplingParams params;
  OutputFormat output_format;  // response_format / grammar (compiled by the front door)
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  // -1: no logprobs. Completions: `logprobs` (alternatives per token, 0..20).
  // Chat: `top_logprobs` when `logprobs` is true (0..20).
  int logprobs = -1;
  // Chat: tools, tool_choice, parallel_tool_calls; and how the template in
  // use writes calls (the server sets it: it depends on its template).
  ToolRequest tools;
  ToolCallStyle tool_style = ToolCallStyle::kHermes;
};

// INVALID_ARGUMENT naming the parameter ("n: ...", "stop: ...") for a body
// that is not JSON, a field of the wrong type or value, n != 1, or a
// feature we do not serve (echo, suffix, best_of > 1, the legacy
// `functions`).
absl::StatusOr<OpenAiRequest> ParseOpenAiRequest(OpenAiKind kind, std::string_view body);

// A chat request with tools, for the server's default chat template
// `server_template`: sets tool_style (how the template in use writes calls)
// and, for tool_choice "required" or a named function, the grammar that
// forces a call (output_format, compiled with the request). INVALID_ARGUMENT
// when that is combined with a response_format or grammar, or a function's
// parameters use a schema keyword the grammar cannot enforce.
absl::Status PrepareToolCalls(std::string_view server_template, OpenAiRequest* request);

// The front door's input for a parsed request (deadline and id are the
// server's to set).
ClientRequest ToClientRequest(const OpenAiRequest& request);

struct OpenAiError {
  int http_status = 500;
  std::string message;
  std::string type;               // "invalid_request_error", "server_error", ...
  std::string param;              // empty -> null
  std::string code;               // empty -> null
  nlohmann::json ToJson() const;  // {"error": {...}}
};

// INVALID_ARGUMENT / FAILED_PRECONDITION / OUT_OF_RANGE -> 400,
// UNAUTHENTICATED -> 401, PERMISSION_DENIED -> 403, NOT_FOUND -> 404,
// RESOURCE_EXHAUSTED -> 429, UNAVAILABLE / CANCELLED -> 503,
// DEADLINE_EXCEEDED -> 504, anything else -> 500. `param` is the field the
// status names (common/base/field_error.h), set where the error was made.
OpenAiError ErrorFromStatus(const absl::Status& status);

// JSON text that never throws (invalid UTF-8 in a token piece is replaced).
std::string JsonText(const nlohmann::json& j);

// Turns one request's engine events into the response: server-sent events
// when streaming, one JSON body otherwise.
class OpenAiResponder {
 public:
  // `tokenizer` gives the text of logprob tokens. `id` like "cmpl-..." or
  // "chatcmpl-...", `created` in Unix seconds.
  OpenAiResponder(const OpenAiRequest& request, const Tokenizer* tokenizer, std::string id,
                  std::string model, int64_t created);

  // Streaming: the events to send (each "data: {...}\n\n"), possibly none.
  std::string StreamStart();  // chat: the assistant-role chunk
  std::string StreamToken(const GeneratedToken& token);
  // The final chunk (finish_reason), the usage chunk when asked for, then
  // "data: [DONE]"; or one error event when the generation failed.
  std::string StreamFinish(FinishReason reason, const GenerationStats& stats,
                           const absl::Status& error);

  // Not streaming: collect tokens, then the whole response (or an error).
  void AddToken(const GeneratedToken& token);
  // Returns the HTTP status; sets `body`.
  int Finish(FinishReason reason, const GenerationStats& stats, const absl::Status& error,
             nlohmann::json* body);

  const std::string& text() const { return text_; }

 private:
  nlohmann::json ChunkBase() const;
  // Logprob entries of this token in the endpoint's format, appended to
  // `out` (a chat "content" array or completion arrays); false if none.
  bool AppendLogprobs(const GeneratedToken& token, size_t text_offset, nlohmann::json* out) const;
  nlohmann::json Usage(const GenerationStats& stats) const;
  static std::string Sse(const nlohmann::json& j);

  OpenAiKind kind_;
  bool include_usage_;
  int logprobs_;
  bool ignore_eos_;
  const Tokenizer* tokenizer_;
  std::string id_, model_;
  int64_t created_;
  // Tool calls: the choice for one event's deltas, and the finish reason.
  std::string ToolDeltaEvents(const std::vector<ToolCallDelta>& deltas, nlohmann::json logprobs);
  const char* ChatFinishReason(FinishReason reason, bool streamed) const;

  std::string text_;             // everything generated so far
  nlohmann::json logprobs_acc_;  // non-streaming accumulation
  // Chat with tools offered (and not tool_choice "none"): the reply is read
  // for calls as it is generated.
  std::unique_ptr<ToolCallParser> tool_parser_;
};

// "stop" or "length"; kCancelled/kDeadline/kError have none.
const char* OpenAiFinishReason(FinishReason reason);
// The error for a generation that ended without a normal finish.
absl::Status GenerationFailure(FinishReason reason, const absl::Status& error);

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_OPENAI_API_H_
