#include "coordinator/replica_router.h"

#include "common/base/logging.h"

namespace shardlm {

ReplicaRouter::ReplicaRouter(Pipeline* pipeline, int n_groups, absl::Duration health_interval)
    : pipeline_(pipeline) {
  for (int g = 0; g < n_groups; ++g) {
    GroupRoute route;
    for (int k = 0; k < pipeline_->n_ranges(); ++k) {
      route.route.push_back(home(g, k));
      route.epochs.push_back(pipeline_->epoch(k, home(g, k)));
    }
    groups_.push_back(std::move(route));
  }
  orphans_.resize(pipeline_->n_ranges());
  for (int k = 0; k < pipeline_->n_ranges(); ++k) orphans_[k].resize(pipeline_->n_replicas(k));
  if (health_interval > absl::ZeroDuration()) {
    prober_ = std::thread([this, health_interval] { HealthLoop(health_interval); });
  }
}

ReplicaRouter::~ReplicaRouter() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  stop_cv_.notify_all();
  if (prober_.joinable()) prober_.join();
}

void ReplicaRouter::ReturnHomeLocked(int group, GroupRoute& g) {
  for (int k = 0; k < pipeline_->n_ranges(); ++k) {
    const int h = home(group, k);
    if (g.route[k] == h || !pipeline_->healthy(k, h)) continue;
    SHARDLM_LOG(kInfo, "micro-batch %d returns to %s", group, pipeline_->stage(k, h).name());
    g.route[k] = h;
    g.epochs[k] = pipeline_->epoch(k, h);
  }
}

RouteDecision ReplicaRouter::Prepare(int group, absl::Span<const SeqId> kv_holders,
                                     Route* route) {
  std::lock_guard<std::mutex> lock(mu_);
  GroupRoute& g = groups_[group];
  RouteDecision decision;
  // Moving costs nothing while no sequence holds KV.
  if (kv_holders.empty()) ReturnHomeLocked(group, g);
  for (int k = 0; k < pipeline_->n_ranges(); ++k) {
    if (pipeline_->healthy(k, g.route[k])) continue;
    const int old = g.route[k];
    std::optional<int> r = pipeline_->PickReplica(k, old + 1);
    if (!r.has_value()) {
      decision.ok = false;
      decision.missing = pipeline_->RangeName(k);
      *route = g.route;
      return decision;
    }
    std::vector<SeqId>& orphans = orphans_[k][old];
    orphans.insert(orphans.end(), kv_holders.begin(), kv_holders.end());
    SHARDLM_LOG(kWarning, "micro-batch %d: %s moves from %s to %s, replaying %d sequences", group,
                pipeline_->RangeName(k), pipeline_->stage(k, old).name(),
                pipeline_->stage(k, *r).name(), static_cast<int>(kv_holders.size()));
    g.route[k] = *r;
    g.epochs[k] = pipeline_->epoch(k, *r);
    decision.replay = true;
    failovers_.Add();
  }
  // A replica that failed and came back (same route) lost its KV if it
  // restarted.
  for (int k = 0; k < pipeline_->n_ranges(); ++k) {
    const uint64_t epoch = pipeline_->epoch(k, g.route[k]);
    if (epoch == g.epochs[k]) continue;
    g.epochs[k] = epoch;
    decision.replay = true;
  }
  *route = g.route;
  return decision;
}

void ReplicaRouter::ReportFailure(const StageFailure& failure) {
  if (failure.range < 0) return;
  pipeline_->SetHealthy(failure.range, failure.replica, false);
}

void ReplicaRouter::ProbeOnce() {
  for (auto [k, r] : pipeline_->ProbeAll()) {
    // A replica that came back may still hold KV of sequences that moved
    // away from it: free that before it is used again.
    std::vector<SeqId> ids;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ids.swap(orphans_[k][r]);
    }
    SHARDLM_LOG(kInfo, "%s is back; releasing %d orphaned sequences", pipeline_->stage(k, r).name(),
                static_cast<int>(ids.size()));
    if (!ids.empty()) pipeline_->Release(ids, k, r).IgnoreError();
  }
}

void ReplicaRouter::HealthLoop(absl::Duration interval) {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    stop_cv_.wait_for(lock, absl::ToChronoMilliseconds(interval), [&] { return stopping_; });
    if (stopping_) break;
    lock.unlock();
    ProbeOnce();
    lock.lock();
  }
}

void ReplicaRouter::RenderMetrics(MetricsPage* page) const {
  page->Counter("shardlm_failovers_total", "Micro-batches moved to another replica",
                failovers_.value());
}

}  // namespace shardlm
