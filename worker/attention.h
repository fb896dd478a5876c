// Causal grouped-query attention of one token over its sequence's cached
// keys and values.
#ifndef SHARDLM_WORKER_ATTENTION_H_
#define SHARDLM_WORKER_ATTENTION_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "worker/kv_cache.h"

namespace shardlm {

struct AttentionShape {
  int n_head = 0;
  int n_head_kv = 0;  // query head h reads key/value head h / (n_head / n_head_kv)
  int head_dim = 0;
};

// The cached rows of one sequence and layer, keys or values: row(j) is
// position j's row of n_head_kv * head_dim values in the cache type, wherever
// it lies (KvCache::RowPointers: in the cache's blocks). The attention reads
// rows only through this, in place.
struct KvRows {
  const void* const* rows = nullptr;  // one address per position
  const uint8_t* row(int j) const { return static_cast<const uint8_t*>(rows[j]); }
};

// out[h * head_dim + i] = sum_{j < n_pos} softmax_j(q_h . k_j / sqrt(head_dim)) v_j[i]
// for query head `h` only; `keys`/`values` give n_pos rows of
// n_head_kv * head_dim elements of type `kv_type` (f32 or f16).
//
// Computed as llama.cpp computes it, rounding for rounding (attention.cc):
// with an f16 cache the query and the attention weights are rounded to f16
// before their products, as its mul_mat does with f16 operands; `batched`
// (the forward pass holds more than one token) selects the summation order
// its batched matmul kernels use.
void AttendHead(const float* q, const KvRows& keys, const KvRows& values, KvType kv_type, int n_pos,
                const AttentionShape& shape, int h, float* out, std::vector<float>* scratch,
                bool batched = false);

// Stores one position's key and value rows (n_head_kv * head_dim floats each)
// into the cache rows `k_dst` / `v_dst` of type `kv_type` (q8_0, q4_0: n a
// multiple of 32; attended by flash_attention.h, not AttendHead).
void StoreKv(const float* k, const float* v, int n, KvType kv_type, void* k_dst, void* v_dst);

}  // namespace shardlm

#endif  // SHARDLM_WORKER_ATTENTION_H_
