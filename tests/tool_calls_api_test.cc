// Tool calling on /v1/chat/completions without sockets: the request fields
// (tools, tool_choice, parallel_tool_calls, assistant tool_calls and tool
// results) and their refusals; the prompt those requests render to, compared
// byte for byte with Jinja2's renders of the real templates in
// ../shared/templates (the conversations of cases.json sent the OpenAI way,
// arguments as JSON strings); and the response shapes (message.tool_calls,
// finish_reason "tool_calls", streamed tool_call deltas).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "common/base/field_error.h"
#include "common/tokenizer/tokenizer.h"
#include "coordinator/chat_jinja.h"
#include "coordinator/jinja/template.h"
#include "coordinator/openai_api.h"
#include "coordinator/tool_calls/chatml_tools_template.h"
#include "nlohmann/json.hpp"
#include "tests/test_data.h"

namespace shardlm::testing {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;

constexpr char kWeatherTool[] = R"({"type": "function", "function": {"name": "get_weather",
    "description": "Weather", "parameters": {"type": "object", "properties": {"location":
    {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}}, "required": ["location"]}}})";

std::string ChatBody(const std::string& extra) {
  return R"({"messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": [)" +
         std::string(kWeatherTool) + "]" + extra + "}";
}

absl::StatusOr<OpenAiRequest> ParseChat(const std::string& body) {
  return ParseOpenAiRequest(OpenAiKind::kChat, body);
}

TEST(ToolRequestTest, ChoicesAndDefaults) {
  absl::StatusOr<OpenAiRequest> r = ParseChat(ChatBody(""));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->tools.choice, ToolChoice::kAuto);
  EXPECT_TRUE(r->tools.parallel);
  EXPECT_TRUE(r->tools.active());
  ASSERT_EQ(r->tools.functions.size(), 1u);
  EXPECT_EQ(r->tools.functions[0].name, "get_weather");
  // The tools reach the template in the order they were sent.
  EXPECT_THAT(r->tools.tools_json, ::testing::HasSubstr(R"("name":"get_weather","description")"));
  EXPECT_EQ(ToClientRequest(*r).tools_json, r->tools.tools_json);

  r = ParseChat(ChatBody(R"(, "tool_choice": "required", "parallel_tool_calls": false)"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->tools.choice, ToolChoice::kRequired);
  EXPECT_FALSE(r->tools.parallel);
  ASSERT_NE(r->tools.Forced(), nullptr);

  r = ParseChat(ChatBody(R"(, "tool_choice": {"type": "function", "function": {"name": "get_weather"}})"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->tools.choice, ToolChoice::kNamed);
  EXPECT_EQ(r->tools.Forced()->name, "get_weather");

  // "none": the model is not shown the tools and the reply is not parsed.
  r = ParseChat(ChatBody(R"(, "tool_choice": "none")"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->tools.active());
  EXPECT_EQ(ToClientRequest(*r).tools_json, "");
  // Empty tools are no tools.
  r = ParseChat(R"({"messages": [{"role": "user", "content": "x"}], "tools": []})");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->tools.active());
}

TEST(ToolRequestTest, RefusalsNameTheField) {
  const std::map<std::string, std::string> bad = {
      {ChatBody(R"(, "tool_choice": "always")"), "tool_choice"},
      {ChatBody(R"(, "tool_choice": {"type": "function", "function": {"name": "nope"}})"),
       "tool_choice"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tool_choice": "required"})",
       "tool_choice"},
      {ChatBody(R"(, "parallel_tool_calls": "yes")"), "parallel_tool_calls"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "retrieval"}]})",
       "tools"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function",
          "function": {"name": "has space"}}]})",
       "tools"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function",
          "function": {"name": "f", "parameters": []}}]})",
       "tools"},
      {R"({"messages": [{"role": "user", "content": "x"}], "tools": [)" + std::string(kWeatherTool) +
           "," + kWeatherTool + "]}",
       "tools"},
      {R"({"messages": [{"role": "user", "content": "x"}], "functions": [{"name": "f"}]})",
       "functions"},
      {R"({"messages": [{"role": "tool", "content": "x"}]})", "messages"},
      {R"({"messages": [{"role": "assistant", "tool_calls": [{"function": {}}]}]})", "messages"},
  };
  for (const auto& [body, field] : bad) {
    SCOPED_TRACE(body);
    absl::StatusOr<OpenAiRequest> r = ParseChat(body);
    ASSERT_FALSE(r.ok());
    OpenAiError e = ErrorFromStatus(r.status());
    EXPECT_EQ(e.http_status, 400);
    EXPECT_EQ(e.param, field) << r.status();
  }
}

TEST(ToolRequestTest, ToolMessagesAndCallsInTheConversation) {
  absl::StatusOr<OpenAiRequest> r = ParseChat(R"({"messages": [
      {"role": "user", "content": "Weather?"},
      {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function",
       "function": {"name": "get_weather", "arguments": "{\"location\": \"Paris\"}"}}]},
      {"role": "tool", "tool_call_id": "call_1", "content": "sunny"}]})");
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->messages.size(), 3u);
  ASSERT_EQ(r->messages[1].tool_calls.size(), 1u);
  EXPECT_EQ(r->messages[1].content, "");
  EXPECT_EQ(r->messages[1].tool_calls[0].arguments, R"({"location": "Paris"})");
  EXPECT_EQ(r->messages[2].role, "tool");
  EXPECT_EQ(r->messages[2].tool_call_id, "call_1");
  EXPECT_EQ(r->messages[2].name, "get_weather");  // from the call it answers
}

TEST(ToolRequestTest, PrepareSetsStyleAndForcedGrammar) {
  absl::StatusOr<OpenAiRequest> r = ParseChat(ChatBody(R"(, "tool_choice": "required")"));
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(PrepareToolCalls("{{ '<|start_header_id|>' }}", &*r).ok());
  EXPECT_EQ(r->tool_style, ToolCallStyle::kLlama3Json);
  EXPECT_EQ(r->output_format.kind, OutputFormat::Kind::kGrammar);
  EXPECT_EQ(r->output_format.field, "tool_choice");
  EXPECT_NE(r->output_format.source.find("parameters"), std::string::npos);  // Llama 3's key
  r = ParseChat(ChatBody(""));  // auto: nothing forced
  ASSERT_TRUE(r.ok());
  ASSERT_TRUE(PrepareToolCalls("", &*r).ok());
  EXPECT_EQ(r->tool_style, ToolCallStyle::kHermes);
  EXPECT_EQ(r->output_format.kind, OutputFormat::Kind::kText);
  // A forced call and a response format cannot both hold.
  r = ParseChat(ChatBody(R"(, "tool_choice": "required", "response_format": {"type": "json_object"})"));
  ASSERT_TRUE(r.ok()) << r.status();
  absl::Status st = PrepareToolCalls("", &*r);
  EXPECT_EQ(ErrorFromStatus(st).http_status, 400);
  EXPECT_EQ(FieldOf(st), "tool_choice");
}

// The conversations of cases.json with tools, sent as an OpenAI client
// would: arguments as JSON strings.
std::string OpenAiBodyOf(const ojson& c) {
  ojson body = {{"messages", ojson::array()}, {"tools", c["tools"]}};
  for (ojson m : c["messages"]) {
    if (m.contains("tool_calls")) {
      for (ojson& call : m["tool_calls"]) {
        call["function"]["arguments"] = call["function"]["arguments"].dump();
      }
    }
    body["messages"].push_back(m);
  }
  return body.dump();
}

std::tm PinnedNow() {  // expected/ was rendered on 26 Jul 2026
  std::tm t = {};
  t.tm_year = 2026 - 1900;
  t.tm_mon = 6;
  t.tm_mday = 26;
  t.tm_yday = 206;
  return t;
}

// Every template x tools case: the request parsed, rendered with the
// request's tools, equals Jinja2's render (or fails where Jinja2 did).
TEST(ToolTemplatesTest, RequestsRenderAsJinja2Does) {
  const std::string dir = TestDataPath("templates");
  const ojson index = ojson::parse(ReadFileOrDie(dir + "/expected/index.json"));
  std::map<std::string, ojson> cases;
  for (const ojson& c : ojson::parse(ReadFileOrDie(dir + "/cases.json"))) {
    cases[c["id"].get<std::string>()] = c;
  }
  int compared = 0;
  for (const ojson& pair : index["pairs"]) {
    const std::string id = pair["case"];
    if (id.rfind("tools_", 0) != 0) continue;
    const std::string stem = pair["template"];
    SCOPED_TRACE(stem + " x " + id);
    const ojson& info = index["templates"][stem];
    const std::string source = ReadFileOrDie(dir + "/" + info["file"].get<std::string>());
    absl::StatusOr<jinja::Template> tmpl = jinja::Template::Parse(source);
    ASSERT_TRUE(tmpl.ok()) << tmpl.status();
    absl::StatusOr<OpenAiRequest> req = ParseChat(OpenAiBodyOf(cases[id]));
    ASSERT_TRUE(req.ok()) << req.status();
    ClientRequest client = ToClientRequest(*req);
    JinjaChatOptions options;
    if (info["bos_token"].is_string()) options.bos_token = info["bos_token"];
    if (info["eos_token"].is_string()) options.eos_token = info["eos_token"];
    options.tools_json = client.tools_json;
    options.render.now = PinnedNow();
    absl::StatusOr<RenderedChat> got = RenderJinjaChat(*tmpl, source, client.messages, options);
    ++compared;
    if (pair.contains("error")) {
      EXPECT_FALSE(got.ok()) << "Jinja2 refused: " << pair["error"]["message"];
      continue;
    }
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->prompt, ReadFileOrDie(dir + "/expected/" + pair["file"].get<std::string>()));
  }
  EXPECT_EQ(compared, 5 * 9);
}

// ChatML's tools template (a model without a template) is Qwen2.5's when the
// conversation starts with a system message, and plain ChatML without tools.
TEST(ToolTemplatesTest, ChatMlToolsTemplate) {
  const std::string dir = TestDataPath("templates");
  std::map<std::string, ojson> cases;
  for (const ojson& c : ojson::parse(ReadFileOrDie(dir + "/cases.json"))) {
    cases[c["id"].get<std::string>()] = c;
  }
  absl::StatusOr<jinja::Template> tmpl = jinja::Template::Parse(kChatMlToolsTemplate);
  ASSERT_TRUE(tmpl.ok()) << tmpl.status();
  JinjaChatOptions options;
  for (const char* id : {"tools_first_turn", "tools_parallel_calls"}) {
    SCOPED_TRACE(id);
    absl::StatusOr<OpenAiRequest> req = ParseChat(OpenAiBodyOf(cases[id]));
    ASSERT_TRUE(req.ok()) << req.status();
    options.tools_json = ToClientRequest(*req).tools_json;
    absl::StatusOr<RenderedChat> got =
        RenderJinjaChat(*tmpl, kChatMlToolsTemplate, req->messages, options);
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->prompt,
              ReadFileOrDie(dir + "/expected/Qwen-Qwen2.5-7B-Instruct." + id + ".txt"));
  }
  options.tools_json.clear();
  for (const char* id : {"multi_turn", "single_user", "unicode"}) {
    SCOPED_TRACE(id);
    std::vector<ChatMessage> messages;
    for (const ojson& m : cases[id]["messages"]) messages.push_back({m["role"], m["content"]});
    absl::StatusOr<RenderedChat> got = RenderJinjaChat(*tmpl, kChatMlToolsTemplate, messages, options);
    ASSERT_TRUE(got.ok()) << got.status();
    absl::StatusOr<ChatTemplate> chatml = ChatTemplate::FromName("chatml");
    ASSERT_TRUE(chatml.ok());
    EXPECT_EQ(got->prompt, chatml->Render(messages)->prompt);
  }
}

// Through BuildChatPrompt: ChatML (no model template) shows the tools
// Hermes-style; zephyr and llama2 refuse tools and tool messages, naming
// the field; a conversation without tools renders as before.
TEST(ToolTemplatesTest, NativeFamiliesAndTools) {
  absl::StatusOr<std::unique_ptr<Tokenizer>> tok = TestModelTokenizer("stories260K");
  ASSERT_TRUE(tok.ok()) << tok.status();
  absl::StatusOr<OpenAiRequest> req = ParseChat(ChatBody(""));
  ASSERT_TRUE(req.ok());
  const std::string tools = ToClientRequest(*req).tools_json;
  absl::StatusOr<ChatPrompt> chatml = BuildChatPrompt(**tok, "", "", req->messages, 1 << 20, tools);
  ASSERT_TRUE(chatml.ok()) << chatml.status();
  const std::string text = (*tok)->Decode(chatml->tokens);
  EXPECT_THAT(text, ::testing::HasSubstr("<tools>\n{\"type\": \"function\", \"function\": "
                                         "{\"name\": \"get_weather\""));
  EXPECT_THAT(text, ::testing::EndsWith("<|im_start|>assistant\n"));
  absl::StatusOr<ChatPrompt> plain = BuildChatPrompt(**tok, "", "", req->messages, 1 << 20);
  ASSERT_TRUE(plain.ok());
  EXPECT_LT(plain->tokens.size(), chatml->tokens.size());
  for (const char* family : {"zephyr", "llama2"}) {
    absl::StatusOr<ChatPrompt> refused =
        BuildChatPrompt(**tok, "", family, req->messages, 1 << 20, tools);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(FieldOf(refused.status()), "tools") << refused.status();
    std::vector<ChatMessage> with_result = req->messages;
    with_result.push_back({"tool", "sunny"});
    refused = BuildChatPrompt(**tok, "", family, with_result, 1 << 20);
    ASSERT_FALSE(refused.ok());
    EXPECT_EQ(FieldOf(refused.status()), "messages");
    EXPECT_THAT(std::string(refused.status().message()), ::testing::HasSubstr("messages[1].role"));
  }
}

class ToolResponderTest : public ::testing::Test {
 protected:
  OpenAiRequest Request(const std::string& extra, ToolCallStyle style = ToolCallStyle::kHermes) {
    absl::StatusOr<OpenAiRequest> r = ParseChat(ChatBody(extra));
    EXPECT_TRUE(r.ok()) << r.status();
    r->tool_style = style;
    return *r;
  }
  static GeneratedToken Token(const std::string& text) { return GeneratedToken{-1, text, 0, {}}; }
  static std::vector<json> Events(const std::string& sse) {
    std::vector<json> out;
    size_t at = 0;
    while ((at = sse.find("data: ", at)) != std::string::npos) {
      const size_t end = sse.find("\n\n", at);
      const std::string payload = sse.substr(at + 6, end - at - 6);
      if (payload != "[DONE]") out.push_back(json::parse(payload));
      at = end;
    }
    return out;
  }
  GenerationStats stats_{.prompt_tokens = 5, .generated_tokens = 20};
  const std::vector<std::string> pieces_ = {
      "<tool", "_call>\n{\"name\": \"get_", "weather\", \"arguments\": {\"location\"",
      ": \"Paris\", \"unit\": \"c\"}}\n</tool_call>"};
};

TEST_F(ToolResponderTest, MessageCarriesTheCalls) {
  OpenAiResponder r(Request(""), nullptr, "chatcmpl-1", "m", 1);
  for (const std::string& p : pieces_) r.AddToken(Token(p));
  json body;
  ASSERT_EQ(r.Finish(FinishReason::kEndOfText, stats_, absl::OkStatus(), &body), 200);
  const json& choice = body["choices"][0];
  EXPECT_EQ(choice["finish_reason"], "tool_calls");
  EXPECT_TRUE(choice["message"]["content"].is_null());
  ASSERT_EQ(choice["message"]["tool_calls"].size(), 1u);
  const json& call = choice["message"]["tool_calls"][0];
  EXPECT_EQ(call["type"], "function");
  EXPECT_EQ(call["function"]["name"], "get_weather");
  EXPECT_THAT(call["id"].get<std::string>(), ::testing::StartsWith("call_"));
  ASSERT_TRUE(call["function"]["arguments"].is_string());
  EXPECT_EQ(json::parse(call["function"]["arguments"].get<std::string>()),
            (json{{"location", "Paris"}, {"unit", "c"}}));
}

TEST_F(ToolResponderTest, StreamSendsNameFirstThenArgumentPieces) {
  OpenAiResponder r(Request(R"(, "stream": true)"), nullptr, "chatcmpl-1", "m", 1);
  std::vector<json> events = Events(r.StreamStart());
  for (const std::string& p : pieces_) {
    for (json& e : Events(r.StreamToken(Token(p)))) events.push_back(std::move(e));
  }
  for (json& e : Events(r.StreamFinish(FinishReason::kEndOfText, stats_, absl::OkStatus()))) {
    events.push_back(std::move(e));
  }
  ASSERT_GE(events.size(), 5u);  // role, call start, >= 2 argument pieces, finish
  EXPECT_EQ(events[0]["choices"][0]["delta"]["role"], "assistant");
  const json& start = events[1]["choices"][0]["delta"]["tool_calls"][0];
  EXPECT_EQ(start["index"], 0);
  EXPECT_EQ(start["type"], "function");
  EXPECT_EQ(start["function"]["name"], "get_weather");
  EXPECT_EQ(start["function"]["arguments"], "");
  EXPECT_THAT(start["id"].get<std::string>(), ::testing::StartsWith("call_"));
  std::string args;
  int pieces = 0;
  for (size_t i = 2; i + 1 < events.size(); ++i) {
    const json& delta = events[i]["choices"][0]["delta"];
    ASSERT_TRUE(delta.contains("tool_calls")) << delta;
    EXPECT_EQ(delta["tool_calls"][0]["index"], 0);
    EXPECT_FALSE(delta["tool_calls"][0].contains("id"));
    args += delta["tool_calls"][0]["function"]["arguments"].get<std::string>();
    ++pieces;
  }
  EXPECT_GE(pieces, 2);
  EXPECT_EQ(json::parse(args), (json{{"location", "Paris"}, {"unit", "c"}}));
  EXPECT_EQ(events.back()["choices"][0]["finish_reason"], "tool_calls");
}

TEST_F(ToolResponderTest, TextRepliesAndToolChoiceNone) {
  for (const std::string& extra : {std::string(""), std::string(R"(, "tool_choice": "none")")}) {
    OpenAiResponder r(Request(extra), nullptr, "chatcmpl-1", "m", 1);
    r.AddToken(Token("It is "));
    r.AddToken(Token("sunny."));
    json body;
    ASSERT_EQ(r.Finish(FinishReason::kEndOfText, stats_, absl::OkStatus(), &body), 200);
    EXPECT_EQ(body["choices"][0]["finish_reason"], "stop");
    EXPECT_EQ(body["choices"][0]["message"]["content"], "It is sunny.");
    EXPECT_FALSE(body["choices"][0]["message"].contains("tool_calls"));
  }
  // With "none" a call-shaped reply is text.
  OpenAiResponder r(Request(R"(, "tool_choice": "none")"), nullptr, "chatcmpl-1", "m", 1);
  for (const std::string& p : pieces_) r.AddToken(Token(p));
  json body;
  r.Finish(FinishReason::kEndOfText, stats_, absl::OkStatus(), &body);
  EXPECT_EQ(body["choices"][0]["finish_reason"], "stop");
  EXPECT_THAT(body["choices"][0]["message"]["content"].get<std::string>(),
              ::testing::StartsWith("<tool_call>"));
}

TEST_F(ToolResponderTest, Llama3StyleReply) {
  OpenAiResponder r(Request("", ToolCallStyle::kLlama3Json), nullptr, "chatcmpl-1", "m", 1);
  r.AddToken(Token("{\"name\": \"get_weather\", "));
  r.AddToken(Token("\"parameters\": {\"location\": \"Oslo\"}}"));
  json body;
  r.Finish(FinishReason::kEndOfText, stats_, absl::OkStatus(), &body);
  ASSERT_EQ(body["choices"][0]["message"]["tool_calls"].size(), 1u);
  EXPECT_EQ(body["choices"][0]["message"]["tool_calls"][0]["function"]["arguments"],
            R"({"location": "Oslo"})");
}

}  // namespace
}  // namespace shardlm::testing
