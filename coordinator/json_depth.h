// How deeply a JSON text nests, found by one cheap pass before parsing it:
// nlohmann::json builds every level of `[[[[...` (an 8 MB body of them cost
// ~250 MB before it was refused, issue 21), so a too-deep body is refused
// here first.
#ifndef SHARDLM_COORDINATOR_JSON_DEPTH_H_
#define SHARDLM_COORDINATOR_JSON_DEPTH_H_

#include <string_view>

#include "absl/status/status.h"

namespace shardlm {

// OK unless `text` opens more than `max_depth` arrays/objects at once
// (brackets inside strings do not count). Malformed text is left to the
// parser.
absl::Status CheckJsonDepth(std::string_view text, int max_depth);

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_JSON_DEPTH_H_
