// Structured output at the API edges, without a server: OpenAI's
// response_format and the `grammar` extension parsed into an OutputFormat,
// the gRPC SamplingParams fields likewise, and CompileOutputFormat's errors
// naming the request field and the schema keyword or grammar position.
#include <gtest/gtest.h>

#include "common/base/field_error.h"
#include "coordinator/grammar/grammar_matcher.h"
#include "coordinator/grammar/output_format.h"
#include "coordinator/openai_api.h"
#include "coordinator/proto_convert.h"

namespace shardlm::testing {
namespace {

OutputFormat Parsed(OpenAiKind kind, const std::string& body) {
  absl::StatusOr<OpenAiRequest> r = ParseOpenAiRequest(kind, body);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? ToClientRequest(*r).output_format : OutputFormat{};
}

TEST(StructuredOutputApiTest, OpenAiResponseFormats) {
  const std::string chat = R"("messages":[{"role":"user","content":"hi"}])";
  EXPECT_EQ(Parsed(OpenAiKind::kChat, "{" + chat + R"(,"response_format":{"type":"text"}})").kind,
            OutputFormat::Kind::kText);
  EXPECT_EQ(
      Parsed(OpenAiKind::kChat, "{" + chat + R"(,"response_format":{"type":"json_object"}})").kind,
      OutputFormat::Kind::kJsonObject);
  OutputFormat f = Parsed(OpenAiKind::kChat, "{" + chat + R"(,"response_format":{"type":"json_schema",
      "json_schema":{"name":"x","strict":true,"schema":{"type":"integer"}}}})");
  EXPECT_EQ(f.kind, OutputFormat::Kind::kJsonSchema);
  EXPECT_EQ(f.source, R"({"type":"integer"})");
  EXPECT_EQ(f.field, "response_format.json_schema.schema");
  f = Parsed(OpenAiKind::kCompletion, R"({"prompt":"a","grammar":"root ::= \"b\""})");
  EXPECT_EQ(f.kind, OutputFormat::Kind::kGrammar);
  EXPECT_EQ(f.field, "grammar");
  // Compiled: the grammar works.
  absl::StatusOr<GrammarPtr> g = CompileOutputFormat(f);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_TRUE(GrammarAccepts(*g, "b"));
}

TEST(StructuredOutputApiTest, OpenAiBadResponseFormatsNameTheField) {
  const std::string chat = R"({"messages":[{"role":"user","content":"hi"}],)";
  for (const auto& [body, field] : std::vector<std::pair<std::string, std::string>>{
           {R"("response_format":"json"})", "response_format"},
           {R"("response_format":{"type":"xml"}})", "response_format.type"},
           {R"("response_format":{"type":"json_schema"}})", "response_format.json_schema"},
           {R"("response_format":{"type":"json_schema","json_schema":{"strict":1,"schema":{}}}})",
            "response_format.json_schema.strict"},
           {R"("response_format":{"type":"json_object"},"grammar":"root ::= \"a\""})", "grammar"}}) {
    absl::StatusOr<OpenAiRequest> r = ParseOpenAiRequest(OpenAiKind::kChat, chat + body);
    ASSERT_FALSE(r.ok()) << body;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(FieldOf(r.status()), field) << r.status();
  }
}

TEST(StructuredOutputApiTest, CompileErrorsNameFieldAndKeyword) {
  OutputFormat f{OutputFormat::Kind::kJsonSchema, R"({"type":"string","pattern":"a"})",
                 "response_format.json_schema.schema", ""};
  absl::StatusOr<GrammarPtr> g = CompileOutputFormat(f);
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(FieldOf(g.status()), "response_format.json_schema.schema");
  EXPECT_NE(g.status().message().find("keyword 'pattern'"), std::string::npos) << g.status();
  f.source = "{not json";
  EXPECT_NE(CompileOutputFormat(f).status().message().find("not valid JSON"), std::string::npos);
  f.source = std::string(100, '[') + std::string(100, ']');
  EXPECT_EQ(CompileOutputFormat(f).status().code(), absl::StatusCode::kInvalidArgument);
  f = {OutputFormat::Kind::kGrammar, "root ::= [a-z", "sampling.grammar", ""};
  g = CompileOutputFormat(f);
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("sampling.grammar: grammar: line 1, column 10"),
            std::string::npos)
      << g.status();
}

TEST(StructuredOutputApiTest, GrpcSamplingFields) {
  v1::SamplingParams p;
  EXPECT_EQ(OutputFormatFromProto(p).kind, OutputFormat::Kind::kText);
  p.set_json_schema(R"({"type":"boolean"})");
  OutputFormat f = OutputFormatFromProto(p);
  EXPECT_EQ(f.kind, OutputFormat::Kind::kJsonSchema);
  EXPECT_EQ(f.field, "sampling.json_schema");
  absl::StatusOr<GrammarPtr> g = CompileOutputFormat(f);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_TRUE(GrammarAccepts(*g, "true"));
  p.set_json_object(true);
  f = OutputFormatFromProto(p);
  EXPECT_NE(CompileOutputFormat(f).status().message().find("at most one"), std::string::npos);
  p.clear_json_schema();
  EXPECT_EQ(OutputFormatFromProto(p).kind, OutputFormat::Kind::kJsonObject);
  p.set_json_object(false);
  p.set_grammar("root ::= \"x\"");
  EXPECT_EQ(OutputFormatFromProto(p).kind, OutputFormat::Kind::kGrammar);
}

}  // namespace
}  // namespace shardlm::testing
