// Per-sequence key/value cache for the layers of one stage, under a memory
// budget. Keys and values are stored as f32 or f16 (llama.cpp's default is
// f16; compare against a golden with the type it recorded).
#ifndef SHARDLM_WORKER_KV_CACHE_H_
#define SHARDLM_WORKER_KV_CACHE_H_

#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "common/stage/stage.h"

namespace shardlm {

enum class KvType { kF32, kF16 };

class KvCache {
 public:
  // `n_layers`: layers of this stage; `row` = n_embd_kv floats per position;
  // `n_ctx`: positions per sequence; `budget_bytes` 0 = unlimited.
  KvCache(int n_layers, int row, int n_ctx, KvType type, int64_t budget_bytes);

  KvType type() const { return type_; }
  size_t elem_bytes() const { return type_ == KvType::kF16 ? 2 : 4; }

  // Checks, without changing anything, that `seq` can take positions
  // [start, start + count): start at most its length, within n_ctx, and the
  // growth within the budget given the other reservations of this batch
  // (`extra_bytes` accumulates them).
  absl::Status CheckAppend(SeqId seq, int start, int count, int64_t* extra_bytes) const;
  // Rewinds `seq` to `start` positions and grows it to hold start + count.
  // Call only after CheckAppend succeeded for the whole batch.
  void Prepare(SeqId seq, int start, int count);

  // Row of keys / values of `seq` at `layer` (stage-local index): position p
  // starts at element p * row. Valid until the next Prepare of this sequence.
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
    std::vector<std::vector<uint8_t>> k, v;  // [n_layers][capacity * row * elem]
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
