// What a request asked its output to look like, as the APIs carry it
// (OpenAI response_format, the gRPC SamplingParams fields), and its
// compilation into the Grammar constrained sampling uses.
#ifndef SHARDLM_COORDINATOR_GRAMMAR_OUTPUT_FORMAT_H_
#define SHARDLM_COORDINATOR_GRAMMAR_OUTPUT_FORMAT_H_

#include <string>

#include "absl/status/statusor.h"
#include "coordinator/grammar/grammar.h"

namespace shardlm {

struct OutputFormat {
  enum class Kind { kText, kJsonObject, kJsonSchema, kGrammar };
  Kind kind = Kind::kText;
  std::string source;  // kJsonSchema: the schema as JSON text; kGrammar: GBNF
  std::string field;   // the request's field that carried it, for errors
  std::string error;   // set by a front end whose request asked for two formats at once
};

// nullptr for kText. INVALID_ARGUMENT "FIELD: ..." naming the schema keyword
// (with its JSON pointer) or the grammar's line and column.
absl::StatusOr<GrammarPtr> CompileOutputFormat(const OutputFormat& format);

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_GRAMMAR_OUTPUT_FORMAT_H_
