// The model built into the `shardlm` binary (stories260K, common/model/embedded/README.md):
// the default when no --model is given. Its bytes are materialized once into a
// cache file, so everything downstream (the mmap in GgufFile::Open, workers
// started with --model PATH) sees an ordinary file.
#ifndef SHARDLM_COMMON_MODEL_EMBEDDED_EMBEDDED_MODEL_H_
#define SHARDLM_COMMON_MODEL_EMBEDDED_EMBEDDED_MODEL_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace shardlm {

// What --help says the default is.
inline constexpr char kEmbeddedModelDescription[] =
    "the embedded stories260K (1.2 MB, MIT; written once to $SHARDLM_CACHE_DIR, else "
    "$XDG_CACHE_HOME/shardlm or ~/.cache/shardlm)";

// The GGUF bytes linked into the binary.
absl::string_view EmbeddedModelBytes();

// The cache folder: $SHARDLM_CACHE_DIR, else $XDG_CACHE_HOME/shardlm, else
// $HOME/.cache/shardlm, else a folder of this user's under the temp directory.
std::string DefaultCacheDir();

// Writes the embedded model into cache_dir (created if missing) as
// stories260K-<sha256 prefix>.gguf unless a file there already holds exactly
// these bytes, and returns its path. The file is written beside and renamed
// into place, so concurrent callers never see half a file.
absl::StatusOr<std::string> MaterializeEmbeddedModel(const std::string& cache_dir);

// The model to use when no --model is given: MaterializeEmbeddedModel(DefaultCacheDir()).
absl::StatusOr<std::string> DefaultModelPath();

}  // namespace shardlm

#endif  // SHARDLM_COMMON_MODEL_EMBEDDED_EMBEDDED_MODEL_H_
