#include "common/base/field_error.h"

#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/types/optional.h"

namespace shardlm {
namespace {

// The payload's type URL (absl::Status keys payloads by URL).
constexpr absl::string_view kFieldUrl = "type.shardlm.dev/shardlm.FieldError";

}  // namespace

absl::Status InvalidFieldError(absl::string_view field, absl::string_view message) {
  return WithField(absl::InvalidArgumentError(absl::StrCat(field, ": ", message)), field);
}

absl::Status WithField(absl::Status status, absl::string_view field) {
  if (status.ok() || field.empty() || status.GetPayload(kFieldUrl).has_value()) return status;
  status.SetPayload(kFieldUrl, absl::Cord(field));
  return status;
}

std::string FieldOf(const absl::Status& status) {
  absl::optional<absl::Cord> field = status.GetPayload(kFieldUrl);
  return field.has_value() ? std::string(*field) : std::string();
}

}  // namespace shardlm
