// How many leading bytes of a GGUF file hold its header (metadata and
// tensor table, up to the aligned start of the data section), found from a
// prefix of the file. Lets a worker fetch just the header of a remote model
// before it knows where its tensors are. Only lengths are read here; the
// header is validated by GgufFile::Open once it is complete.
#ifndef SHARDLM_COMMON_FETCH_GGUF_HEADER_EXTENT_H_
#define SHARDLM_COMMON_FETCH_GGUF_HEADER_EXTENT_H_

#include <cstdint>
#include <string_view>

#include "absl/status/statusor.h"

namespace shardlm {

struct GgufHeaderExtent {
  bool complete = false;
  // complete: the absolute offset of the data section (header + padding).
  // Otherwise: an estimate of the prefix length that will hold the header
  // (always more than the prefix), from the sizes seen so far.
  uint64_t bytes = 0;
};

// `prefix`: the first bytes of a file of `file_size` bytes. INVALID_ARGUMENT
// when the bytes are not a GGUF header (bad magic, a length past the file).
absl::StatusOr<GgufHeaderExtent> ScanGgufHeader(std::string_view prefix, uint64_t file_size);

}  // namespace shardlm

#endif  // SHARDLM_COMMON_FETCH_GGUF_HEADER_EXTENT_H_
