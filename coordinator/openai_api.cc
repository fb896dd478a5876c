#include "coordinator/openai_api.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/field_error.h"
#include "common/base/random_id.h"
#include "common/base/status_macros.h"
#include "common/tokenizer/tokenizer.h"
#include "coordinator/json_field.h"
#include "coordinator/tool_calls/tool_call_grammar.h"

namespace shardlm {
namespace {

using nlohmann::json;
// Requests keep their key order: a JSON Schema's properties are generated in
// the order the schema lists them (as llama.cpp does), and chat templates
// print tools' schemas as they were sent.
using rjson = nlohmann::ordered_json;

absl::Status Bad(absl::string_view param, absl::string_view message) {
  return InvalidFieldError(param, message);
}

// The field, or nullptr when absent or null (OpenAI treats null as unset);
// one definition for this parser and the tools one (tool_request.cc).
using json_fields::Field;

absl::Status GetNumber(const rjson& j, const char* key, float* out) {
  const rjson* f = Field(j, key);
  if (f == nullptr) return absl::OkStatus();
  if (!f->is_number()) return Bad(key, "must be a number");
  const double v = f->get<double>();
  if (!std::isfinite(v)) return Bad(key, "must be finite");
  *out = static_cast<float>(v);
  return absl::OkStatus();
}

absl::Status GetInt(const rjson& j, const char* key, int64_t lo, int64_t hi, int64_t* out,
                    bool* present = nullptr) {
  const rjson* f = Field(j, key);
  if (present != nullptr) *present = f != nullptr;
  if (f == nullptr) return absl::OkStatus();
  if (f->is_number_float()) {
    const double d = f->get<double>();
    if (d != std::floor(d)) return Bad(key, "must be an integer");
    if (d < static_cast<double>(lo) || d > static_cast<double>(hi)) {
      return Bad(key, absl::StrCat("must be between ", lo, " and ", hi));
    }
    *out = static_cast<int64_t>(d);
    return absl::OkStatus();
  }
  if (!f->is_number_integer()) return Bad(key, "must be an integer");
  int64_t v;
  if (f->is_number_unsigned()) {
    const uint64_t u = f->get<uint64_t>();
    v = u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
            ? std::numeric_limits<int64_t>::max()
            : static_cast<int64_t>(u);
  } else {
    v = f->get<int64_t>();
  }
  if (v < lo || v > hi) return Bad(key, absl::StrCat("must be between ", lo, " and ", hi));
  *out = v;
  return absl::OkStatus();
}

absl::Status GetBool(const rjson& j, const char* key, bool* out) {
  const rjson* f = Field(j, key);
  if (f == nullptr) return absl::OkStatus();
  if (!f->is_boolean()) return Bad(key, "must be true or false");
  *out = f->get<bool>();
  return absl::OkStatus();
}

absl::Status GetString(const rjson& j, const char* key, std::string* out) {
  const rjson* f = Field(j, key);
  if (f == nullptr) return absl::OkStatus();
  if (!f->is_string()) return Bad(key, "must be a string");
  *out = f->get<std::string>();
  return absl::OkStatus();
}

// stop: a string or an array of strings.
absl::Status GetStop(const rjson& j, std::vector<std::string>* out) {
  const rjson* f = Field(j, "stop");
  if (f == nullptr) return absl::OkStatus();
  if (f->is_string()) {
    out->push_back(f->get<std::string>());
    return absl::OkStatus();
  }
  if (!f->is_array()) return Bad("stop", "must be a string or an array of strings");
  for (const rjson& s : *f) {
    if (!s.is_string()) return Bad("stop", "must be a string or an array of strings");
    out->push_back(s.get<std::string>());
  }
  return absl::OkStatus();
}

// logit_bias: {"token id": bias}.
absl::Status GetLogitBias(const rjson& j, std::vector<std::pair<int32_t, float>>* out) {
  const rjson* f = Field(j, "logit_bias");
  if (f == nullptr) return absl::OkStatus();
  if (!f->is_object()) return Bad("logit_bias", "must map token ids to numbers");
  for (auto it = f->begin(); it != f->end(); ++it) {
    int32_t token;
    if (!absl::SimpleAtoi(it.key(), &token) || !it.value().is_number()) {
      return Bad("logit_bias",
                 absl::StrCat("'", it.key(), "' must be a token id mapped to a number"));
    }
    out->push_back({token, it.value().get<float>()});
  }
  std::sort(out->begin(), out->end());
  return absl::OkStatus();
}

// prompt: a string, or token ids, or a one-element array of either.
absl::Status GetPrompt(const rjson& j, OpenAiRequest* r) {
  const rjson* f = Field(j, "prompt");
  if (f == nullptr) return Bad("prompt", "required");
  const rjson* p = f;
  if (f->is_array() && f->size() == 1 && ((*f)[0].is_string() || (*f)[0].is_array())) {
    p = &(*f)[0];
  } else if (f->is_array() && !f->empty() && !(*f)[0].is_number_integer()) {
    return Bad("prompt", "only one prompt per request is supported (batch prompts are not)");
  }
  if (p->is_string()) {
    r->prompt = p->get<std::string>();
    return absl::OkStatus();
  }
  if (!p->is_array()) return Bad("prompt", "must be a string or an array of token ids");
  for (const rjson& t : *p) {
    if (!t.is_number_integer()) return Bad("prompt", "must be a string or an array of token ids");
    const int64_t id = t.get<int64_t>();
    if (id < 0 || id > std::numeric_limits<int32_t>::max()) {
      return Bad("prompt", absl::StrCat("token id ", id, " is out of range"));
    }
    r->prompt_tokens.push_back(static_cast<int32_t>(id));
  }
  r->has_prompt_tokens = true;
  return absl::OkStatus();
}

// An assistant message's `tool_calls` and a tool message's `tool_call_id`
// and `name` (taken from the call it answers when the client leaves it out:
// some templates print it).
absl::Status GetToolFields(const rjson& m, const std::string& where,
                           const std::vector<ChatMessage>& earlier, ChatMessage* msg) {
  if (msg->role == "assistant") {
    const rjson* calls = Field(m, "tool_calls");
    if (calls == nullptr) return absl::OkStatus();
    if (!calls->is_array()) return Bad("messages", absl::StrCat(where, ".tool_calls must be an array"));
    for (size_t k = 0; k < calls->size(); ++k) {
      const rjson& c = (*calls)[k];
      const std::string at = absl::StrCat(where, ".tool_calls[", k, "]");
      const rjson* f = c.is_object() ? Field(c, "function") : nullptr;
      const rjson* name = f != nullptr && f->is_object() ? Field(*f, "name") : nullptr;
      if (name == nullptr || !name->is_string()) {
        return Bad("messages", absl::StrCat(at, ".function.name must be a string"));
      }
      ChatToolCall call;
      call.name = name->get<std::string>();
      if (const rjson* id = Field(c, "id")) {
        if (!id->is_string()) return Bad("messages", absl::StrCat(at, ".id must be a string"));
        call.id = id->get<std::string>();
      }
      const rjson* args = Field(*f, "arguments");
      if (args == nullptr) {
        call.arguments = "{}";
      } else if (args->is_string()) {
        call.arguments = args->get<std::string>();
      } else if (args->is_object()) {
        call.arguments = JsonText(*args);
      } else {
        return Bad("messages", absl::StrCat(at, ".function.arguments must be a JSON string"));
      }
      msg->tool_calls.push_back(std::move(call));
    }
    return absl::OkStatus();
  }
  if (msg->role != "tool") return absl::OkStatus();
  const rjson* id = Field(m, "tool_call_id");
  if (id == nullptr || !id->is_string()) {
    return Bad("messages", absl::StrCat(where, ".tool_call_id must be a string (the id of the "
                                               "call this message answers)"));
  }
  msg->tool_call_id = id->get<std::string>();
  if (const rjson* name = Field(m, "name"); name != nullptr && name->is_string()) {
    msg->name = name->get<std::string>();
    return absl::OkStatus();
  }
  for (auto it = earlier.rbegin(); it != earlier.rend() && msg->name.empty(); ++it) {
    for (const ChatToolCall& c : it->tool_calls) {
      if (c.id == msg->tool_call_id) msg->name = c.name;
    }
  }
  return absl::OkStatus();
}

// messages: [{role, content}], content a string or an array of text parts.
absl::Status GetMessages(const rjson& j, std::vector<ChatMessage>* out) {
  const rjson* f = Field(j, "messages");
  if (f == nullptr) return Bad("messages", "required");
  if (!f->is_array() || f->empty()) return Bad("messages", "must be a non-empty array");
  for (size_t i = 0; i < f->size(); ++i) {
    const rjson& m = (*f)[i];
    const std::string where = absl::StrCat("messages[", i, "]");
    if (!m.is_object()) return Bad("messages", absl::StrCat(where, " must be an object"));
    ChatMessage msg;
    const rjson* role = Field(m, "role");
    if (role == nullptr || !role->is_string()) {
      return Bad("messages", absl::StrCat(where, ".role must be a string"));
    }
    msg.role = role->get<std::string>();
    if (msg.role == "developer") msg.role = "system";  // OpenAI's newer name for it
    if (msg.role != "system" && msg.role != "user" && msg.role != "assistant" &&
        msg.role != "tool") {
      return Bad("messages", absl::StrCat(where, ".role '", msg.role,
                                          "' is not supported (system, user, assistant, tool)"));
    }
    RETURN_IF_ERROR(GetToolFields(m, where, *out, &msg));
    const rjson* content = Field(m, "content");
    if (content == nullptr) {
      // An empty turn.
    } else if (content->is_string()) {
      msg.content = content->get<std::string>();
    } else if (content->is_array()) {
      for (const rjson& part : *content) {
        const rjson* type = part.is_object() ? Field(part, "type") : nullptr;
        const rjson* text = part.is_object() ? Field(part, "text") : nullptr;
        if (type == nullptr || *type != "text" || text == nullptr || !text->is_string()) {
          return Bad("messages", absl::StrCat(where, ".content: only text parts are supported"));
        }
        msg.content += text->get<std::string>();
      }
    } else {
      return Bad("messages", absl::StrCat(where, ".content must be a string or an array of parts"));
    }
    out->push_back(std::move(msg));
  }
  return absl::OkStatus();
}

// tools, tool_choice, parallel_tool_calls (tool_calls/tool_request.h).
absl::Status GetTools(const rjson& j, ToolRequest* out) {
  bool any = false;
  for (const char* key : {"tools", "tool_choice", "parallel_tool_calls", "functions",
                          "function_call"}) {
    any = any || Field(j, key) != nullptr;
  }
  if (!any) return absl::OkStatus();
  absl::StatusOr<ToolRequest> tools = ParseToolRequest(j);
  if (!tools.ok()) return tools.status();
  *out = *std::move(tools);
  return absl::OkStatus();
}

// response_format (OpenAI) onto an OutputFormat; compiled later by the
// front door. llama-server's `{"type": "json_object", "schema": ...}` is
// taken as json_schema too.
absl::Status GetResponseFormat(const rjson& rf, OutputFormat* out) {
  if (!rf.is_object()) return Bad("response_format", "must be an object");
  const rjson* type = Field(rf, "type");
  if (type == nullptr || !type->is_string()) {
    return Bad("response_format.type", "must be \"text\", \"json_object\" or \"json_schema\"");
  }
  const rjson* schema = nullptr;
  std::string field;
  if (*type == "text") return absl::OkStatus();
  if (*type == "json_object") {
    schema = Field(rf, "schema");
    field = "response_format.schema";
  } else if (*type == "json_schema") {
    const rjson* js = Field(rf, "json_schema");
    if (js == nullptr || !js->is_object()) {
      return Bad("response_format.json_schema",
                 "must be an object {\"name\": ..., \"schema\": {...}, \"strict\": true}");
    }
    if (const rjson* strict = Field(*js, "strict"); strict != nullptr && !strict->is_boolean()) {
      return Bad("response_format.json_schema.strict", "must be a boolean");
    }
    schema = Field(*js, "schema");
    field = "response_format.json_schema.schema";
  } else {
    return Bad("response_format.type", "must be \"text\", \"json_object\" or \"json_schema\"");
  }
  if (schema == nullptr) {  // no schema: any JSON object
    out->kind = OutputFormat::Kind::kJsonObject;
    out->field = "response_format";
    return absl::OkStatus();
  }
  out->kind = OutputFormat::Kind::kJsonSchema;
  out->source = schema->dump();
  out->field = std::move(field);
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<OpenAiRequest> ParseOpenAiRequest(OpenAiKind kind, std::string_view body) {
  const rjson j = rjson::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::InvalidArgumentError(
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
        "using your HTTP library correctly. The OpenAI API expects a JSON payload.)");
  }
  if (!j.is_object()) return absl::InvalidArgumentError("the request body must be a JSON object");
  OpenAiRequest r;
  r.kind = kind;
  SamplingParams& p = r.params;
  p.temperature = 1.0f;
  p.top_p = 1.0f;
  p.top_k = 0;
  p.min_p = 0.0f;
  p.max_tokens = kind == OpenAiKind::kCompletion ? 16 : (1 << 20);

  RETURN_IF_ERROR(GetString(j, "model", &r.model));
  if (kind == OpenAiKind::kCompletion) {
    RETURN_IF_ERROR(GetPrompt(j, &r));
  } else {
    RETURN_IF_ERROR(GetMessages(j, &r.messages));
    RETURN_IF_ERROR(GetString(j, "template", &r.chat_template));
  }
  RETURN_IF_ERROR(GetNumber(j, "temperature", &p.temperature));
  RETURN_IF_ERROR(GetNumber(j, "top_p", &p.top_p));
  RETURN_IF_ERROR(GetNumber(j, "min_p", &p.min_p));
  RETURN_IF_ERROR(GetNumber(j, "presence_penalty", &p.presence_penalty));
  RETURN_IF_ERROR(GetNumber(j, "frequency_penalty", &p.frequency_penalty));
  RETURN_IF_ERROR(GetNumber(j, "repetition_penalty", &p.repetition_penalty));
  int64_t v = 0;
  bool present = false;
  RETURN_IF_ERROR(GetInt(j, "top_k", 0, 1 << 20, &v, &present));
  if (present) p.top_k = static_cast<int>(v);
  RETURN_IF_ERROR(GetInt(j, "max_tokens", 1, 1 << 20, &v, &present));
  if (present) p.max_tokens = static_cast<int>(v);
  if (kind == OpenAiKind::kChat) {
    RETURN_IF_ERROR(GetInt(j, "max_completion_tokens", 1, 1 << 20, &v, &present));
    if (present) p.max_tokens = static_cast<int>(v);
  }
  RETURN_IF_ERROR(GetInt(j, "seed", std::numeric_limits<int64_t>::min(),
                         std::numeric_limits<int64_t>::max(), &v, &present));
  if (present) {
    p.seed = static_cast<uint64_t>(v);
  } else {
    // Without a seed OpenAI samples afresh each time.
    p.seed = RandomUint64();
  }
  RETURN_IF_ERROR(GetInt(j, "n", 1, std::numeric_limits<int64_t>::max(), &v, &present));
  if (present && v != 1) return Bad("n", "only n=1 is supported (one choice per request)");
  RETURN_IF_ERROR(GetInt(j, "best_of", 1, std::numeric_limits<int64_t>::max(), &v, &present));
  if (present && v != 1) return Bad("best_of", "only best_of=1 is supported");
  RETURN_IF_ERROR(GetStop(j, &p.stop));
  RETURN_IF_ERROR(GetLogitBias(j, &p.logit_bias));
  RETURN_IF_ERROR(GetBool(j, "ignore_eos", &p.ignore_eos));
  RETURN_IF_ERROR(GetBool(j, "speculative", &p.speculation));  // false: no speculative decoding
  RETURN_IF_ERROR(GetBool(j, "stream", &r.stream));
  if (const rjson* so = Field(j, "stream_options")) {
    if (!so->is_object()) return Bad("stream_options", "must be an object");
    RETURN_IF_ERROR(GetBool(*so, "include_usage", &r.include_usage));
  }
  if (kind == OpenAiKind::kCompletion) {
    RETURN_IF_ERROR(GetInt(j, "logprobs", 0, 20, &v, &present));
    if (present) r.logprobs = static_cast<int>(v);
    bool echo = false;
    RETURN_IF_ERROR(GetBool(j, "echo", &echo));
    if (echo) return Bad("echo", "echo is not supported");
    std::string suffix;
    RETURN_IF_ERROR(GetString(j, "suffix", &suffix));
    if (!suffix.empty()) return Bad("suffix", "suffix is not supported");
  } else {
    bool logprobs = false;
    RETURN_IF_ERROR(GetBool(j, "logprobs", &logprobs));
    RETURN_IF_ERROR(GetInt(j, "top_logprobs", 0, 20, &v, &present));
    if (present && !logprobs) return Bad("top_logprobs", "requires logprobs to be true");
    if (logprobs) r.logprobs = present ? static_cast<int>(v) : 0;
    RETURN_IF_ERROR(GetTools(j, &r.tools));
  }
  // Structured output, on both endpoints: OpenAI's response_format, or
  // llama-server's `grammar` (GBNF) extension.
  if (const rjson* rf = Field(j, "response_format")) {
    RETURN_IF_ERROR(GetResponseFormat(*rf, &r.output_format));
  }
  std::string grammar;
  RETURN_IF_ERROR(GetString(j, "grammar", &grammar));
  if (!grammar.empty()) {
    if (r.output_format.kind != OutputFormat::Kind::kText) {
      return Bad("grammar", "set either grammar or a response_format other than text, not both");
    }
    r.output_format = {OutputFormat::Kind::kGrammar, std::move(grammar), "grammar", ""};
  }
  p.top_logprobs = std::max(0, r.logprobs);
  return r;
}

absl::Status PrepareToolCalls(std::string_view server_template, OpenAiRequest* r) {
  if (r->kind != OpenAiKind::kChat || !r->tools.active()) return absl::OkStatus();
  r->tool_style = DetectToolCallStyle(server_template, r->chat_template);
  absl::StatusOr<std::string> gbnf = ToolCallGbnf(r->tools, r->tool_style);
  if (!gbnf.ok()) return gbnf.status();
  if (gbnf->empty()) return absl::OkStatus();
  if (r->output_format.kind != OutputFormat::Kind::kText) {
    return Bad("tool_choice",
               "a required or named tool_choice cannot be combined with response_format or "
               "grammar (the reply must be a tool call)");
  }
  r->output_format = {OutputFormat::Kind::kGrammar, *std::move(gbnf), "tool_choice", ""};
  return absl::OkStatus();
}

ClientRequest ToClientRequest(const OpenAiRequest& r) {
  ClientRequest c;
  if (r.kind == OpenAiKind::kChat) {
    c.kind = ClientRequest::Kind::kChat;
    c.messages = r.messages;
    c.chat_template = r.chat_template;
    c.prompt_field = "messages";
    // tool_choice "none": the tools are not shown to the model at all.
    if (r.tools.active()) c.tools_json = r.tools.tools_json;
  } else if (r.has_prompt_tokens) {
    c.kind = ClientRequest::Kind::kTokens;
    c.tokens = r.prompt_tokens;
  } else {
    c.kind = ClientRequest::Kind::kText;
    c.text = r.prompt;
  }
  c.params = r.params;
  c.output_format = r.output_format;
  return c;
}

json OpenAiError::ToJson() const {
  json e = {{"message", message},
            {"type", type},
            {"param", param.empty() ? json(nullptr) : json(param)},
            {"code", code.empty() ? json(nullptr) : json(code)}};
  return json{{"error", std::move(e)}};
}

OpenAiError ErrorFromStatus(const absl::Status& status) {
  OpenAiError e;
  e.message = std::string(status.message());
  e.type = "server_error";
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      e.http_status = 400;
      e.type = "invalid_request_error";
      e.param = FieldOf(status);
      break;
    case absl::StatusCode::kUnauthenticated:
      e.http_status = 401;
      e.type = "invalid_request_error";
      e.code = "invalid_api_key";
      break;
    case absl::StatusCode::kPermissionDenied:
      e.http_status = 403;
      e.type = "invalid_request_error";
      break;
    case absl::StatusCode::kNotFound:
      e.http_status = 404;
      e.type = "invalid_request_error";
      break;
    case absl::StatusCode::kResourceExhausted:
      e.http_status = 429;
      e.type = "requests";
      e.code = "rate_limit_exceeded";
      break;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kCancelled:
      e.http_status = 503;
      break;
    case absl::StatusCode::kDeadlineExceeded:
      e.http_status = 504;
      e.code = "timeout";
      break;
    default:
      e.http_status = 500;
      break;
  }
  return e;
}

std::string JsonText(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

const char* OpenAiFinishReason(FinishReason reason) {
  return reason == FinishReason::kLength ? "length" : "stop";
}

absl::Status GenerationFailure(FinishReason reason, const absl::Status& error) {
  switch (reason) {
    case FinishReason::kCancelled:
      return absl::UnavailableError("the request was cancelled (the server is shutting down)");
    case FinishReason::kDeadline:
      return absl::DeadlineExceededError("the request took longer than the server allows");
    case FinishReason::kError:
      return error.ok() ? absl::InternalError("generation failed") : error;
    default:
      return absl::OkStatus();
  }
}

OpenAiResponder::OpenAiResponder(const OpenAiRequest& request, const Tokenizer* tokenizer,
                                 std::string id, std::string model, int64_t created)
    : kind_(request.kind),
      include_usage_(request.include_usage),
      logprobs_(request.logprobs),
      ignore_eos_(request.params.ignore_eos),
      tokenizer_(tokenizer),
      id_(std::move(id)),
      model_(std::move(model)),
      created_(created) {
  if (kind_ == OpenAiKind::kChat && request.tools.active()) {
    ToolCallParserOptions options;
    options.style = request.tool_style;
    options.function_names = request.tools.names();
    options.parallel = request.tools.parallel;
    auto rng = std::make_shared<std::mt19937_64>(std::random_device{}());
    options.make_id = [style = request.tool_style, rng] { return MakeToolCallId(style, rng.get()); };
    tool_parser_ = std::make_unique<ToolCallParser>(std::move(options));
  }
  if (kind_ == OpenAiKind::kChat) {
    logprobs_acc_ = json{{"content", json::array()}};
  } else {
    logprobs_acc_ = json{{"tokens", json::array()},
                         {"token_logprobs", json::array()},
                         {"top_logprobs", json::array()},
                         {"text_offset", json::array()}};
  }
}

std::string OpenAiResponder::Sse(const json& j) {
  return absl::StrCat("data: ", JsonText(j), "\n\n");
}

json OpenAiResponder::ChunkBase() const {
  return json{{"id", id_},
              {"object", kind_ == OpenAiKind::kChat ? "chat.completion.chunk" : "text_completion"},
              {"created", created_},
              {"model", model_},
              {"system_fingerprint", nullptr}};
}

json OpenAiResponder::Usage(const GenerationStats& s) const {
  return json{{"prompt_tokens", s.prompt_tokens},
              {"completion_tokens", s.generated_tokens},
              {"total_tokens", s.prompt_tokens + s.generated_tokens}};
}

bool OpenAiResponder::AppendLogprobs(const GeneratedToken& t, size_t text_offset, json* out) const {
  if (logprobs_ < 0 || t.id < 0) return false;  // not asked for / text released at the end
  if (!ignore_eos_ && tokenizer_->IsEndOfGeneration(t.id)) return false;  // not part of the text
  const std::string piece = tokenizer_->TokenPiece(t.id);
  if (kind_ == OpenAiKind::kChat) {
    auto entry = [](const std::string& token, float logprob) {
      json bytes = json::array();
      for (unsigned char c : token) bytes.push_back(static_cast<int>(c));
      return json{{"token", token}, {"logprob", logprob}, {"bytes", std::move(bytes)}};
    };
    json e = entry(piece, t.logprob);
    json top = json::array();
    for (const TokenLogprob& alt : t.top_logprobs) {
      top.push_back(entry(tokenizer_->TokenPiece(alt.token), alt.logprob));
    }
    e["top_logprobs"] = std::move(top);
    (*out)["content"].push_back(std::move(e));
  } else {
    (*out)["tokens"].push_back(piece);
    (*out)["token_logprobs"].push_back(t.logprob);
    if (logprobs_ > 0) {
      json top = json::object();
      for (const TokenLogprob& alt : t.top_logprobs) {
        top[tokenizer_->TokenPiece(alt.token)] = alt.logprob;
      }
      (*out)["top_logprobs"].push_back(std::move(top));
    } else {
      (*out)["top_logprobs"].push_back(nullptr);
    }
    (*out)["text_offset"].push_back(text_offset);
  }
  return true;
}

std::string OpenAiResponder::StreamStart() {
  if (kind_ != OpenAiKind::kChat) return "";
  json c = ChunkBase();
  c["choices"] = json::array({json{{"index", 0},
                                   {"delta", {{"role", "assistant"}, {"content", ""}}},
                                   {"logprobs", nullptr},
                                   {"finish_reason", nullptr}}});
  return Sse(c);
}

// OpenAI's stream shape for calls: the first delta of a call carries its
// index, id, type and name with empty arguments; the next ones carry the
// index and a piece of the arguments.
std::string OpenAiResponder::ToolDeltaEvents(const std::vector<ToolCallDelta>& deltas,
                                             json logprobs) {
  std::string out;
  for (const ToolCallDelta& d : deltas) {
    json delta;
    if (d.kind == ToolCallDelta::Kind::kContent) {
      delta = json{{"content", d.text}};
    } else if (d.kind == ToolCallDelta::Kind::kCallStart) {
      delta = json{{"tool_calls", json::array({json{{"index", d.index},
                                                    {"id", d.id},
                                                    {"type", "function"},
                                                    {"function", {{"name", d.name},
                                                                  {"arguments", ""}}}}})}};
    } else {
      delta = json{{"tool_calls", json::array({json{{"index", d.index},
                                                    {"function", {{"arguments", d.text}}}}})}};
    }
    json c = ChunkBase();
    c["choices"] = json::array({json{{"index", 0},
                                     {"delta", std::move(delta)},
                                     {"logprobs", std::move(logprobs)},
                                     {"finish_reason", nullptr}}});
    logprobs = nullptr;  // with the first event of the token only
    out += Sse(c);
  }
  if (!logprobs.is_null()) {  // a token that told the client nothing yet
    json c = ChunkBase();
    c["choices"] = json::array({json{{"index", 0},
                                     {"delta", json::object()},
                                     {"logprobs", std::move(logprobs)},
                                     {"finish_reason", nullptr}}});
    out += Sse(c);
  }
  return out;
}

const char* OpenAiResponder::ChatFinishReason(FinishReason reason, bool streamed) const {
  // A stream cannot take back a call it announced; a whole reply counts
  // only the calls that parsed.
  if (tool_parser_ != nullptr &&
      (!tool_parser_->calls().empty() || (streamed && tool_parser_->announced() > 0))) {
    return "tool_calls";
  }
  return OpenAiFinishReason(reason);
}

std::string OpenAiResponder::StreamToken(const GeneratedToken& t) {
  const size_t offset = text_.size();
  text_ += t.text;
  json lp = kind_ == OpenAiKind::kChat ? json{{"content", json::array()}}
                                       : json{{"tokens", json::array()},
                                              {"token_logprobs", json::array()},
                                              {"top_logprobs", json::array()},
                                              {"text_offset", json::array()}};
  const bool has_lp = AppendLogprobs(t, offset, &lp);
  if (tool_parser_ != nullptr) {
    std::vector<ToolCallDelta> deltas;
    tool_parser_->Feed(t.text, &deltas);
    return ToolDeltaEvents(deltas, has_lp ? std::move(lp) : json(nullptr));
  }
  if (t.text.empty() && !has_lp) return "";  // nothing to tell the client yet
  json choice = {
      {"index", 0}, {"logprobs", has_lp ? lp : json(nullptr)}, {"finish_reason", nullptr}};
  if (kind_ == OpenAiKind::kChat) {
    choice["delta"] = json{{"content", t.text}};
  } else {
    choice["text"] = t.text;
  }
  json c = ChunkBase();
  c["choices"] = json::array({std::move(choice)});
  return Sse(c);
}

std::string OpenAiResponder::StreamFinish(FinishReason reason, const GenerationStats& stats,
                                          const absl::Status& error) {
  if (absl::Status failure = GenerationFailure(reason, error); !failure.ok()) {
    return Sse(ErrorFromStatus(failure).ToJson());
  }
  std::string out;
  if (tool_parser_ != nullptr) {
    std::vector<ToolCallDelta> deltas;
    tool_parser_->Finish(&deltas);
    out = ToolDeltaEvents(deltas, nullptr);
  }
  json choice = {{"index", 0},
                 {"logprobs", nullptr},
                 {"finish_reason", kind_ == OpenAiKind::kChat ? ChatFinishReason(reason, true)
                                                              : OpenAiFinishReason(reason)}};
  if (kind_ == OpenAiKind::kChat) {
    choice["delta"] = json::object();
  } else {
    choice["text"] = "";
  }
  json c = ChunkBase();
  c["choices"] = json::array({std::move(choice)});
  out += Sse(c);
  if (include_usage_) {
    json u = ChunkBase();
    u["choices"] = json::array();
    u["usage"] = Usage(stats);
    out += Sse(u);
  }
  out += "data: [DONE]\n\n";
  return out;
}

void OpenAiResponder::AddToken(const GeneratedToken& t) {
  const size_t offset = text_.size();
  text_ += t.text;
  AppendLogprobs(t, offset, &logprobs_acc_);
}

int OpenAiResponder::Finish(FinishReason reason, const GenerationStats& stats,
                            const absl::Status& error, json* body) {
  if (absl::Status failure = GenerationFailure(reason, error); !failure.ok()) {
    OpenAiError e = ErrorFromStatus(failure);
    *body = e.ToJson();
    return e.http_status;
  }
  if (tool_parser_ != nullptr) {
    std::vector<ToolCallDelta> ignored;  // no stream: only the parsed whole counts
    tool_parser_->Feed(text_, &ignored);
    tool_parser_->Finish(&ignored);
  }
  json choice = {{"index", 0},
                 {"logprobs", logprobs_ >= 0 ? logprobs_acc_ : json(nullptr)},
                 {"finish_reason", kind_ == OpenAiKind::kChat ? ChatFinishReason(reason, false)
                                                              : OpenAiFinishReason(reason)}};
  if (kind_ == OpenAiKind::kChat && tool_parser_ != nullptr && !tool_parser_->calls().empty()) {
    json calls = json::array();
    for (const ChatToolCall& call : tool_parser_->calls()) {
      calls.push_back(json{{"id", call.id},
                           {"type", "function"},
                           {"function", {{"name", call.name}, {"arguments", call.arguments}}}});
    }
    const std::string& content = tool_parser_->content();
    choice["message"] = json{{"role", "assistant"},
                             {"content", content.empty() ? json(nullptr) : json(content)},
                             {"refusal", nullptr},
                             {"tool_calls", std::move(calls)}};
  } else if (kind_ == OpenAiKind::kChat) {
    choice["message"] = json{{"role", "assistant"}, {"content", text_}, {"refusal", nullptr}};
  } else {
    choice["text"] = text_;
  }
  *body = json{{"id", id_},
               {"object", kind_ == OpenAiKind::kChat ? "chat.completion" : "text_completion"},
               {"created", created_},
               {"model", model_},
               {"system_fingerprint", nullptr},
               {"choices", json::array({std::move(choice)})},
               {"usage", Usage(stats)}};
  return 200;
}

}  // namespace shardlm
