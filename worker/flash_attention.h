// Attention of one query head over a quantized (q8_0 or q4_0) KV cache, in
// the order of llama.cpp's CPU flash attention
// (ggml_compute_forward_flash_attn_ext_f16 with a quantized K and V:
// llama.cpp -fa -ctk q8_0 -ctv q8_0), which is the only way llama.cpp
// attends over a quantized V. See flash_attention.cc.
#ifndef SHARDLM_WORKER_FLASH_ATTENTION_H_
#define SHARDLM_WORKER_FLASH_ATTENTION_H_

#include <cstddef>
#include <cstdint>
#include <vector>

#include "common/kernels/tensor_format.h"
#include "worker/attention.h"
#include "worker/kv_cache.h"

namespace shardlm {

// out[h * head_dim + i] = sum_{j < n_pos} softmax_j(q_h . k_j / sqrt(head_dim)) v_j[i]
// for query head `h`, over rows of a `kv_type` cache (KvTypeIsQuantized;
// head_dim a multiple of 32), rounding for rounding as llama.cpp computes
// it: q_h quantized to K's vec_dot type (q8_0), each score an integer dot
// product, an online softmax (running max and sum, expf), V rows
// dequantized and accumulated with one FMA per value, one final scale by
// 1 / sum. `set` chooses the kernels (kReference: the plain scalar
// definition; every set gives the same bits).
void FlashAttendHead(const float* q, const KvRows& keys, const KvRows& values, KvType kv_type,
                     int n_pos, const AttentionShape& shape, int h, float* out,
                     std::vector<float>* scratch, KernelSet set = KernelSet::kBest);

}  // namespace shardlm

#endif  // SHARDLM_WORKER_FLASH_ATTENTION_H_
