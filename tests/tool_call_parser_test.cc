// The tool-call parser (coordinator/tool_calls/): replies in each template
// style read back into content and calls, whole and streamed in pieces (the
// same result whatever the pieces), the stream's deltas (a call's id and
// name first, then its arguments in pieces that concatenate to the
// arguments), and malformed calls kept as content, never a failure.
#include "coordinator/tool_calls/tool_call_parser.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "coordinator/tool_calls/call_object_scanner.h"
#include "coordinator/tool_calls/tool_call_format.h"

namespace shardlm::testing {
namespace {

struct Parsed {
  std::string content;
  std::vector<ChatToolCall> calls;
  std::vector<ToolCallDelta> deltas;
  std::string streamed_content;           // the content deltas joined
  std::vector<std::string> streamed_args; // per announced call, its argument pieces joined
  std::vector<std::string> streamed_names;
};

ToolCallParserOptions Options(ToolCallStyle style, bool parallel = true) {
  ToolCallParserOptions o;
  o.style = style;
  o.function_names = {"get_weather", "search_web"};
  o.parallel = parallel;
  auto n = std::make_shared<int>(0);
  o.make_id = [n] { return "call_" + std::to_string(++*n); };
  return o;
}

// Feeds `reply` in pieces of `piece` bytes (0: whole).
Parsed Parse(ToolCallStyle style, const std::string& reply, size_t piece = 0,
             bool parallel = true) {
  ToolCallParser p(Options(style, parallel));
  Parsed out;
  if (piece == 0) piece = reply.size() + 1;
  for (size_t at = 0; at < reply.size(); at += piece) p.Feed(reply.substr(at, piece), &out.deltas);
  p.Finish(&out.deltas);
  out.content = p.content();
  out.calls = p.calls();
  for (const ToolCallDelta& d : out.deltas) {
    switch (d.kind) {
      case ToolCallDelta::Kind::kContent:
        out.streamed_content += d.text;
        break;
      case ToolCallDelta::Kind::kCallStart:
        EXPECT_EQ(d.index, static_cast<int>(out.streamed_names.size()));
        out.streamed_names.push_back(d.name);
        out.streamed_args.emplace_back();
        break;
      case ToolCallDelta::Kind::kArguments:
        EXPECT_EQ(d.index + 1, static_cast<int>(out.streamed_args.size()))
            << "arguments before their call's start";
        if (!out.streamed_args.empty()) out.streamed_args.back() += d.text;
        break;
    }
  }
  return out;
}

// The same reply whole, byte by byte and in 3-byte pieces: one result.
Parsed ParseEveryWay(ToolCallStyle style, const std::string& reply, bool parallel = true) {
  Parsed whole = Parse(style, reply, 0, parallel);
  for (size_t piece : {1, 3, 7}) {
    SCOPED_TRACE("pieces of " + std::to_string(piece));
    Parsed p = Parse(style, reply, piece, parallel);
    EXPECT_EQ(p.content, whole.content);
    EXPECT_EQ(p.streamed_content, whole.streamed_content);
    EXPECT_EQ(p.streamed_args, whole.streamed_args);
    EXPECT_EQ(p.streamed_names, whole.streamed_names);
    EXPECT_EQ(p.calls.size(), whole.calls.size());
    for (size_t i = 0; i < p.calls.size() && i < whole.calls.size(); ++i) {
      EXPECT_EQ(p.calls[i].name, whole.calls[i].name);
      EXPECT_EQ(p.calls[i].arguments, whole.calls[i].arguments);
      EXPECT_EQ(p.calls[i].id, whole.calls[i].id);
    }
  }
  // What a stream sent adds up to the final result.
  EXPECT_EQ(whole.streamed_args.size(), whole.calls.size());
  for (size_t i = 0; i < whole.calls.size() && i < whole.streamed_args.size(); ++i) {
    EXPECT_EQ(whole.streamed_args[i], whole.calls[i].arguments);
    EXPECT_EQ(whole.streamed_names[i], whole.calls[i].name);
  }
  return whole;
}

TEST(ToolCallParserTest, HermesCall) {
  Parsed p = ParseEveryWay(ToolCallStyle::kHermes,
                           "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": "
                           "\"Paris, France\", \"unit\": \"celsius\"}}\n</tool_call>");
  EXPECT_EQ(p.content, "");
  ASSERT_EQ(p.calls.size(), 1u);
  EXPECT_EQ(p.calls[0].name, "get_weather");
  EXPECT_EQ(p.calls[0].id, "call_1");
  EXPECT_EQ(p.calls[0].arguments, R"({"location": "Paris, France", "unit": "celsius"})");
  EXPECT_EQ(nlohmann::json::parse(p.calls[0].arguments)["unit"], "celsius");
}

TEST(ToolCallParserTest, HermesTextThenTwoCalls) {
  Parsed p = ParseEveryWay(
      ToolCallStyle::kHermes,
      "Let me look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": "
      "\"Oslo\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"search_web\", \"arguments\": "
      "{\"query\": \"a } in \\\"quotes\\\" {\", \"sites\": [\"x.org\", {\"k\": []}]}}\n</tool_call>");
  EXPECT_EQ(p.content, "Let me look.");  // the space before a call is not content
  ASSERT_EQ(p.calls.size(), 2u);
  EXPECT_EQ(p.calls[1].name, "search_web");
  EXPECT_EQ(p.calls[1].id, "call_2");
  EXPECT_EQ(nlohmann::json::parse(p.calls[1].arguments)["query"], "a } in \"quotes\" {");
}

TEST(ToolCallParserTest, ParallelOffKeepsTheFirstCall) {
  const std::string two =
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {}}\n</tool_call>\n<tool_call>\n"
      "{\"name\": \"search_web\", \"arguments\": {}}\n</tool_call>";
  Parsed p = ParseEveryWay(ToolCallStyle::kHermes, two, /*parallel=*/false);
  ASSERT_EQ(p.calls.size(), 1u);
  EXPECT_EQ(p.calls[0].name, "get_weather");
  EXPECT_EQ(p.content, "");
  EXPECT_EQ(ParseEveryWay(ToolCallStyle::kHermes, two).calls.size(), 2u);
}

TEST(ToolCallParserTest, PlainTextIsContentAndStreamsAsItComes) {
  const std::string text = "Hello <b>world</b> < tool_call> {\"name\": \"get_weather\"}\n";
  Parsed p = ParseEveryWay(ToolCallStyle::kHermes, text);
  EXPECT_TRUE(p.calls.empty());
  EXPECT_EQ(p.content, text);
  EXPECT_EQ(p.streamed_content, text);
  // Held back only while it could be the opening: "<tool" waits, "Hi" does not.
  ToolCallParser parser(Options(ToolCallStyle::kHermes));
  std::vector<ToolCallDelta> d;
  parser.Feed("Hi <tool", &d);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].text, "Hi");  // the space waits for what follows it
  d.clear();
  parser.Feed("box>", &d);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].text, " <toolbox>");
}

TEST(ToolCallParserTest, MalformedCallsStayContent) {
  for (const std::string& reply : {
           // not JSON inside
           std::string("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"a\": tru}}\n"
                       "</tool_call>"),
           // a function nobody offered
           std::string("<tool_call>\n{\"name\": \"rm_rf\", \"arguments\": {}}\n</tool_call>"),
           // no name
           std::string("<tool_call>\n{\"arguments\": {}}\n</tool_call>"),
           // not an object
           std::string("<tool_call>\n[1, 2]\n</tool_call>"),
           // cut off
           std::string("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Pa"),
           std::string("<tool_call>"),
           // a key that is not a string
           std::string("<tool_call>{name: 1}</tool_call>"),
           // arguments that are not an object
           std::string("<tool_call>{\"name\": \"get_weather\", \"arguments\": 3}</tool_call>"),
           std::string("<tool_call>{\"name\": \"get_weather\", \"arguments\": \"x\"}</tool_call>"),
       }) {
    SCOPED_TRACE(reply);
    Parsed p = Parse(ToolCallStyle::kHermes, reply);
    EXPECT_TRUE(p.calls.empty());
    EXPECT_NE(p.content.find("<tool_call>"), std::string::npos);
    for (size_t piece : {1, 5}) {
      Parsed q = Parse(ToolCallStyle::kHermes, reply, piece);
      EXPECT_TRUE(q.calls.empty());
      EXPECT_EQ(q.content, p.content);
    }
  }
}

TEST(ToolCallParserTest, ArgumentsWrittenAsAStringAreDecoded) {
  Parsed p = ParseEveryWay(
      ToolCallStyle::kHermes,
      "<tool_call>{\"name\": \"get_weather\", \"arguments\": \"{\\\"location\\\": \\\"Rome\\\"}\"}"
      "</tool_call>");
  ASSERT_EQ(p.calls.size(), 1u);
  EXPECT_EQ(p.calls[0].arguments, R"({"location": "Rome"})");
}

TEST(ToolCallParserTest, ArgumentsBeforeTheNameAndNoArguments) {
  Parsed p = ParseEveryWay(
      ToolCallStyle::kHermes,
      "<tool_call>{\"arguments\": {\"query\": \"x\"}, \"name\": \"search_web\"}</tool_call>"
      "<tool_call>{\"name\": \"get_weather\"}</tool_call>");
  ASSERT_EQ(p.calls.size(), 2u);
  EXPECT_EQ(p.calls[0].arguments, R"({"query": "x"})");
  EXPECT_EQ(p.calls[1].arguments, "{}");
}

TEST(ToolCallParserTest, Llama3JsonCall) {
  Parsed p = ParseEveryWay(ToolCallStyle::kLlama3Json,
                           "{\"name\": \"get_weather\", \"parameters\": {\"location\": \"Paris\", "
                           "\"days\": 3}}");
  ASSERT_EQ(p.calls.size(), 1u);
  EXPECT_EQ(p.calls[0].name, "get_weather");
  EXPECT_EQ(p.calls[0].arguments, R"({"location": "Paris", "days": 3})");
  EXPECT_EQ(p.content, "");
  // With the python tag and a "type" key first.
  p = ParseEveryWay(ToolCallStyle::kLlama3Json,
                    "<|python_tag|>{\"type\": \"function\", \"name\": \"search_web\", "
                    "\"parameters\": {\"query\": \"q\"}}");
  ASSERT_EQ(p.calls.size(), 1u);
  EXPECT_EQ(p.calls[0].name, "search_web");
}

TEST(ToolCallParserTest, Llama3TextAndJsonThatIsNotACall) {
  Parsed p = ParseEveryWay(ToolCallStyle::kLlama3Json, "  It is sunny {\"name\": \"get_weather\"}");
  EXPECT_TRUE(p.calls.empty());
  EXPECT_EQ(p.content, "  It is sunny {\"name\": \"get_weather\"}");
  p = ParseEveryWay(ToolCallStyle::kLlama3Json, "{\"answer\": 42} and more");
  EXPECT_TRUE(p.calls.empty());
  EXPECT_EQ(p.content, "{\"answer\": 42} and more");
}

TEST(ToolCallParserTest, MistralCalls) {
  Parsed p = ParseEveryWay(
      ToolCallStyle::kMistral,
      "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Paris\"}, \"id\": "
      "\"a1B2c3D4e\"}, {\"name\": \"search_web\", \"arguments\": {\"query\": \"x\"}}]");
  ASSERT_EQ(p.calls.size(), 2u);
  EXPECT_EQ(p.calls[0].arguments, R"({"location": "Paris"})");
  EXPECT_EQ(p.calls[1].name, "search_web");
  EXPECT_EQ(p.content, "");
}

TEST(ToolCallParserTest, StreamAnnouncesTheNameBeforeTheArgumentsEnd) {
  ToolCallParser parser(Options(ToolCallStyle::kHermes));
  std::vector<ToolCallDelta> d;
  parser.Feed("<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"loc", &d);
  ASSERT_EQ(d.size(), 2u);
  EXPECT_EQ(d[0].kind, ToolCallDelta::Kind::kCallStart);
  EXPECT_EQ(d[0].name, "get_weather");
  EXPECT_EQ(d[0].id, "call_1");
  EXPECT_EQ(d[1].kind, ToolCallDelta::Kind::kArguments);
  EXPECT_EQ(d[1].text, "{\"loc");
  d.clear();
  parser.Feed("ation\": \"Paris\"}}\n</tool_call>", &d);
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[0].text, "ation\": \"Paris\"}");
  EXPECT_EQ(parser.announced(), 1);
}

// Replies stitched from the fragments calls are made of, cut at random
// places: the parser never fails, the result never depends on the cuts, and
// every call it returns names an offered function with arguments that are
// JSON.
TEST(ToolCallParserTest, RandomFragmentsWholeEqualsPieces) {
  const std::vector<std::string> fragments = {
      "<tool_call>", "</tool_call>", "[TOOL_CALLS]", "<|python_tag|>", "{", "}", "[", "]", ",",
      ":", " ", "\n", "\"name\"", "\"arguments\"", "\"parameters\"", "\"get_weather\"",
      "\"ping\"", "\"x\"", "1", "true", "\\", "\"", "<tool", "text", "{\"name\": \"search_web\", "
      "\"arguments\": {\"q\": \"}\"}}"};
  std::mt19937_64 rng(20);
  for (ToolCallStyle style :
       {ToolCallStyle::kHermes, ToolCallStyle::kLlama3Json, ToolCallStyle::kMistral}) {
    for (int iter = 0; iter < 600; ++iter) {
      std::string reply;
      const int n = 1 + static_cast<int>(rng() % 24);
      for (int i = 0; i < n; ++i) reply += fragments[rng() % fragments.size()];
      SCOPED_TRACE(std::string(ToolCallStyleName(style)) + ": " + reply);
      Parsed whole = Parse(style, reply);
      Parsed cut = Parse(style, reply, 1 + rng() % 6);
      EXPECT_EQ(cut.content, whole.content);
      ASSERT_EQ(cut.calls.size(), whole.calls.size());
      for (size_t i = 0; i < whole.calls.size(); ++i) {
        EXPECT_EQ(cut.calls[i].arguments, whole.calls[i].arguments);
        EXPECT_TRUE(whole.calls[i].name == "get_weather" || whole.calls[i].name == "search_web");
        EXPECT_TRUE(nlohmann::json::parse(whole.calls[i].arguments, nullptr, false).is_object());
      }
    }
  }
}

TEST(CallObjectScannerTest, FindsTheEndAndTheValues) {
  CallObjectScanner s;
  const std::string obj = R"({"name": "f\"x", "arguments": {"a": "}", "b": [1, {"c": 2}]}, "z": 1})";
  EXPECT_EQ(s.Feed(obj + "tail"), obj.size());
  EXPECT_TRUE(s.complete());
  EXPECT_TRUE(s.has_name());
  EXPECT_EQ(s.name(), "f\"x");
  EXPECT_EQ(s.arguments_so_far(), R"({"a": "}", "b": [1, {"c": 2}]})");
  EXPECT_TRUE(s.arguments_complete());
  CallObjectScanner scalar;
  scalar.Feed(R"({"parameters": 12 })");
  EXPECT_TRUE(scalar.complete());
  EXPECT_EQ(scalar.arguments_so_far(), "12");
  CallObjectScanner broken;
  EXPECT_EQ(broken.Feed("{\"a\" 1}"), 5u);
  EXPECT_TRUE(broken.broken());
}

TEST(ToolCallFormatTest, StyleFollowsTheTemplate) {
  EXPECT_EQ(DetectToolCallStyle("", ""), ToolCallStyle::kHermes);
  EXPECT_EQ(DetectToolCallStyle("chatml", ""), ToolCallStyle::kHermes);
  EXPECT_EQ(DetectToolCallStyle("{{ '<tool_call>' }}", ""), ToolCallStyle::kHermes);
  EXPECT_EQ(DetectToolCallStyle("{{ '<|start_header_id|>' }}", ""), ToolCallStyle::kLlama3Json);
  EXPECT_EQ(DetectToolCallStyle("{{ '[TOOL_CALLS][' }}", ""), ToolCallStyle::kMistral);
  // A family named by the request wins over the model's template.
  EXPECT_EQ(DetectToolCallStyle("{{ '[TOOL_CALLS][' }}", "chatml"), ToolCallStyle::kHermes);
  std::mt19937_64 rng(1);
  const std::string mistral = MakeToolCallId(ToolCallStyle::kMistral, &rng);
  EXPECT_EQ(mistral.size(), 9u);
  const std::string openai = MakeToolCallId(ToolCallStyle::kHermes, &rng);
  EXPECT_EQ(openai.substr(0, 5), "call_");
  EXPECT_EQ(openai.size(), 29u);
  EXPECT_NE(MakeToolCallId(ToolCallStyle::kHermes, &rng), openai);
}

}  // namespace
}  // namespace shardlm::testing
