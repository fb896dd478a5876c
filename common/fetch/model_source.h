// `--model` as a local path or a URL. For a URL (http://, https://, or
// hf://OWNER/REPO/FILE.gguf[@REVISION]) the GGUF header comes first, by
// Range requests; then only the bytes this process reads (ModelPart) are
// fetched into a local cache file laid out like the remote one, so the rest
// of shardlm maps a local path as always. A second start finds them there.
//
// The one call at each place a binary reads --model:
//   ASSIGN_OR_RETURN(path, ResolveModelPath(o.model, ModelPart::Layers(a, b), source));
#ifndef SHARDLM_COMMON_FETCH_MODEL_SOURCE_H_
#define SHARDLM_COMMON_FETCH_MODEL_SOURCE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/base/cli_args.h"
#include "common/fetch/byte_range.h"
#include "common/fetch/fetch_stats.h"

namespace shardlm {

class GgufFile;
struct ModelConfig;

// Which bytes of the model file a process reads.
struct ModelPart {
  enum Kind { kHeader, kLayers, kAll };
  Kind kind = kAll;
  int first = 0, last = -1;  // kLayers: [first, last), last -1 = through the last layer
  static ModelPart Header() { return {kHeader}; }
  static ModelPart All() { return {kAll}; }
  static ModelPart Layers(int first, int last) { return {kLayers, first, last}; }
};

struct ModelSourceOptions {
  std::string cache_dir;    // empty: DefaultModelCacheDir()
  std::string token_file;   // file holding a Bearer token (private repositories)
  bool allow_full_download = false;  // servers without Range support
  int parallel = 4;         // range requests in flight
  std::string client = "shardlm";  // the User-Agent's comment: who fetches
  ModelFetchStats* stats = nullptr;  // optional: live figures for /metrics
};

// --model-cache-dir, --model-token-file, --model-allow-full-download,
// --model-fetch-parallel.
void AddModelSourceFlags(CliArgs* args, ModelSourceOptions* o);
// The same flags as arguments, for a launcher passing them on to workers.
std::vector<std::string> ModelSourceArgs(const ModelSourceOptions& o);

bool IsModelUrl(const std::string& model);
// hf://OWNER/REPO/PATH.gguf[@REVISION] -> https://huggingface.co/OWNER/REPO/
// resolve/REVISION/PATH.gguf (REVISION default main); http(s) URLs as they
// are. INVALID_ARGUMENT for anything else.
absl::StatusOr<std::string> ModelUrlToHttp(const std::string& model);

// The absolute byte ranges `part` of this model reads: its tensors (a
// stage's layers, plus the embedding, output norm and head where it holds
// them), joined across alignment padding. Header: none.
absl::StatusOr<std::vector<ByteRange>> ModelPartRanges(const GgufFile& file,
                                                       const ModelConfig& config,
                                                       const ModelPart& part);

// A local path: `model` itself, or for a URL the cache file once `part`'s
// bytes are complete in it. Errors name the URL and say what to do.
absl::StatusOr<std::string> ResolveModelPath(const std::string& model, const ModelPart& part,
                                             const ModelSourceOptions& options);

}  // namespace shardlm

#endif  // SHARDLM_COMMON_FETCH_MODEL_SOURCE_H_
