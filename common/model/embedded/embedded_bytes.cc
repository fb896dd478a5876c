// The bytes of stories260K.gguf, embedded by SHARDLM_EMBED_FILE
// (common/base/embedded_file.h); CMake's shardlm_embed_file passes the
// file's absolute path and sha256.
#include <cstddef>

#include "common/base/embedded_file.h"

SHARDLM_EMBED_FILE(shardlm_embedded_model, SHARDLM_EMBEDDED_MODEL_FILE);

namespace shardlm {

// The sha256 the bytes were built from (hex), for the cache file's name.
extern const char kEmbeddedModelSha256[];
const char kEmbeddedModelSha256[] = SHARDLM_EMBEDDED_MODEL_SHA256;

const char* EmbeddedModelBegin() { return shardlm_embedded_model_begin; }
size_t EmbeddedModelSize() { return SHARDLM_EMBEDDED_BYTES(shardlm_embedded_model).size(); }

}  // namespace shardlm
