// A JSON Schema validator for the tests of structured output, written from
// the specification (2020-12) for the keywords the converter supports:
// type, properties, required, additionalProperties, enum, const, items,
// prefixItems, minItems, maxItems, minLength, maxLength (code points),
// anyOf, oneOf (exactly one), allOf, $ref (local), format date, time,
// date-time and uuid. Independent of the grammar code on purpose: it checks
// what the grammar produced against the schema, not against itself.
#ifndef SHARDLM_TESTS_GRAMMAR_JSON_SCHEMA_VALIDATOR_H_
#define SHARDLM_TESTS_GRAMMAR_JSON_SCHEMA_VALIDATOR_H_

#include <nlohmann/json.hpp>
#include <string>

namespace shardlm::testing {

// Empty when `value` fits `schema`; else where and why it does not.
std::string ValidateJsonSchema(const nlohmann::json& schema, const nlohmann::json& value);

}  // namespace shardlm::testing

#endif  // SHARDLM_TESTS_GRAMMAR_JSON_SCHEMA_VALIDATOR_H_
