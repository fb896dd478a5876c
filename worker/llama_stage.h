// LlamaStage: the in-process Stage. It runs the Llama block over its layer
// range for a batch of tokens from any number of sequences, keeping each
// sequence's keys and values in its KvCache.
#ifndef SHARDLM_WORKER_LLAMA_STAGE_H_
#define SHARDLM_WORKER_LLAMA_STAGE_H_

#include <tbb/enumerable_thread_specific.h>
#include <tbb/task_arena.h>

#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "common/model/gguf.h"
#include "common/base/metrics.h"
#include "common/model/model_config.h"
#include "worker/kv_cache.h"
#include "worker/llama_weights.h"
#include "common/stage/batch_validation.h"
#include "common/stage/stage.h"

namespace shardlm {

struct StageOptions {
  int first_layer = 0;
  int last_layer = -1;          // -1: through the last layer of the model
  int n_threads = 0;            // 0: all cores oneTBB sees
  KvType kv_type = KvType::kF16;
  int64_t kv_budget_bytes = 0;  // 0: unlimited
  int n_ctx = 0;                // 0: the model's training context
  // Copy q4_0 / q4_K matrices into their interleaved layout at load (the
  // fast path; same numbers to the bit). false: compute from the mapping.
  bool interleave_weights = true;
};

class LlamaStage : public Stage {
 public:
  // Opens `model_path` and binds this stage's tensors.
  static absl::StatusOr<std::unique_ptr<LlamaStage>> Open(const std::string& model_path,
                                                          const StageOptions& options);
  // Shares an already opened file (several stages of one process).
  static absl::StatusOr<std::unique_ptr<LlamaStage>> Create(std::shared_ptr<const GgufFile> file,
                                                            const StageOptions& options);

  const ShardInfo& info() const override { return info_; }
  absl::Status Forward(const ForwardRequest& request, ForwardResult* result) override;
  using Stage::Release;  // the batched overload
  absl::Status Release(SeqId seq) override;
  absl::Status Fork(SeqId dst, SeqId src, int n, bool cache_entry) override;
  KvStats kv_stats() const override;

  const ModelConfig& config() const { return config_; }
  // KV use, forward time and tokens processed, as Prometheus text.
  void RenderMetrics(MetricsPage* page) const;
  int64_t weight_bytes() const { return weights_.bytes(); }

 private:
  // A run of consecutive batch entries of one sequence.
  using Run = SequenceRun;

  LlamaStage(std::shared_ptr<const GgufFile> file, ModelConfig config, StageWeights weights,
             const StageOptions& options);
  absl::Status Validate(const ForwardRequest& request, std::vector<Run>* runs) const;
  void Embed(const ForwardRequest& request);
  // x_ through one layer: Attention, then FeedForward (each adds to x_).
  void RunLayer(int local_layer, const ForwardRequest& request, const std::vector<Run>& runs);
  void Attention(int local_layer, const LayerWeights& w, const ForwardRequest& request,
                 const std::vector<Run>& runs, const std::vector<int>& groups);
  void CacheKeysValues(int local_layer, const std::vector<Run>& runs);
  void AttendHeads(int local_layer, const std::vector<Run>& runs, int n_tokens);
  void FeedForward(const LayerWeights& w, int n_tokens, const std::vector<int>& groups);
  void ComputeLogits(const ForwardRequest& request, const std::vector<Run>& runs,
                     ForwardResult* result);
  // Under mu_, after kv_ changed: the snapshot kv_stats() answers from.
  void PublishKvStats();

  std::shared_ptr<const GgufFile> file_;
  ModelConfig config_;
  StageWeights weights_;
  ShardInfo info_;
  tbb::task_arena arena_;

  // One Forward at a time: the caches and the scratch below are per stage.
  mutable std::mutex mu_;
  KvCache kv_;
  // kv_stats() answers from this snapshot so health probes never wait for
  // a long prefill to finish.
  mutable std::mutex stats_mu_;
  KvStats stats_;
  Histogram forward_seconds_{Histogram::LatencySeconds()};
  Counter tokens_;
  // Activations of the current batch of n tokens, one row per token, reused
  // across calls so the decode loop allocates nothing once warm.
  std::vector<float> x_;     // [n, n_embd] the residual stream
  std::vector<float> xn_;    // [n, n_embd] rms(x_) (ComputeLogits: [logit rows, n_embd])
  std::vector<float> q_;     // [n, n_head * head_dim] RoPE(Wq xn_)
  std::vector<float> k_;     // [n, n_head_kv * head_dim] RoPE(Wk xn_), then cached
  std::vector<float> v_;     // [n, n_head_kv * head_dim] Wv xn_, then cached
  std::vector<float> attn_;  // [n, n_head * head_dim] each query head's mix of v
  std::vector<float> tmp_;   // [n, n_embd] Wo attn_ or Wdown gate_, before x_ += tmp_
  std::vector<float> gate_;  // [n, n_ff] Wgate xn_, then silu(gate_) * up_ in place
  std::vector<float> up_;    // [n, n_ff] Wup xn_
  // Per Forward, from its runs: each run's token count (the MatMul groups),
  // and each token's run (pointing into Forward's runs) and index in it.
  std::vector<int> groups_;
  std::vector<std::pair<const Run*, int>> token_run_;
  MatMulScratch mm_;
  // Per run of the batch: the addresses of its key and value rows at the
  // current layer (KvCache::RowPointers), read in place by the attention.
  struct RunRows {
    std::vector<const void*> keys, values;
  };
  std::vector<RunRows> run_rows_;
  tbb::enumerable_thread_specific<std::vector<float>> attn_scratch_;
};

}  // namespace shardlm

#endif  // SHARDLM_WORKER_LLAMA_STAGE_H_
