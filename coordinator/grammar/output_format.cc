#include "coordinator/grammar/output_format.h"

#include "absl/strings/str_cat.h"
#include "common/base/field_error.h"
#include "coordinator/grammar/gbnf_parser.h"
#include "coordinator/grammar/json_schema_to_grammar.h"
#include "coordinator/json_depth.h"
#include "nlohmann/json.hpp"

namespace shardlm {

// Schemas nest objects in objects; deeper than this is no real schema.
static constexpr int kMaxSchemaDepth = 64;

absl::StatusOr<GrammarPtr> CompileOutputFormat(const OutputFormat& format) {
  if (!format.error.empty()) return InvalidFieldError(format.field, format.error);
  switch (format.kind) {
    case OutputFormat::Kind::kText:
      return GrammarPtr();
    case OutputFormat::Kind::kJsonObject:
      return JsonObjectGrammar();
    case OutputFormat::Kind::kGrammar: {
      absl::StatusOr<GrammarPtr> g = ParseGbnf(format.source);
      if (!g.ok()) return InvalidFieldError(format.field, g.status().message());
      return g;
    }
    case OutputFormat::Kind::kJsonSchema: {
      if (format.source.size() > kMaxGrammarBytes) {
        return InvalidFieldError(format.field, absl::StrCat(format.source.size(),
                                                            " bytes exceed the limit of ",
                                                            kMaxGrammarBytes));
      }
      if (absl::Status st = CheckJsonDepth(format.source, kMaxSchemaDepth); !st.ok()) {
        return InvalidFieldError(format.field, st.message());
      }
      const nlohmann::ordered_json schema =
          nlohmann::ordered_json::parse(format.source, nullptr, /*allow_exceptions=*/false);
      if (schema.is_discarded()) return InvalidFieldError(format.field, "not valid JSON");
      absl::StatusOr<GrammarPtr> g = CompileJsonSchema(schema);
      if (!g.ok()) return InvalidFieldError(format.field, g.status().message());
      return g;
    }
  }
  return absl::InvalidArgumentError("unknown output format");
}

}  // namespace shardlm
