// Per-sequence key/value cache for the layers of one stage, under a memory
// budget. Keys and values are stored as f32, f16 (llama.cpp's default) or
// q8_0 (llama.cpp's -ctk/-ctv q8_0: blocks of 32 values, 34 bytes, attended
// with worker/flash_attention.h); compare against a golden with the type it
// recorded.
#ifndef SHARDLM_WORKER_KV_CACHE_H_
#define SHARDLM_WORKER_KV_CACHE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "common/model/ggml_type.h"
#include "common/stage/stage.h"

namespace shardlm {

enum class KvType { kF32, kF16, kQ8_0, kQ4_0 };

// "f32", "f16", "q8_0", "q4_0" (the --kv-type flag's values and llama.cpp's names).
const char* KvTypeName(KvType type);
absl::StatusOr<KvType> ParseKvType(const std::string& name);
// Help text of the --kv-type flags.
inline constexpr char kKvTypeFlagHelp[] =
    "KV cache element type: f16 (llama.cpp's default), f32, q8_0 (0.53 of f16's bytes) or q4_0 "
    "(0.28); the quantized ones attend in llama.cpp's flash-attention order (-fa -ctk T -ctv T) "
    "and need a head size that is a multiple of 32";
// q8_0 and q4_0: attended by worker/flash_attention.h, not AttendHead.
inline bool KvTypeIsQuantized(KvType type) { return type == KvType::kQ8_0 || type == KvType::kQ4_0; }
// The GGUF tensor type of a cache row (f32, f16, q8_0, q4_0).
GgmlType KvGgmlType(KvType type);
// Ok if a cache of `type` can hold heads of `head_dim` values (q8_0 / q4_0
// blocks of 32 must not straddle heads, as llama.cpp requires); else
// kInvalidArgument.
absl::Status CheckKvTypeFits(KvType type, int head_dim);
// Bytes of one cached row of n values (n a multiple of 32 when quantized).
size_t KvRowBytes(KvType type, int64_t n);

class KvCache {
 public:
  // `n_layers`: layers of this stage; `row` = n_embd_kv floats per position;
  // `n_ctx`: positions per sequence; `budget_bytes` 0 = unlimited.
  KvCache(int n_layers, int row, int n_ctx, KvType type, int64_t budget_bytes);

  KvType type() const { return type_; }
  // Bytes of one position's key row (the same for its value row).
  size_t row_bytes() const { return KvRowBytes(type_, row_); }
  // Key plus value bytes of one position over this stage's layers.
  int64_t bytes_per_token() const {
    return int64_t{2} * n_layers_ * static_cast<int64_t>(row_bytes());
  }

  // Checks, without changing anything, that `seq` can take positions
  // [start, start + count): start at most its length, within n_ctx, and the
  // growth within the budget given the other reservations of this batch
  // (`extra_bytes` accumulates them).
  absl::Status CheckAppend(SeqId seq, int start, int count, int64_t* extra_bytes) const;
  // Rewinds `seq` to `start` positions and grows it to hold start + count.
  // Call only after CheckAppend succeeded for the whole batch.
  void Prepare(SeqId seq, int start, int count);

  // Row of keys / values of `seq` at `layer` (stage-local index): position p
  // starts at byte p * row_bytes(). Valid until the next Prepare of this
  // sequence.
  void* keys(SeqId seq, int layer);
  void* values(SeqId seq, int layer);
  // Number of positions cached for `seq` (0 if unknown).
  int length(SeqId seq) const;

  void Release(SeqId seq);
  KvStats stats() const;

 private:
  struct Sequence {
    int length = 0;
    int capacity = 0;
    std::vector<std::vector<uint8_t>> k, v;  // [n_layers][capacity * row_bytes()]
  };
  int64_t BytesFor(int capacity) const;
  int GrownCapacity(int current, int needed) const;

  int n_layers_, row_, n_ctx_;
  KvType type_;
  int64_t budget_;
  int64_t used_ = 0;
  absl::flat_hash_map<SeqId, Sequence> seqs_;
};

}  // namespace shardlm

#endif  // SHARDLM_WORKER_KV_CACHE_H_
