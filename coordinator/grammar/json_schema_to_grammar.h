// JSON Schema -> GBNF, for structured output. The output is compact JSON
// (at most one space after ':' and ',', no newlines), so a model cannot loop
// on whitespace and every answer is parseable with any JSON parser.
//
// Supported keywords (the subset applications use; anything else that
// changes which documents are valid is refused with INVALID_ARGUMENT naming
// the keyword and its JSON pointer, never silently ignored):
//   type (a name or a list of names), properties, required,
//   additionalProperties (false, true or a schema), enum, const, items,
//   prefixItems, minItems, maxItems, anyOf, oneOf (as anyOf), allOf of one
//   schema, $ref to "#", "#/$defs/NAME" and "#/definitions/NAME",
//   minLength, maxLength, pattern-free strings with format date, time,
//   date-time and uuid, integer/number without bounds. Annotations (title,
//   description, default, examples, $schema, $id, $comment, strict,
//   deprecated, readOnly, writeOnly) are ignored.
// Properties are generated in llama.cpp's order: the required ones first, in
// the order "properties" lists them, then the optional ones (each may be left
// out) in that order.
#ifndef SHARDLM_COORDINATOR_GRAMMAR_JSON_SCHEMA_TO_GRAMMAR_H_
#define SHARDLM_COORDINATOR_GRAMMAR_JSON_SCHEMA_TO_GRAMMAR_H_

#include <map>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "coordinator/grammar/grammar.h"
#include "nlohmann/json.hpp"

namespace shardlm {

// Builds one GBNF text out of several schemas, for callers that embed JSON
// values in a larger grammar (tool calls: `{"name": "f", "arguments": ARGS}`).
//
//   SchemaGrammarBuilder b;
//   absl::StatusOr<std::string> args = b.AddSchema(parameters, "get-weather-args");
//   std::string gbnf = b.Build(R"("{\"name\": \"get_weather\", \"arguments\": " )" + *args + R"( "}")");
//   absl::StatusOr<GrammarPtr> g = ParseGbnf(gbnf);
class SchemaGrammarBuilder {
 public:
  // Adds the rules for values that fit `schema`; returns the name of the
  // rule that matches one such value. `name` seeds the rule names ([a-z0-9-]
  // are kept, other characters become '-'). INVALID_ARGUMENT naming the
  // keyword the converter cannot honour.
  absl::StatusOr<std::string> AddSchema(const nlohmann::ordered_json& schema, std::string_view name);
  // The rule name of any JSON value (json_object mode uses "json-object").
  std::string AnyValue();
  std::string AnyObject();
  // The whole grammar: `root ::= root_body` plus every rule added so far.
  std::string Build(std::string_view root_body) const;

 private:
  friend class SchemaConverter;
  std::map<std::string, std::string> rules_;  // name -> body
};

// The GBNF of values fitting `schema` (root rule "root").
absl::StatusOr<std::string> JsonSchemaToGbnf(const nlohmann::ordered_json& schema);
// JsonSchemaToGbnf + ParseGbnf.
absl::StatusOr<GrammarPtr> CompileJsonSchema(const nlohmann::ordered_json& schema);
// Any JSON object (OpenAI's response_format {"type": "json_object"}).
GrammarPtr JsonObjectGrammar();

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_GRAMMAR_JSON_SCHEMA_TO_GRAMMAR_H_
