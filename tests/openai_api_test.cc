// The OpenAI request/response mapping without sockets: request fields onto
// SamplingParams, OpenAI defaults, refusals (n > 1, bad types) as
// OpenAI-shaped errors with the right HTTP status and param, and the
// response / server-sent-event shapes built from engine events.
#include "coordinator/openai_api.h"

#include <gtest/gtest.h>

#include "common/base/field_error.h"
#include "common/model/gguf.h"
#include "common/tokenizer/tokenizer.h"
#include "tests/test_data.h"

namespace shardlm::testing {
namespace {

using nlohmann::json;

OpenAiRequest Parse(OpenAiKind kind, const std::string& body) {
  auto r = ParseOpenAiRequest(kind, body);
  EXPECT_TRUE(r.ok()) << r.status() << " for " << body;
  return r.ok() ? *r : OpenAiRequest{};
}

// The OpenAI error a bad request gets.
OpenAiError Refusal(OpenAiKind kind, const std::string& body) {
  auto r = ParseOpenAiRequest(kind, body);
  EXPECT_FALSE(r.ok()) << body;
  return ErrorFromStatus(r.status());
}

TEST(OpenAiRequestTest, CompletionDefaultsAreOpenAis) {
  OpenAiRequest r = Parse(OpenAiKind::kCompletion, R"({"model": "m", "prompt": "Once"})");
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.prompt, "Once");
  EXPECT_FALSE(r.has_prompt_tokens);
  EXPECT_FLOAT_EQ(r.params.temperature, 1.0f);
  EXPECT_FLOAT_EQ(r.params.top_p, 1.0f);
  EXPECT_EQ(r.params.top_k, 0);
  EXPECT_FLOAT_EQ(r.params.min_p, 0.0f);
  EXPECT_EQ(r.params.max_tokens, 16);
  EXPECT_FALSE(r.stream);
  EXPECT_EQ(r.logprobs, -1);
  EXPECT_EQ(r.params.top_logprobs, 0);
  EXPECT_TRUE(r.params.stop.empty());
  EXPECT_TRUE(r.params.Validate(512).ok());
}

TEST(OpenAiRequestTest, CompletionFieldsMapOntoSamplingParams) {
  OpenAiRequest r = Parse(OpenAiKind::kCompletion, R"({
      "prompt": ["Once upon"], "temperature": 0, "top_p": 0.9, "max_tokens": 7, "stop": "\n",
      "seed": 42, "presence_penalty": 0.5, "frequency_penalty": -0.25, "logprobs": 3,
      "logit_bias": {"5": 1.5, "2": -100}, "stream": true, "stream_options": {"include_usage": true},
      "n": 1, "user": "u", "top_k": 4, "ignore_eos": true})");
  EXPECT_EQ(r.prompt, "Once upon");
  EXPECT_FLOAT_EQ(r.params.temperature, 0.0f);
  EXPECT_FLOAT_EQ(r.params.top_p, 0.9f);
  EXPECT_EQ(r.params.max_tokens, 7);
  EXPECT_EQ(r.params.stop, std::vector<std::string>{"\n"});
  EXPECT_EQ(r.params.seed, 42u);
  EXPECT_FLOAT_EQ(r.params.presence_penalty, 0.5f);
  EXPECT_FLOAT_EQ(r.params.frequency_penalty, -0.25f);
  EXPECT_EQ(r.logprobs, 3);
  EXPECT_EQ(r.params.top_logprobs, 3);
  EXPECT_EQ(r.params.logit_bias, (std::vector<std::pair<int32_t, float>>{{2, -100.0f}, {5, 1.5f}}));
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.params.top_k, 4);
  EXPECT_TRUE(r.params.ignore_eos);
  EXPECT_TRUE(r.params.speculation);  // on unless the body says "speculative": false
  EXPECT_FALSE(Parse(OpenAiKind::kCompletion, R"({"prompt": "x", "speculative": false})")
                   .params.speculation);
  EXPECT_EQ(Parse(OpenAiKind::kCompletion, R"({"prompt": "x", "stop": ["a", "bc"]})").params.stop,
            (std::vector<std::string>{"a", "bc"}));
  OpenAiRequest ids = Parse(OpenAiKind::kCompletion, R"({"prompt": [1, 403, 407]})");
  EXPECT_TRUE(ids.has_prompt_tokens);
  EXPECT_EQ(ids.prompt_tokens, (std::vector<int32_t>{1, 403, 407}));
  // Without a seed every request samples afresh.
  EXPECT_NE(Parse(OpenAiKind::kCompletion, R"({"prompt": "x"})").params.seed,
            Parse(OpenAiKind::kCompletion, R"({"prompt": "x"})").params.seed);
}

TEST(OpenAiRequestTest, ChatFieldsMapOntoSamplingParams) {
  OpenAiRequest r = Parse(OpenAiKind::kChat, R"({
      "model": "m", "messages": [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hel"}, {"type": "text", "text": "lo"}]},
        {"role": "assistant", "content": null}],
      "max_completion_tokens": 9, "logprobs": true, "top_logprobs": 2, "template": "zephyr",
      "response_format": {"type": "text"}, "tools": []})");
  ASSERT_EQ(r.messages.size(), 3u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.messages[1].content, "Hello");
  EXPECT_EQ(r.messages[2].content, "");
  EXPECT_EQ(r.params.max_tokens, 9);
  EXPECT_EQ(r.logprobs, 2);
  EXPECT_EQ(r.params.top_logprobs, 2);
  EXPECT_EQ(r.chat_template, "zephyr");
  OpenAiRequest d = Parse(OpenAiKind::kChat, R"({"messages": [{"role": "user", "content": "x"}]})");
  EXPECT_EQ(d.params.max_tokens, 1 << 20);  // until the context is full
  EXPECT_EQ(d.logprobs, -1);
  EXPECT_EQ(Parse(OpenAiKind::kChat, R"({"messages": [{"role": "user", "content": "x"}],
      "logprobs": true})")
                .logprobs,
            0);
}

TEST(OpenAiRequestTest, RefusalsNameTheParameter) {
  struct Case {
    OpenAiKind kind;
    const char* body;
    const char* param;
  };
  const OpenAiKind C = OpenAiKind::kCompletion, H = OpenAiKind::kChat;
  for (
      const Case& c : std::vector<Case>{
          {C, R"({"prompt": "x", "n": 2})", "n"},
          {H, R"({"messages": [{"role": "user", "content": "x"}], "n": 3})", "n"},
          {C, R"({"prompt": "x", "temperature": "hot"})", "temperature"},
          {C, R"({"prompt": "x", "max_tokens": 0})", "max_tokens"},
          {C, R"({"prompt": "x", "max_tokens": 1.5})", "max_tokens"},
          {C, R"({"prompt": "x", "stop": 3})", "stop"},
          {C, R"({"prompt": "x", "stop": ["a", 1]})", "stop"},
          {C, R"({})", "prompt"},
          {C, R"({"prompt": ["a", "b"]})", "prompt"},
          {C, R"({"prompt": "x", "echo": true})", "echo"},
          {C, R"({"prompt": "x", "best_of": 2})", "best_of"},
          {C, R"({"prompt": "x", "logprobs": 50})", "logprobs"},
          {C, R"({"prompt": "x", "logit_bias": {"a": 1}})", "logit_bias"},
          {H, R"({"messages": []})", "messages"},
          {H, R"({"messages": [{"role": "tool", "content": "x"}]})", "messages"},
          {H, R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})",
           "messages"},
          {H, R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})",
           "top_logprobs"},
          {H,
           R"({"messages": [{"role": "user", "content": "x"}], "tools": [{"type": "function"}]})",
           "tools"},
          {H,
           R"({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "xml"}})",
           "response_format.type"},
      }) {
    OpenAiError e = Refusal(c.kind, c.body);
    EXPECT_EQ(e.http_status, 400) << c.body;
    EXPECT_EQ(e.type, "invalid_request_error") << c.body;
    EXPECT_EQ(e.param, c.param) << c.body << ": " << e.message;
  }
  OpenAiError bad_json = Refusal(C, "{not json");
  EXPECT_EQ(bad_json.http_status, 400);
  EXPECT_NE(bad_json.message.find("could not parse the JSON body"), std::string::npos);
  EXPECT_EQ(Refusal(C, "[1, 2]").http_status, 400);
}

TEST(OpenAiErrorTest, StatusCodesMapOntoHttp) {
  EXPECT_EQ(ErrorFromStatus(absl::InvalidArgumentError("x")).http_status, 400);
  EXPECT_EQ(ErrorFromStatus(absl::FailedPreconditionError("x")).http_status, 400);
  OpenAiError auth = ErrorFromStatus(absl::UnauthenticatedError("no key"));
  EXPECT_EQ(auth.http_status, 401);
  EXPECT_EQ(auth.code, "invalid_api_key");
  OpenAiError busy = ErrorFromStatus(absl::ResourceExhaustedError("busy"));
  EXPECT_EQ(busy.http_status, 429);
  EXPECT_EQ(busy.code, "rate_limit_exceeded");
  EXPECT_EQ(ErrorFromStatus(absl::UnavailableError("x")).http_status, 503);
  EXPECT_EQ(ErrorFromStatus(absl::DeadlineExceededError("x")).http_status, 504);
  EXPECT_EQ(ErrorFromStatus(absl::InternalError("x")).http_status, 500);
  // The engine's validation messages name the field first.
  SamplingParams p;
  p.temperature = 200;
  OpenAiError e = ErrorFromStatus(p.Validate(512));
  EXPECT_EQ(e.param, "temperature");
  const json j = e.ToJson();
  ASSERT_TRUE(j.contains("error"));
  for (const char* key : {"message", "type", "param", "code"})
    EXPECT_TRUE(j["error"].contains(key)) << key;
  EXPECT_TRUE(j["error"]["code"].is_null());
  EXPECT_TRUE(ErrorFromStatus(absl::InvalidArgumentError("the model is sad"))
                  .ToJson()["error"]["param"]
                  .is_null());
  // `param` is data set where the error is made, never read from the text.
  EXPECT_EQ(ErrorFromStatus(absl::InvalidArgumentError("temperature: too hot")).param, "");
  EXPECT_EQ(ErrorFromStatus(InvalidFieldError("seed", "bad")).param, "seed");
  EXPECT_EQ(FieldOf(WithField(InvalidFieldError("stop", "x"), "prompt")),
            "stop");  // innermost wins
}

class OpenAiResponderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto tok = TestModelTokenizer("stories260K");
    ASSERT_TRUE(tok.ok()) << tok.status();
    tokenizer_ = std::move(*tok);
  }
  GeneratedToken Token(const std::string& text) {
    std::vector<int32_t> ids = tokenizer_->Encode(text, false, false);
    return GeneratedToken{ids.back(), text, -0.5f, {{ids.back(), -0.5f}, {3, -2.0f}}};
  }
  // Each "data: ..." payload of a server-sent-event string.
  static std::vector<std::string> Events(const std::string& sse) {
    std::vector<std::string> out;
    size_t at = 0;
    while ((at = sse.find("data: ", at)) != std::string::npos) {
      const size_t end = sse.find("\n\n", at);
      out.push_back(sse.substr(at + 6, end - at - 6));
      at = end;
    }
    return out;
  }
  std::unique_ptr<Tokenizer> tokenizer_;
  GenerationStats stats_{.prompt_tokens = 5, .generated_tokens = 2};
};

TEST_F(OpenAiResponderTest, CompletionBody) {
  OpenAiRequest req = Parse(OpenAiKind::kCompletion, R"({"prompt": "x", "logprobs": 1})");
  OpenAiResponder r(req, tokenizer_.get(), "cmpl-1", "stories260K", 123);
  r.AddToken(Token(" a"));
  r.AddToken(GeneratedToken{tokenizer_->eos_id(), "", -0.1f, {}});  // not part of the text
  json body;
  ASSERT_EQ(r.Finish(FinishReason::kEndOfText, stats_, absl::OkStatus(), &body), 200);
  EXPECT_EQ(body["object"], "text_completion");
  EXPECT_EQ(body["id"], "cmpl-1");
  EXPECT_EQ(body["model"], "stories260K");
  EXPECT_EQ(body["created"], 123);
  EXPECT_EQ(body["choices"][0]["text"], " a");
  EXPECT_EQ(body["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(body["choices"][0]["logprobs"]["tokens"].size(), 1u);
  EXPECT_EQ(body["choices"][0]["logprobs"]["text_offset"][0], 0);
  EXPECT_EQ(body["usage"],
            (json{{"prompt_tokens", 5}, {"completion_tokens", 2}, {"total_tokens", 7}}));
}

TEST_F(OpenAiResponderTest, ChatStreamEvents) {
  OpenAiRequest req = Parse(OpenAiKind::kChat, R"({"messages": [{"role": "user", "content": "x"}],
      "stream": true, "stream_options": {"include_usage": true}, "logprobs": true, "top_logprobs": 2})");
  OpenAiResponder r(req, tokenizer_.get(), "chatcmpl-1", "m", 1);
  std::vector<std::string> ev = Events(r.StreamStart());
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(json::parse(ev[0])["choices"][0]["delta"]["role"], "assistant");
  ev = Events(r.StreamToken(Token("Hi")));
  ASSERT_EQ(ev.size(), 1u);
  json chunk = json::parse(ev[0]);
  EXPECT_EQ(chunk["object"], "chat.completion.chunk");
  EXPECT_EQ(chunk["choices"][0]["delta"]["content"], "Hi");
  EXPECT_EQ(chunk["choices"][0]["logprobs"]["content"][0]["top_logprobs"].size(), 2u);
  EXPECT_EQ(r.StreamToken(GeneratedToken{-1, "", 0, {}}), "");  // nothing to tell
  ev = Events(r.StreamFinish(FinishReason::kLength, stats_, absl::OkStatus()));
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(json::parse(ev[0])["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(json::parse(ev[1])["usage"]["total_tokens"], 7);
  EXPECT_TRUE(json::parse(ev[1])["choices"].empty());
  EXPECT_EQ(ev[2], "[DONE]");
  EXPECT_EQ(r.text(), "Hi");
}

TEST_F(OpenAiResponderTest, FailuresBecomeErrors) {
  OpenAiRequest req =
      Parse(OpenAiKind::kChat, R"({"messages": [{"role": "user", "content": "x"}]})");
  OpenAiResponder r(req, tokenizer_.get(), "chatcmpl-1", "m", 1);
  json body;
  EXPECT_EQ(r.Finish(FinishReason::kError, stats_, absl::UnavailableError("worker down"), &body),
            503);
  EXPECT_EQ(body["error"]["message"], "worker down");
  std::vector<std::string> ev =
      Events(r.StreamFinish(FinishReason::kDeadline, stats_, absl::OkStatus()));
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_TRUE(json::parse(ev[0]).contains("error"));
  EXPECT_EQ(JsonText(json{{"t", std::string("\xff")}}),
            "{\"t\":\"\xEF\xBF\xBD\"}");  // never throws
}

}  // namespace
}  // namespace shardlm::testing
