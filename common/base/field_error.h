// The request field an error is about, carried as data: an absl::Status
// payload set where the error is made ("temperature", "messages"), so an
// API can report it (OpenAI's `param`) without parsing the message text.
// The message still starts with the field for people and gRPC clients.
#ifndef SHARDLM_COMMON_BASE_FIELD_ERROR_H_
#define SHARDLM_COMMON_BASE_FIELD_ERROR_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace shardlm {

// INVALID_ARGUMENT "<field>: <message>" naming `field`.
absl::Status InvalidFieldError(absl::string_view field, absl::string_view message);

// `status` naming `field`, unless it is OK or already names one (the
// innermost, most precise field wins).
absl::Status WithField(absl::Status status, absl::string_view field);

// The field `status` names; empty when none.
std::string FieldOf(const absl::Status& status);

}  // namespace shardlm

#endif  // SHARDLM_COMMON_BASE_FIELD_ERROR_H_
