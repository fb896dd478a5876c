// The local copy of one remote model file: a sparse file of the remote size
// (ftruncate, then pwrite each range at its own offset, so GgufFile::Open
// maps it as if it were the whole file) and a manifest of the byte ranges
// that are complete. Only ranges whose every byte arrived and was checked
// are written to the manifest, after the data is on disk: a crash or a drop
// leaves at worst bytes that are fetched again, never holes taken for data.
//
// Layout: CACHE_DIR/KEY/FILE.gguf and CACHE_DIR/KEY/ranges, KEY a hash of
// URL, size and ETag (a new revision gets a new directory). Several
// processes (the workers of one `shardlm serve`) may share an entry: writes
// go to disjoint or identical bytes, manifest lines are appended under flock.
#ifndef SHARDLM_COMMON_FETCH_MODEL_CACHE_H_
#define SHARDLM_COMMON_FETCH_MODEL_CACHE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/fetch/byte_range.h"

namespace shardlm {

class ModelCacheEntry {
 public:
  // Creates (or reopens) the entry of `url` with this size and ETag.
  static absl::StatusOr<std::unique_ptr<ModelCacheEntry>> Open(const std::string& cache_dir,
                                                               const std::string& url,
                                                               uint64_t size,
                                                               const std::string& etag);
  ~ModelCacheEntry();
  ModelCacheEntry(const ModelCacheEntry&) = delete;
  ModelCacheEntry& operator=(const ModelCacheEntry&) = delete;

  const std::string& path() const { return path_; }  // the sparse model file
  uint64_t size() const { return size_; }

  // Complete ranges as the manifest lists them now (other processes
  // included), merged. Malformed or out-of-bounds lines are ignored.
  std::vector<ByteRange> Complete() const;
  // The parts of `wanted` not complete yet.
  std::vector<ByteRange> Missing(const std::vector<ByteRange>& wanted) const;

  absl::Status Write(uint64_t offset, const char* data, size_t n);
  absl::Status Read(uint64_t offset, size_t n, std::string* out) const;
  // Flushes the data and then records `range` as complete.
  absl::Status MarkComplete(const ByteRange& range);

 private:
  ModelCacheEntry() = default;
  std::string dir_, path_, manifest_;
  uint64_t size_ = 0;
  int fd_ = -1;
};

// $XDG_CACHE_HOME/shardlm/models, else $HOME/.cache/shardlm/models; empty
// when neither variable is set.
std::string DefaultModelCacheDir();

}  // namespace shardlm

#endif  // SHARDLM_COMMON_FETCH_MODEL_CACHE_H_
