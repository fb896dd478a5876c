// Per-sequence key/value cache for the layers of one stage, under a memory
// budget. Keys and values are stored as f32, f16 (llama.cpp's default) or
// q8_0 / q4_0 (llama.cpp's -ctk/-ctv q8_0: blocks of 32 values, 34 bytes,
// attended with worker/flash_attention.h); compare against a golden with the
// type it recorded.
//
// Storage is in fixed-size blocks of kBlockPositions positions (all layers'
// keys and values of those positions), reference counted so sequences can
// share a prefix: Fork gives a new sequence the full blocks of another's
// first n positions and a copy of the partial last one; a write into a block
// that is shared copies it first (copy on write). The budget counts blocks.
#ifndef SHARDLM_WORKER_KV_CACHE_H_
#define SHARDLM_WORKER_KV_CACHE_H_

#include <cstdint>
#include <string>
#include <memory>
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
  // Positions per block: a multiple of 64 so the attention's 16/64 summation
  // slots line up with block boundaries.
  static constexpr int kBlockPositions = 64;

  // `n_layers`: layers of this stage; `row` = n_embd_kv elements per position;
  // `n_ctx`: positions per sequence; `budget_bytes` 0 = unlimited (rounded
  // down to whole blocks).
  KvCache(int n_layers, int row, int n_ctx, KvType type, int64_t budget_bytes);

  KvType type() const { return type_; }
  // Bytes of one position's keys (or values) of one layer.
  size_t row_bytes() const { return row_bytes_; }
  // Key plus value bytes of one position over this stage's layers.
  int64_t bytes_per_token() const {
    return int64_t{2} * n_layers_ * static_cast<int64_t>(row_bytes_);
  }
  int64_t block_bytes() const;

  // Checks, without changing anything, that `seq` can take positions
  // [start, start + count): start at most its length, within n_ctx, and the
  // new blocks (fresh ones and copies of shared ones written into) within
  // the budget given the other reservations of this batch (`extra_blocks`
  // accumulates them).
  absl::Status CheckAppend(SeqId seq, int start, int count, int64_t* extra_blocks) const;
  // Rewinds `seq` to `start` positions and makes positions [start, start +
  // count) writable (its own blocks). Call only after CheckAppend succeeded
  // for the whole batch.
  void Prepare(SeqId seq, int start, int count);

  // Key / value row of `seq` at `layer` (stage-local) and position `pos`
  // (< its length after Prepare). Valid until the next Prepare, Fork or
  // Release.
  uint8_t* key_row(SeqId seq, int layer, int pos);
  uint8_t* value_row(SeqId seq, int layer, int pos);
  // Sets `rows` to the addresses of the first n_pos key (or value) rows of
  // `seq` at `layer`, in their blocks (attention reads them in place; no
  // row is copied). Valid as key_row's.
  void RowPointers(SeqId seq, int layer, bool values, int n_pos,
                   std::vector<const void*>* rows) const;
  // Number of positions cached for `seq` (0 if unknown).
  int length(SeqId seq) const;

  // Makes `dst` a sequence holding the first `n` positions of `src`
  // (sharing its full blocks). `cache_entry` marks dst as held by the
  // coordinator's prefix cache, not by a running request (for the stats).
  // INVALID_ARGUMENT: unknown src, n outside [1, length(src)], dst exists;
  // RESOURCE_EXHAUSTED: no block for the partial copy.
  absl::Status Fork(SeqId dst, SeqId src, int n, bool cache_entry);

  void Release(SeqId seq);
  KvStats stats() const;

 private:
  struct Block {
    std::unique_ptr<uint8_t[]> data;  // [n_layers][keys, values][kBlockPositions][row_bytes]
    int refs = 0;
  };
  struct Sequence {
    int length = 0;
    bool cache_entry = false;
    std::vector<int> blocks;  // ids into blocks_, position p in blocks[p / kBlockPositions]
  };
  static int BlocksFor(int positions) { return (positions + kBlockPositions - 1) / kBlockPositions; }
  int64_t max_blocks() const;
  uint8_t* RowIn(int block, int layer, bool values, int offset) const;
  int Allocate();  // a fresh block with one reference
  void Unref(int block);

  int n_layers_, row_, n_ctx_;
  KvType type_;
  size_t row_bytes_;
  int64_t budget_;
  std::vector<Block> blocks_;
  std::vector<int> free_ids_;
  int64_t live_blocks_ = 0;
  absl::flat_hash_map<SeqId, Sequence> seqs_;
};

}  // namespace shardlm

#endif  // SHARDLM_WORKER_KV_CACHE_H_
