// Constrained sampling's pieces: the GBNF parser (and its errors with line
// and column), the automaton accepting and rejecting byte strings, the JSON
// Schema converter (each keyword; unsupported ones named), and the trie mask
// equal to the brute-force mask (every token checked on its own) on the
// Llama 2, Llama 3 and Qwen2 vocabularies.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>
#include <string>

#include "coordinator/grammar/gbnf_parser.h"
#include "coordinator/grammar/grammar_matcher.h"
#include "coordinator/grammar/json_schema_to_grammar.h"
#include "coordinator/grammar/token_constraint.h"
#include "coordinator/grammar/vocab_trie.h"
#include "tests/test_data.h"

namespace shardlm::testing {
namespace {

using json = nlohmann::ordered_json;

GrammarPtr Parse(const std::string& gbnf) {
  absl::StatusOr<GrammarPtr> g = ParseGbnf(gbnf);
  EXPECT_TRUE(g.ok()) << g.status() << "\n" << gbnf;
  return g.ok() ? *g : nullptr;
}

GrammarPtr Schema(const std::string& schema) {
  absl::StatusOr<GrammarPtr> g = CompileJsonSchema(json::parse(schema));
  EXPECT_TRUE(g.ok()) << g.status() << "\n" << schema;
  return g.ok() ? *g : nullptr;
}

std::string SchemaError(const std::string& schema) {
  absl::StatusOr<GrammarPtr> g = CompileJsonSchema(json::parse(schema));
  EXPECT_FALSE(g.ok()) << schema;
  EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(g.status().message());
}

std::string GbnfError(const std::string& gbnf) {
  absl::StatusOr<GrammarPtr> g = ParseGbnf(gbnf);
  EXPECT_FALSE(g.ok()) << gbnf;
  EXPECT_EQ(g.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(g.status().message());
}

bool IsPrefix(GrammarPtr g, const std::string& text) { return GrammarMatcher(g).Accept(text); }

TEST(GbnfParserTest, ParsesLiteralsClassesGroupsAndRepetitions) {
  GrammarPtr g = Parse(R"(# a comment
root ::= greeting " " name ("!" | "?")* [0-9]{2,3}
greeting ::= "hi" | "hello"   # trailing comment
name ::= [A-Z] [a-z]+ | "\u00e9t\xe9"
)");
  ASSERT_NE(g, nullptr);
  EXPECT_TRUE(GrammarAccepts(g, "hi Bob!!?12"));
  EXPECT_TRUE(GrammarAccepts(g, "hello Al123"));
  EXPECT_TRUE(GrammarAccepts(g, "hi \xC3\xA9t\xC3\xA9" "99"));
  EXPECT_FALSE(GrammarAccepts(g, "hi Bob!!?1"));     // {2,3}: too few digits
  EXPECT_FALSE(GrammarAccepts(g, "hi Bob1234"));     // too many
  EXPECT_FALSE(GrammarAccepts(g, "hi bob12"));       // [A-Z] first
  EXPECT_FALSE(GrammarAccepts(g, "hey Bob12"));
  EXPECT_TRUE(IsPrefix(g, "hel"));
  EXPECT_FALSE(IsPrefix(g, "hex"));
}

TEST(GbnfParserTest, NewlinesInsideParenthesesAndAfterBar) {
  GrammarPtr g = Parse("root ::= (\n  \"a\"\n  | \"b\"\n) |\n \"c\"\n");
  ASSERT_NE(g, nullptr);
  EXPECT_TRUE(GrammarAccepts(g, "a"));
  EXPECT_TRUE(GrammarAccepts(g, "b"));
  EXPECT_TRUE(GrammarAccepts(g, "c"));
}

TEST(GbnfParserTest, ErrorsNameLineAndColumn) {
  EXPECT_NE(GbnfError("root ::= \"a\"\nfoo ::= \"unterminated\n").find("line 2, column 9"),
            std::string::npos);
  EXPECT_NE(GbnfError("root ::= [a-z\n").find("line 1, column 10: unterminated character class"),
            std::string::npos);
  EXPECT_NE(GbnfError("root ::= x\n").find("'x' is used but not defined"), std::string::npos);
  EXPECT_NE(GbnfError("root ::= \"a\"\n\n  bad ::= \"b\" )").find("line 3, column 15"),
            std::string::npos);
  EXPECT_NE(GbnfError("root = \"a\"").find("line 1, column 6: expected '::='"), std::string::npos);
  EXPECT_NE(GbnfError("start ::= \"a\"").find("no rule 'root'"), std::string::npos);
  EXPECT_NE(GbnfError("root ::= * \"a\"").find("follows nothing"), std::string::npos);
  EXPECT_NE(GbnfError("root ::= \"a\"{5,2}").find("out of range"), std::string::npos);
  EXPECT_NE(GbnfError("root ::= \"a\"{1,100000}").find("out of range"), std::string::npos);
  EXPECT_NE(GbnfError("root ::= \"\\q\"").find("unknown escape"), std::string::npos);
  EXPECT_NE(GbnfError("root ::= \"a\"\nroot ::= \"b\"").find("defined twice"), std::string::npos);
  EXPECT_NE(GbnfError("root ::= root \"a\" | \"b\"").find("left-recursive"), std::string::npos);
  EXPECT_NE(GbnfError("root ::= x \"a\"\nx ::= \"\" | root").find("left-recursive"),
            std::string::npos);
}

TEST(GrammarMatcherTest, Utf8ClassesAndPartialCharacters) {
  GrammarPtr g = Parse(R"(root ::= [^a-z]+)");
  ASSERT_NE(g, nullptr);
  EXPECT_TRUE(GrammarAccepts(g, "\xE2\x82\xAC"));  // €
  GrammarMatcher m(g);
  EXPECT_TRUE(m.Accept("\xE2\x82"));  // half a character: a prefix, not a sentence
  EXPECT_FALSE(m.CanEnd());
  EXPECT_TRUE(m.Accept("\xAC"));
  EXPECT_TRUE(m.CanEnd());
  EXPECT_FALSE(IsPrefix(g, "\xFF"));          // never valid UTF-8
  EXPECT_FALSE(IsPrefix(g, "\xC0\x80"));      // overlong
  EXPECT_FALSE(IsPrefix(g, "\xED\xA0\x80"));  // a surrogate
  EXPECT_FALSE(IsPrefix(g, "Aa"));
  // A class of ASCII only: the lead byte of a 2-byte character is already dead.
  GrammarPtr digits = Parse(R"(root ::= [0-9]+)");
  EXPECT_FALSE(IsPrefix(digits, "\xC3"));
}

TEST(GrammarMatcherTest, CompleteWhenNothingMayFollow) {
  GrammarPtr g = Parse(R"(root ::= "yes" | "no" "pe"?)");
  GrammarMatcher m(g);
  ASSERT_TRUE(m.Accept("no"));
  EXPECT_TRUE(m.CanEnd());
  EXPECT_FALSE(m.IsComplete());  // "nope" is still possible
  ASSERT_TRUE(m.Accept("pe"));
  EXPECT_TRUE(m.IsComplete());
  EXPECT_FALSE(m.Accept("x"));
  EXPECT_TRUE(m.dead());
}

TEST(GrammarMatcherTest, DeepNestingStaysBounded) {
  GrammarPtr g = JsonObjectGrammar();
  std::string deep;
  for (int i = 0; i < 200; ++i) deep += "{\"a\":";
  deep += "1";
  for (int i = 0; i < 200; ++i) deep += "}";
  EXPECT_TRUE(GrammarAccepts(g, deep));
}

TEST(GrammarMatcherTest, HostileGrammarsAreBoundedNotFatal) {
  // A chain of rules deeper than the expansion bound: refused at run time
  // (nothing matches), not a stack overflow.
  std::string chain = "root ::= r0\n";
  for (int i = 0; i < 5000; ++i) chain += "r" + std::to_string(i) + " ::= r" + std::to_string(i + 1) + "\n";
  chain += "r5000 ::= \"a\"\n";
  GrammarPtr g = Parse(chain);
  ASSERT_NE(g, nullptr);
  EXPECT_FALSE(GrammarAccepts(g, "a"));
  // Very ambiguous: many parses of the same text stay one deduplicated state set.
  GrammarPtr amb = Parse(R"(root ::= x*
x ::= "a" | "a" "a" | "a" "a" "a" | y
y ::= "a" | "b" x)");
  ASSERT_NE(amb, nullptr);
  EXPECT_TRUE(GrammarAccepts(amb, std::string(300, 'a')));
}

// Grammars from the network: random mutations of valid grammars parse or
// fail with INVALID_ARGUMENT, and whatever parses runs on random bytes,
// bounded, without crashing (sanitizer builds make this a memory check).
TEST(GbnfParserTest, MutatedGrammarsNeverCrash) {
  const std::vector<std::string> seeds = {
      R"(root ::= "a" [b-d]* ("e" | f){1,3} . [^x])" "\nf ::= \"\\u00e9\" | [0-9]+\n",
      *JsonSchemaToGbnf(json::parse(R"({"type":"object","properties":{"a":{"type":"array",
          "items":{"type":"string","maxLength":3}}},"required":["a"]})")),
  };
  const std::string alphabet = "\"[]()|*+?{},.-^\\:= \n#abxr0123456789\xC3\xA9";
  std::mt19937 rng(11);
  int parsed = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string g = seeds[i % seeds.size()];
    const int edits = 1 + rng() % 4;
    for (int e = 0; e < edits && !g.empty(); ++e) {
      const size_t at = rng() % g.size();
      switch (rng() % 3) {
        case 0: g[at] = alphabet[rng() % alphabet.size()]; break;
        case 1: g.erase(at, 1 + rng() % 3); break;
        default: g.insert(at, 1, alphabet[rng() % alphabet.size()]); break;
      }
    }
    absl::StatusOr<GrammarPtr> r = ParseGbnf(g);
    if (!r.ok()) {
      ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << g;
      continue;
    }
    ++parsed;
    GrammarMatcher m(*r);
    std::string bytes;
    for (int k = 0; k < 64; ++k) bytes += alphabet[rng() % alphabet.size()];
    m.Accept(bytes);
  }
  EXPECT_GT(parsed, 100);  // the mutations exercise the matcher too
}

TEST(JsonSchemaTest, JsonObjectMode) {
  GrammarPtr g = JsonObjectGrammar();
  EXPECT_TRUE(GrammarAccepts(g, R"({"a":[1,2.5e3,true,null,{"b":"c\n\u00e9"}], "d": -0.5})"));
  EXPECT_TRUE(GrammarAccepts(g, "{}"));
  EXPECT_FALSE(GrammarAccepts(g, "[1]"));
  EXPECT_FALSE(GrammarAccepts(g, R"({"a":01})"));
  EXPECT_FALSE(GrammarAccepts(g, "{\"a\":\"raw\nnewline\"}"));
  EXPECT_FALSE(GrammarAccepts(g, R"({"a": 1 })"));  // compact: no space before '}'
}

TEST(JsonSchemaTest, TypesPropertiesRequiredAndAdditional) {
  GrammarPtr g = Schema(R"({"type":"object","properties":{
      "name":{"type":"string"},"age":{"type":"integer"},"ok":{"type":"boolean"},
      "score":{"type":"number"},"none":{"type":"null"}},
      "required":["name","age"],"additionalProperties":false})");
  EXPECT_TRUE(GrammarAccepts(g, R"({"name":"Al","age":3})"));
  EXPECT_TRUE(GrammarAccepts(g, R"({"name": "Al", "age": -3, "ok": true, "none": null})"));
  // Optional properties come in the schema's order (ok before none), not
  // sorted by name.
  EXPECT_FALSE(GrammarAccepts(g, R"({"name":"Al","age":3,"none":null,"ok":true})"));
  EXPECT_TRUE(GrammarAccepts(g, R"({"name":"Al","age":3,"score":1.5e-3})"));
  EXPECT_FALSE(GrammarAccepts(g, R"({"name":"Al"})"));        // age required
  EXPECT_FALSE(GrammarAccepts(g, R"({"age":3,"name":"Al"})"));  // required order
  EXPECT_FALSE(GrammarAccepts(g, R"({"name":"Al","age":3.5})"));
  EXPECT_FALSE(GrammarAccepts(g, R"({"name":"Al","age":3,"x":1})"));
  // Only optional properties: any subset, no stray comma.
  GrammarPtr opt = Schema(R"({"properties":{"a":{"type":"integer"},"b":{"type":"integer"}}})");
  for (const char* ok : {"{}", R"({"a":1})", R"({"b":2})", R"({"a":1,"b":2})"}) {
    EXPECT_TRUE(GrammarAccepts(opt, ok)) << ok;
  }
  EXPECT_FALSE(GrammarAccepts(opt, R"({,"b":2})"));
  GrammarPtr zyx = Schema(R"({"properties":{"z":{"type":"integer"},"a":{"type":"integer"}}})");
  EXPECT_TRUE(GrammarAccepts(zyx, R"({"z":1,"a":2})"));
  EXPECT_FALSE(GrammarAccepts(zyx, R"({"a":2,"z":1})"));
  // Required ones first, in the order "properties" lists them (llama.cpp's
  // order), whatever the order of "required".
  GrammarPtr req = Schema(R"({"properties":{"o":{"type":"integer"},"n":{"type":"integer"},
      "m":{"type":"integer"}},"required":["m","n"]})");
  EXPECT_TRUE(GrammarAccepts(req, R"({"n":1,"m":2,"o":3})"));
  EXPECT_FALSE(GrammarAccepts(req, R"({"m":2,"n":1})"));
  EXPECT_FALSE(GrammarAccepts(req, R"({"o":3,"n":1,"m":2})"));
  // A map: additionalProperties with a schema and no properties.
  GrammarPtr map = Schema(R"({"type":"object","additionalProperties":{"type":"integer"}})");
  EXPECT_TRUE(GrammarAccepts(map, R"({"x":1,"y":2})"));
  EXPECT_FALSE(GrammarAccepts(map, R"({"x":"1"})"));
}

TEST(JsonSchemaTest, EnumConstAnyOfOneOfAndTypeLists) {
  GrammarPtr e = Schema(R"({"enum":["red","green",3,null]})");
  EXPECT_TRUE(GrammarAccepts(e, "\"red\""));
  EXPECT_TRUE(GrammarAccepts(e, "3"));
  EXPECT_TRUE(GrammarAccepts(e, "null"));
  EXPECT_FALSE(GrammarAccepts(e, "\"blue\""));
  GrammarPtr c = Schema(R"({"const":{"k":[1,"x"]}})");
  EXPECT_TRUE(GrammarAccepts(c, R"({"k":[1,"x"]})"));
  EXPECT_FALSE(GrammarAccepts(c, R"({"k":[1,"y"]})"));
  GrammarPtr any = Schema(R"({"anyOf":[{"type":"integer"},{"type":"string","maxLength":2}]})");
  EXPECT_TRUE(GrammarAccepts(any, "12"));
  EXPECT_TRUE(GrammarAccepts(any, "\"ab\""));
  EXPECT_FALSE(GrammarAccepts(any, "\"abc\""));
  GrammarPtr one = Schema(R"({"oneOf":[{"type":"boolean"},{"type":"null"}]})");
  EXPECT_TRUE(GrammarAccepts(one, "false"));
  EXPECT_FALSE(GrammarAccepts(one, "0"));
  GrammarPtr list = Schema(R"({"type":["integer","null"]})");
  EXPECT_TRUE(GrammarAccepts(list, "null"));
  EXPECT_TRUE(GrammarAccepts(list, "7"));
  EXPECT_FALSE(GrammarAccepts(list, "true"));
}

TEST(JsonSchemaTest, ArraysItemsAndCounts) {
  GrammarPtr g = Schema(R"({"type":"array","items":{"type":"integer"},"minItems":1,"maxItems":3})");
  EXPECT_FALSE(GrammarAccepts(g, "[]"));
  EXPECT_TRUE(GrammarAccepts(g, "[1]"));
  EXPECT_TRUE(GrammarAccepts(g, "[1, 2,3]"));
  EXPECT_FALSE(GrammarAccepts(g, "[1,2,3,4]"));
  EXPECT_FALSE(GrammarAccepts(g, "[\"a\"]"));
  GrammarPtr any = Schema(R"({"type":"array"})");
  EXPECT_TRUE(GrammarAccepts(any, "[]"));
  EXPECT_TRUE(GrammarAccepts(any, R"([1,"a",[true]])"));
  GrammarPtr tuple = Schema(R"({"prefixItems":[{"type":"string"},{"type":"integer"}]})");
  EXPECT_TRUE(GrammarAccepts(tuple, R"(["a",1])"));
  EXPECT_FALSE(GrammarAccepts(tuple, R"([1,"a"])"));
}

TEST(JsonSchemaTest, StringLengthsAndFormats) {
  GrammarPtr len = Schema(R"({"type":"string","minLength":2,"maxLength":3})");
  EXPECT_FALSE(GrammarAccepts(len, "\"a\""));
  EXPECT_TRUE(GrammarAccepts(len, "\"ab\""));
  EXPECT_TRUE(GrammarAccepts(len, "\"\\n\xC3\xA9\""));  // escapes and UTF-8 count as one
  EXPECT_FALSE(GrammarAccepts(len, "\"abcd\""));
  GrammarPtr date = Schema(R"({"type":"string","format":"date"})");
  EXPECT_TRUE(GrammarAccepts(date, "\"2024-02-29\""));
  EXPECT_FALSE(GrammarAccepts(date, "\"2024-13-01\""));
  GrammarPtr time = Schema(R"({"type":"string","format":"time"})");
  EXPECT_TRUE(GrammarAccepts(time, "\"23:59:01Z\""));
  EXPECT_TRUE(GrammarAccepts(time, "\"08:00:00.25+02:00\""));
  EXPECT_FALSE(GrammarAccepts(time, "\"24:00:00Z\""));
  GrammarPtr dt = Schema(R"({"type":"string","format":"date-time"})");
  EXPECT_TRUE(GrammarAccepts(dt, "\"2026-12-02T07:38:46Z\""));
  GrammarPtr uuid = Schema(R"({"type":"string","format":"uuid"})");
  EXPECT_TRUE(GrammarAccepts(uuid, "\"123e4567-e89b-12d3-a456-426614174000\""));
  EXPECT_FALSE(GrammarAccepts(uuid, "\"123e4567e89b12d3a456426614174000\""));
}

TEST(JsonSchemaTest, LocalRefsAndRecursion) {
  GrammarPtr g = Schema(R"({"$defs":{"node":{"type":"object","properties":{
      "v":{"type":"integer"},"kids":{"type":"array","items":{"$ref":"#/$defs/node"}}},
      "required":["v"],"additionalProperties":false}},"$ref":"#/$defs/node"})");
  EXPECT_TRUE(GrammarAccepts(g, R"({"v":1,"kids":[{"v":2},{"v":3,"kids":[]}]})"));
  EXPECT_FALSE(GrammarAccepts(g, R"({"v":1,"kids":[{}]})"));
  GrammarPtr defs = Schema(R"({"definitions":{"n":{"type":"null"}},"items":{"$ref":"#/definitions/n"}})");
  EXPECT_TRUE(GrammarAccepts(defs, "[null,null]"));
}

TEST(JsonSchemaTest, UnsupportedKeywordsAreNamed) {
  EXPECT_NE(SchemaError(R"({"type":"string","pattern":"^a+$"})").find("keyword 'pattern'"),
            std::string::npos);
  EXPECT_NE(SchemaError(R"({"properties":{"n":{"type":"integer","minimum":0}}})")
                .find("keyword 'minimum' at '#/properties/n'"),
            std::string::npos);
  EXPECT_NE(SchemaError(R"({"type":"array","uniqueItems":true})").find("'uniqueItems'"),
            std::string::npos);
  EXPECT_NE(SchemaError(R"({"not":{}})").find("'not'"), std::string::npos);
  EXPECT_NE(SchemaError(R"({"$ref":"https://example.com/s.json"})").find("'$ref'"),
            std::string::npos);
  EXPECT_NE(SchemaError(R"({"type":"widget"})").find("unknown type 'widget'"), std::string::npos);
  EXPECT_NE(SchemaError(R"({"allOf":[{},{}]})").find("'allOf'"), std::string::npos);
  EXPECT_NE(SchemaError(R"({"type":"array","maxItems":1000000})").find("'maxItems'"),
            std::string::npos);
  EXPECT_NE(SchemaError("false").find("admits no value"), std::string::npos);
  // Annotations are fine.
  EXPECT_NE(Schema(R"({"title":"t","description":"d","type":"string","format":"email",
                       "default":"x","examples":["y"],"$schema":"x"})"),
            nullptr);
}

TEST(JsonSchemaTest, BuilderEmbedsSchemasInALargerGrammar) {
  SchemaGrammarBuilder b;
  absl::StatusOr<std::string> args =
      b.AddSchema(json::parse(R"({"type":"object","properties":{"city":{"type":"string"}},
                                  "required":["city"]})"),
                  "get_weather args");
  ASSERT_TRUE(args.ok()) << args.status();
  GrammarPtr g = Parse(b.Build(R"("{\"name\": \"get_weather\", \"arguments\": " )" + *args +
                               R"( "}")"));
  EXPECT_TRUE(GrammarAccepts(g, R"({"name": "get_weather", "arguments": {"city":"Paris"}})"));
  EXPECT_FALSE(GrammarAccepts(g, R"({"name": "get_weather", "arguments": {}})"));
}

TEST(TokenConstraintTest, SmallVocabularyMaskAcceptAndEnd) {
  // ids: 0 "{", 1 "}", 2 "\"a\"", 3 ":", 4 "1", 5 "12", 6 "x", 7 "" (EOS), 8 "{}"
  auto vocab = VocabTrie::FromPieces({"{", "}", "\"a\"", ":", "1", "12", "x", "", "{}"}, {7});
  TokenConstraint c(Schema(R"({"properties":{"a":{"type":"integer"}}})"), vocab);
  auto allowed = [&] {
    std::vector<int> out;
    const TokenMask& m = c.Mask();
    for (int t = 0; t < m.size(); ++t) {
      if (m.Test(t)) out.push_back(t);
    }
    EXPECT_EQ(m, c.BruteForceMask());
    return out;
  };
  EXPECT_EQ(allowed(), (std::vector<int>{0, 8}));
  ASSERT_TRUE(c.Accept(0).ok());
  EXPECT_EQ(allowed(), (std::vector<int>{1, 2}));
  EXPECT_EQ(c.Accept(6).code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(c.Accept(2).ok());
  ASSERT_TRUE(c.Accept(3).ok());
  EXPECT_EQ(allowed(), (std::vector<int>{4, 5}));
  ASSERT_TRUE(c.Accept(5).ok());
  EXPECT_EQ(allowed(), (std::vector<int>{1, 4, 5}));  // "1212" is still an integer
  EXPECT_FALSE(c.CanEnd());
  ASSERT_TRUE(c.Accept(1).ok());
  EXPECT_TRUE(c.IsComplete());
  EXPECT_EQ(allowed(), (std::vector<int>{7}));  // only end of text
}

TEST(TokenConstraintTest, StrippedFirstSpace) {
  auto vocab = VocabTrie::FromPieces({" {", "{", " ", "}"}, {});
  TokenConstraint c(JsonObjectGrammar(), vocab, /*strip_first_space=*/true);
  const TokenMask& m = c.Mask();
  EXPECT_TRUE(m.Test(0));  // " {" is output as "{"
  EXPECT_TRUE(m.Test(1));
  EXPECT_TRUE(m.Test(2));  // " " is output as nothing
  EXPECT_FALSE(m.Test(3));
  ASSERT_TRUE(c.Accept(0).ok());
  EXPECT_FALSE(c.Mask().Test(0));  // later spaces are real
}

// The trie walk against the scalar reference, along random paths through
// several grammars, on real vocabularies.
void CheckMasksAgainstBruteForce(const std::string& model) {
  auto tok = TestModelTokenizer(model);
  ASSERT_TRUE(tok.ok()) << tok.status();
  auto vocab = VocabTrie::Build(**tok);
  const std::vector<GrammarPtr> grammars = {
      JsonObjectGrammar(),
      Schema(R"({"type":"object","properties":{"name":{"type":"string","maxLength":12},
                 "n":{"type":"integer"},"tags":{"type":"array","items":{"enum":["a b","ü"]}},
                 "when":{"type":"string","format":"date-time"}},
                 "required":["name","n","tags","when"]})"),
      Parse(R"(root ::= "Answer: " ( [A-Z] [a-zé]* " " )+ "\n" )"),
  };
  std::mt19937 rng(7);
  for (const GrammarPtr& g : grammars) {
    TokenConstraint c(g, vocab);
    for (int step = 0; step < 12 && !c.IsComplete(); ++step) {
      const TokenMask& m = c.Mask();
      const TokenMask brute = c.BruteForceMask();
      ASSERT_EQ(m, brute) << model << " step " << step;
      ASSERT_GT(m.Count(), 0);
      // A random allowed token, preferring longer steps forward.
      std::vector<int32_t> ids;
      for (int32_t t = 0; t < m.size(); ++t) {
        if (m.Test(t)) ids.push_back(t);
      }
      const int32_t pick = ids[rng() % ids.size()];
      ASSERT_TRUE(c.Accept(pick).ok());
    }
  }
}

TEST(TokenMaskVocabTest, Llama2VocabularyTrieEqualsBruteForce) {
  CheckMasksAgainstBruteForce("mini-shape-q4_0");
}
TEST(TokenMaskVocabTest, Llama3VocabularyTrieEqualsBruteForce) {
  CheckMasksAgainstBruteForce("llama3-nano-q4_k_m");
}
TEST(TokenMaskVocabTest, Qwen2VocabularyTrieEqualsBruteForce) {
  CheckMasksAgainstBruteForce("qwen2-nano-q4_0");
}

}  // namespace
}  // namespace shardlm::testing
