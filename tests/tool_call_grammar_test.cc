// tool_choice "required" / a named function as a grammar: the GBNF parses,
// accepts calls in the template's syntax whose arguments fit the schema,
// and refuses text, other functions, arguments that miss a required field
// or break the schema; what it accepts parses back into the call.
#include "coordinator/tool_calls/tool_call_grammar.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "coordinator/grammar/gbnf_parser.h"
#include "coordinator/grammar/grammar_matcher.h"
#include "coordinator/tool_calls/tool_call_parser.h"
#include "coordinator/tool_calls/tool_request.h"

namespace shardlm::testing {
namespace {

ToolRequest Tools(const std::string& choice, bool parallel = true) {
  const nlohmann::ordered_json body = nlohmann::ordered_json::parse(R"({"tools": [
      {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object",
        "properties": {"location": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
        "required": ["location", "unit"], "additionalProperties": false}}},
      {"type": "function", "function": {"name": "ping"}}],
      "tool_choice": )" + choice + ", \"parallel_tool_calls\": " + (parallel ? "true" : "false") +
                                                                    "}");
  absl::StatusOr<ToolRequest> r = ParseToolRequest(body);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : ToolRequest{};
}

GrammarPtr Compile(const ToolRequest& tools, ToolCallStyle style) {
  absl::StatusOr<std::string> gbnf = ToolCallGbnf(tools, style);
  EXPECT_TRUE(gbnf.ok()) << gbnf.status();
  if (!gbnf.ok()) return nullptr;
  absl::StatusOr<GrammarPtr> g = ParseGbnf(*gbnf);
  EXPECT_TRUE(g.ok()) << g.status() << "\n" << *gbnf;
  return g.ok() ? *g : nullptr;
}

TEST(ToolCallGrammarTest, AutoAndNoneAreUnconstrained) {
  EXPECT_EQ(*ToolCallGbnf(Tools("\"auto\""), ToolCallStyle::kHermes), "");
  EXPECT_EQ(*ToolCallGbnf(Tools("\"none\""), ToolCallStyle::kHermes), "");
}

TEST(ToolCallGrammarTest, HermesRequired) {
  GrammarPtr g = Compile(Tools("\"required\""), ToolCallStyle::kHermes);
  ASSERT_NE(g, nullptr);
  const std::string weather =
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": \"Paris\", \"unit\": "
      "\"c\"}}\n</tool_call>";
  const std::string ping = "<tool_call>\n{\"name\": \"ping\", \"arguments\": {}}\n</tool_call>";
  EXPECT_TRUE(GrammarAccepts(g, weather));
  EXPECT_TRUE(GrammarAccepts(g, ping));
  EXPECT_TRUE(GrammarAccepts(g, weather + "\n" + ping));  // parallel calls
  EXPECT_FALSE(GrammarAccepts(g, "Sure! " + weather));    // no text: a call is required
  EXPECT_FALSE(GrammarAccepts(g, ""));
  // Arguments must fit the schema: both fields required, unit an enum, no others.
  EXPECT_FALSE(GrammarAccepts(g, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
                                 "{\"location\": \"Paris\"}}\n</tool_call>"));
  EXPECT_FALSE(GrammarAccepts(g, "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
                                 "{\"location\": \"Paris\", \"unit\": \"k\"}}\n</tool_call>"));
  EXPECT_FALSE(GrammarAccepts(g, "<tool_call>\n{\"name\": \"rm\", \"arguments\": {}}\n</tool_call>"));
  // What the grammar accepts, the parser reads back as the call.
  ToolCallParserOptions o;
  o.function_names = {"get_weather", "ping"};
  ToolCallParser parser(o);
  std::vector<ToolCallDelta> d;
  parser.Feed(weather, &d);
  parser.Finish(&d);
  ASSERT_EQ(parser.calls().size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(parser.calls()[0].arguments)["unit"], "c");
}

TEST(ToolCallGrammarTest, NamedAndNotParallel) {
  GrammarPtr g = Compile(Tools(R"({"type": "function", "function": {"name": "get_weather"}})", false),
                         ToolCallStyle::kHermes);
  ASSERT_NE(g, nullptr);
  const std::string weather =
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"location\": \"x\", \"unit\": "
      "\"f\"}}\n</tool_call>";
  EXPECT_TRUE(GrammarAccepts(g, weather));
  EXPECT_FALSE(GrammarAccepts(g, weather + "\n" + weather));
  EXPECT_FALSE(GrammarAccepts(g, "<tool_call>\n{\"name\": \"ping\", \"arguments\": {}}\n</tool_call>"));
}

TEST(ToolCallGrammarTest, Llama3AndMistralSyntax) {
  GrammarPtr llama = Compile(Tools("\"required\""), ToolCallStyle::kLlama3Json);
  ASSERT_NE(llama, nullptr);
  EXPECT_TRUE(GrammarAccepts(llama, "{\"name\": \"get_weather\", \"parameters\": {\"location\": "
                                    "\"Oslo\", \"unit\": \"c\"}}"));
  EXPECT_FALSE(GrammarAccepts(llama, "{\"name\": \"ping\", \"parameters\": {}}{\"name\": \"ping\", "
                                     "\"parameters\": {}}"));  // one call per turn
  GrammarPtr mistral = Compile(Tools("\"required\""), ToolCallStyle::kMistral);
  ASSERT_NE(mistral, nullptr);
  EXPECT_TRUE(GrammarAccepts(mistral, "[TOOL_CALLS][{\"name\": \"ping\", \"arguments\": {}}, "
                                      "{\"name\": \"ping\", \"arguments\": {}}]"));
  EXPECT_FALSE(GrammarAccepts(mistral, "{\"name\": \"ping\", \"arguments\": {}}"));
}

TEST(ToolCallGrammarTest, UnenforceableSchemaNamesTools) {
  const nlohmann::ordered_json body = nlohmann::ordered_json::parse(R"({"tools": [
      {"type": "function", "function": {"name": "f", "parameters": {"type": "object",
        "properties": {"s": {"type": "string", "pattern": "^a+$"}}}}}], "tool_choice": "required"})");
  absl::StatusOr<ToolRequest> r = ParseToolRequest(body);
  ASSERT_TRUE(r.ok());
  absl::StatusOr<std::string> gbnf = ToolCallGbnf(*r, ToolCallStyle::kHermes);
  ASSERT_FALSE(gbnf.ok());
  EXPECT_NE(gbnf.status().message().find("pattern"), std::string::npos) << gbnf.status();
}

}  // namespace
}  // namespace shardlm::testing
