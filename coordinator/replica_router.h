// ReplicaRouter: which replica of each layer range every micro-batch group
// uses, and failover between them. The Pipeline keeps each replica's health
// (the one place for it: calls and probes update it, GetModelInfo and
// /metrics read it); the router decides routes from it:
//  - before each batch of a group, a range whose replica is down moves to a
//    live replica, and the group must replay its sequences (their KV was on
//    the dead one); a replica that went down and came back (a new epoch) may
//    have restarted empty, so that replays too;
//  - a group whose sequences hold no KV yet moves back to its home replicas
//    (where it started) once they are healthy: how a worker that came back
//    is used again;
//  - KV left on a replica the group moved away from ("orphans") is released
//    when the health probes see that replica again.
// Its lock is a leaf: it never calls back into the engine while holding it.
#ifndef SHARDLM_COORDINATOR_REPLICA_ROUTER_H_
#define SHARDLM_COORDINATOR_REPLICA_ROUTER_H_

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/base/metrics.h"
#include "coordinator/pipeline.h"

namespace shardlm {

struct RouteDecision {
  // False when some range has no live replica; `missing` names it.
  bool ok = true;
  std::string missing;
  // The group's KV is gone on some stage: recompute its sequences from
  // position 0 (positions from 0 rewind the KV the other stages hold, so the
  // replay is idempotent).
  bool replay = false;
};

class ReplicaRouter {
 public:
  // Group g starts on replica g % n_replicas of each range (spreading the
  // groups over replicas). With a positive `health_interval` a thread probes
  // every replica that often. `pipeline` must outlive the router.
  ReplicaRouter(Pipeline* pipeline, int n_groups, absl::Duration health_interval);
  ~ReplicaRouter();  // stops the probing thread

  // Called before each batch of group g, with the ids of its sequences that
  // hold KV on its current route; fills `route` with the replicas to use.
  RouteDecision Prepare(int group, absl::Span<const SeqId> kv_holders, Route* route);
  // A Forward through the group's route failed at this replica (it did not
  // answer or timed out): it is down until a probe sees it again.
  void ReportFailure(const StageFailure& failure);
  // Probes every replica once and releases the orphaned KV of those that
  // came back. The probing thread calls this; tests may too.
  void ProbeOnce();

  // shardlm_failovers_total.
  void RenderMetrics(MetricsPage* page) const;

 private:
  struct GroupRoute {
    Route route;
    // Pipeline::epoch of each routed replica when the group last synced
    // with it.
    std::vector<uint64_t> epochs;
  };
  int home(int group, int range) const { return group % pipeline_->n_replicas(range); }
  void ReturnHomeLocked(int group, GroupRoute& g);
  void HealthLoop(absl::Duration interval);

  Pipeline* const pipeline_;
  mutable std::mutex mu_;  // guards groups_, orphans_, stopping_
  std::vector<GroupRoute> groups_;
  // KV left on a replica that went down: orphans_[range][replica].
  std::vector<std::vector<std::vector<SeqId>>> orphans_;
  Counter failovers_;
  bool stopping_ = false;
  std::condition_variable stop_cv_;
  std::thread prober_;
};

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_REPLICA_ROUTER_H_
