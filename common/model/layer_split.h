// Contiguous layer ranges for pipeline stages that do about equal work.
//
// A stage's time per token is dominated by its matrix products, which stream
// (decode) and multiply by (batches) every byte of its weights, so a layer
// costs the bytes of its tensors, and the last stage also pays for the output
// head (output.weight, or token_embd.weight when the head is tied). On a
// TinyLlama-shaped Q4_0 model the Q6_K head weighs about two layers: an even
// 11 / 11 split leaves the last stage the slow one, 12 / 10 balances it.
#ifndef SHARDLM_COMMON_MODEL_LAYER_SPLIT_H_
#define SHARDLM_COMMON_MODEL_LAYER_SPLIT_H_

#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/model/gguf.h"

namespace shardlm {

using LayerRange = std::pair<int, int>;  // [first, last)

// Splits layers 0..layer_cost.size() into n_stages non-empty contiguous
// ranges whose largest cost (the last one's including head_cost) is as small
// as possible; among such splits, the one with the most even costs (least sum
// of squares). Requires 1 <= n_stages <= layer_cost.size().
std::vector<LayerRange> SplitByCost(std::span<const uint64_t> layer_cost, uint64_t head_cost,
                                    int n_stages);

// SplitByCost with the tensor bytes of `file`'s n_layer blocks ("blk.N.*")
// and its output head. INVALID_ARGUMENT when n_stages is not in
// [1, n_layer].
absl::StatusOr<std::vector<LayerRange>> BalancedLayerRanges(const GgufFile& file, int n_layer,
                                                            int n_stages);

// "0:8,8:16,16:22" (a --split flag) -> ranges, in order. INVALID_ARGUMENT
// naming `flag` and the part that is not FIRST:LAST. Coverage is checked
// by whoever builds the pipeline.
absl::StatusOr<std::vector<LayerRange>> ParseLayerRanges(absl::string_view text,
                                                         absl::string_view flag = "--split");

}  // namespace shardlm

#endif  // SHARDLM_COMMON_MODEL_LAYER_SPLIT_H_
