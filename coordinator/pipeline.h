// A chain of layer ranges covering [0, n_layer), each served by one or more
// replica stages (in-process LlamaStages or remote workers). A batch enters
// the first range as token ids, each range's hidden states feed the next,
// and the last returns logits. A Route picks one replica per range; the
// pipeline tracks which replicas are healthy so callers can fail over.
#ifndef SHARDLM_COORDINATOR_PIPELINE_H_
#define SHARDLM_COORDINATOR_PIPELINE_H_

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/base/metrics.h"
#include "common/stage/stage.h"

namespace shardlm {

// Replica index per range, in pipeline order.
using Route = std::vector<int>;

// Where a Forward failed: the range and the replica that did not answer.
struct StageFailure {
  int range = -1;
  int replica = -1;
};

// Another way of running one step through the ranges than calling each
// stage in turn (relay): the chain topology (coordinator/chain.h), where
// the stages pass hidden states to each other. Same contract as
// Pipeline::Forward; `route` has one replica per range.
class StepPath {
 public:
  virtual ~StepPath() = default;
  virtual absl::Status Forward(const ForwardRequest& request, ForwardResult* result,
                               const Route& route, StageFailure* failure) const = 0;
};

class Pipeline {
 public:
  // `ranges[k]` are the replicas of the k-th layer range. Checks that the
  // ranges are contiguous, cover the model exactly, that replicas serve the
  // same range, and that every stage serves the same model (fingerprint);
  // the error names the gap, the overlap or the mismatched stage.
  static absl::StatusOr<std::unique_ptr<Pipeline>> Create(
      std::vector<std::vector<std::shared_ptr<Stage>>> ranges);
  // One replica per range.
  static absl::StatusOr<std::unique_ptr<Pipeline>> Create(std::vector<std::shared_ptr<Stage>> stages);

  // Runs `request` (token ids) through the replicas `route` picks (empty:
  // replica 0 everywhere); `result` gets logits. Thread-safe: concurrent
  // calls (micro-batches) may be in different stages at the same time. On
  // an error, `failure` (if given) names the range and replica that failed.
  // With a step path set (set_step_path), the step takes that path instead.
  absl::Status Forward(const ForwardRequest& request, ForwardResult* result,
                       const Route& route = {}, StageFailure* failure = nullptr) const;
  // Routes every later Forward through `path` (null: relay again). Set it
  // before the engine starts; the pipeline owns it.
  void set_step_path(std::unique_ptr<StepPath> path) { path_ = std::move(path); }
  bool chained() const { return path_ != nullptr; }
  // Frees the sequences' KV on every healthy replica of every range, one
  // batched call per stage (best effort: the first error, after trying all).
  // A replica that is down drops its KV when it comes back (ReplicaRouter).
  absl::Status Release(absl::Span<const SeqId> seqs) const;
  // Forks `dst` from the first `n` positions of `src` on the replicas
  // `route` picks (Stage::Fork), range by range; on an error dst is released
  // where it was made and `failure` names the stage.
  absl::Status Fork(SeqId dst, SeqId src, int n, bool cache_entry, const Route& route,
                    StageFailure* failure = nullptr) const;
  // Frees them on one replica only.
  absl::Status Release(absl::Span<const SeqId> seqs, int range, int replica) const;

  int n_ranges() const { return static_cast<int>(ranges_.size()); }
  int n_replicas(int range) const { return static_cast<int>(ranges_[range].size()); }
  int max_replicas() const;
  const Stage& stage(int range, int replica) const { return *ranges_[range][replica]; }
  // Every stage, replicas included (status pages, tests).
  std::vector<std::shared_ptr<Stage>> stages() const;
  const ShardInfo& model() const { return ranges_.back().front()->info(); }
  std::string RangeName(int range) const;

  // Health, as the last calls and probes saw it.
  bool healthy(int range, int replica) const;
  // Marking a replica down starts a new epoch of it: callers that last saw
  // an older epoch must assume its KV is gone.
  void SetHealthy(int range, int replica, bool healthy);
  uint64_t epoch(int range, int replica) const;
  // A healthy replica of `range`, preferring `preferred`; nullopt if none.
  std::optional<int> PickReplica(int range, int preferred) const;
  // Probes every replica (Stage::Ping) and updates health; returns the
  // replicas that came back since the last probe as (range, replica).
  std::vector<std::pair<int, int>> ProbeAll();
  // KV-cache utilisation in [0, 1]: the fullest healthy stage's blocks held
  // by requests over its budget (prefix-cache-only blocks are free to evict;
  // a request needs room on every stage of its route, so the fullest one
  // decides). From the stages' known_kv_stats(): no call. Stages without a
  // budget count as empty.
  double KvCacheUsage() const;
  // Prometheus lines per replica: health, forward, compute and hop time, KV
  // use; and KvCacheUsage(). One group of lines per metric family.
  void RenderMetrics(MetricsPage* page) const;

 private:
  explicit Pipeline(std::vector<std::vector<std::shared_ptr<Stage>>> ranges);
  // Forward without the check of the logits rows.
  absl::Status ForwardStages(const ForwardRequest& request, ForwardResult* result,
                             const Route& route, StageFailure* failure) const;
  std::vector<std::vector<std::shared_ptr<Stage>>> ranges_;
  struct Health {
    std::atomic<bool> healthy{true};
    std::atomic<uint64_t> epoch{0};
    // Whole Forward call, and the part of it not spent computing: the hop
    // (serialization, network, queueing) — what splitting a model costs.
    Histogram forward_seconds{Histogram::LatencySeconds()};
    Histogram compute_seconds{Histogram::LatencySeconds()};  // as the stage reports it
    Histogram hop_seconds{Histogram::LatencySeconds()};
  };
  std::vector<std::vector<std::unique_ptr<Health>>> health_;
  std::unique_ptr<StepPath> path_;  // after ranges_: it uses their stages
};

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_PIPELINE_H_
