#include "coordinator/pipeline.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/base/status_macros.h"
#include "common/stage/forward_codec.h"

namespace shardlm {

absl::StatusOr<std::unique_ptr<Pipeline>> Pipeline::Create(std::vector<std::shared_ptr<Stage>> stages) {
  std::vector<std::vector<std::shared_ptr<Stage>>> ranges;
  for (auto& s : stages) ranges.push_back({std::move(s)});
  return Create(std::move(ranges));
}

absl::StatusOr<std::unique_ptr<Pipeline>> Pipeline::Create(
    std::vector<std::vector<std::shared_ptr<Stage>>> ranges) {
  if (ranges.empty()) return absl::InvalidArgumentError("a pipeline needs at least one stage");
  const ShardInfo& first = ranges.front().front()->info();
  int expected = 0;
  for (size_t k = 0; k < ranges.size(); ++k) {
    if (ranges[k].empty()) return absl::InvalidArgumentError("a layer range without any stage");
    const ShardInfo& s = ranges[k].front()->info();
    for (const auto& replica : ranges[k]) {
      const ShardInfo& r = replica->info();
      const std::string who = absl::StrCat(replica->name(), " (layers ", r.first_layer, ":", r.last_layer, ")");
      if (r.fingerprint != first.fingerprint || r.n_layer != first.n_layer) {
        return absl::FailedPreconditionError(absl::StrCat(
            who, " serves a different model (fingerprint ", r.fingerprint, ", ", r.n_layer,
            " layers) than the first stage (fingerprint ", first.fingerprint, ", ", first.n_layer,
            " layers)"));
      }
      if (r.first_layer != s.first_layer || r.last_layer != s.last_layer) {
        return absl::FailedPreconditionError(absl::StrCat(
            who, " is listed as a replica of layers ", s.first_layer, ":", s.last_layer));
      }
    }
    const std::string who = absl::StrCat(ranges[k].front()->name(), " (layers ", s.first_layer,
                                         ":", s.last_layer, ")");
    if (s.first_layer > expected) {
      return absl::FailedPreconditionError(absl::StrCat("layers ", expected, ":", s.first_layer,
                                                        " are served by no stage (gap before ", who, ")"));
    }
    if (s.first_layer < expected) {
      return absl::FailedPreconditionError(absl::StrCat("layers ", s.first_layer, ":", expected,
                                                        " are served twice (", who,
                                                        " overlaps the stage before it)"));
    }
    expected = s.last_layer;
  }
  if (expected != first.n_layer) {
    return absl::FailedPreconditionError(absl::StrCat("layers ", expected, ":", first.n_layer,
                                                      " are served by no stage (the last stage "
                                                      "ends at layer ", expected, ")"));
  }
  return std::unique_ptr<Pipeline>(new Pipeline(std::move(ranges)));
}

Pipeline::Pipeline(std::vector<std::vector<std::shared_ptr<Stage>>> ranges)
    : ranges_(std::move(ranges)) {
  for (const auto& r : ranges_) {
    health_.emplace_back();
    for (size_t i = 0; i < r.size(); ++i) health_.back().push_back(std::make_unique<Health>());
  }
}

int Pipeline::max_replicas() const {
  size_t m = 0;
  for (const auto& r : ranges_) m = std::max(m, r.size());
  return static_cast<int>(m);
}

std::vector<std::shared_ptr<Stage>> Pipeline::stages() const {
  std::vector<std::shared_ptr<Stage>> all;
  for (const auto& r : ranges_) all.insert(all.end(), r.begin(), r.end());
  return all;
}

std::string Pipeline::RangeName(int range) const {
  const ShardInfo& s = ranges_[range].front()->info();
  return absl::StrCat("layers ", s.first_layer, ":", s.last_layer);
}

absl::Status Pipeline::Forward(const ForwardRequest& request, ForwardResult* result,
                               const Route& route, StageFailure* failure) const {
  RETURN_IF_ERROR(ForwardStages(request, result, route, failure));
  // The engine reads the k-th logits row as the k-th entry that wants one
  // (with speculation, several per sequence): a last stage answering other
  // rows (a bug, a mismatched build, a hostile peer) fails the step like a
  // stage failure instead of making it read past the logits.
  const ShardInfo& last = model();
  size_t k = 0;
  bool same_rows = true;
  for (size_t i = 0; i < request.n_tokens() && same_rows; ++i) {
    if (!WantsLogits(request, last, i)) continue;
    same_rows = k < result->logit_rows.size() && result->logit_rows[k] == static_cast<int32_t>(i);
    ++k;
  }
  same_rows = same_rows && k == result->logit_rows.size() &&
              result->logits.size() == k * static_cast<size_t>(last.n_vocab);
  if (!same_rows) {
    const int range = n_ranges() - 1;
    if (failure != nullptr) *failure = StageFailure{range, route.empty() ? 0 : route[range]};
    return absl::InternalError(absl::StrCat(RangeName(range), " answered ",
                                            result->logit_rows.size(),
                                            " logits rows that are not the ones asked for"));
  }
  return absl::OkStatus();
}

absl::Status Pipeline::ForwardStages(const ForwardRequest& request, ForwardResult* result,
                                     const Route& route, StageFailure* failure) const {
  if (path_ != nullptr) {
    return path_->Forward(request, result, route.empty() ? Route(ranges_.size(), 0) : route,
                          failure);
  }
  auto replica = [&](int k) { return route.empty() ? 0 : route[k]; };
  // Times one stage call and records it.
  auto call = [&](int k, const ForwardRequest& req, ForwardResult* out) {
    const absl::Time t0 = absl::Now();
    absl::Status st = ranges_[k][replica(k)]->Forward(req, out);
    if (st.ok()) {
      Health& h = *health_[k][replica(k)];
      const double secs = absl::ToDoubleSeconds(absl::Now() - t0);
      h.forward_seconds.Observe(secs);
      h.compute_seconds.Observe(out->compute_ms / 1000);
      h.hop_seconds.Observe(std::max(0.0, secs - out->compute_ms / 1000));
    }
    return st;
  };
  auto fail = [&](int k, absl::Status st) {
    if (failure != nullptr) *failure = StageFailure{k, replica(k)};
    return st;
  };
  const int n = n_ranges();
  if (n == 1) {
    absl::Status st = call(0, request, result);
    return st.ok() ? st : fail(0, st);
  }
  // Per-call buffers: concurrent micro-batches must not share them.
  ForwardRequest hop;
  ForwardResult mid;
  if (absl::Status st = call(0, request, &mid); !st.ok()) return fail(0, st);
  hop.seq_ids = request.seq_ids;
  hop.positions = request.positions;
  hop.want_logits = request.want_logits;
  for (int k = 1; k < n; ++k) {
    hop.hidden.swap(mid.hidden);
    ForwardResult* out = k + 1 == n ? result : &mid;
    if (absl::Status st = call(k, hop, out); !st.ok()) return fail(k, st);
  }
  return absl::OkStatus();
}

absl::Status Pipeline::Release(absl::Span<const SeqId> seqs) const {
  absl::Status first_error;
  for (int k = 0; k < n_ranges(); ++k) {
    for (int r = 0; r < n_replicas(k); ++r) {
      if (!healthy(k, r)) continue;  // its KV is dropped when it comes back
      absl::Status st = ranges_[k][r]->Release(seqs);
      if (!st.ok() && first_error.ok()) first_error = st;
    }
  }
  return first_error;
}

absl::Status Pipeline::Fork(SeqId dst, SeqId src, int n, bool cache_entry, const Route& route,
                            StageFailure* failure) const {
  for (int k = 0; k < n_ranges(); ++k) {
    const int r = route.empty() ? 0 : route[k];
    absl::Status st = ranges_[k][r]->Fork(dst, src, n, cache_entry);
    if (st.ok()) continue;
    for (int done = 0; done < k; ++done) {
      (void)ranges_[done][route.empty() ? 0 : route[done]]->Release(dst);
    }
    if (failure != nullptr) *failure = StageFailure{k, r};
    return st;
  }
  return absl::OkStatus();
}

absl::Status Pipeline::Release(absl::Span<const SeqId> seqs, int range, int replica) const {
  return ranges_[range][replica]->Release(seqs);
}

bool Pipeline::healthy(int range, int replica) const { return health_[range][replica]->healthy.load(); }

void Pipeline::SetHealthy(int range, int replica, bool healthy) {
  Health& h = *health_[range][replica];
  if (h.healthy.exchange(healthy) && !healthy) ++h.epoch;
}

uint64_t Pipeline::epoch(int range, int replica) const { return health_[range][replica]->epoch.load(); }

std::optional<int> Pipeline::PickReplica(int range, int preferred) const {
  const int n = n_replicas(range);
  for (int i = 0; i < n; ++i) {
    const int r = (preferred + i) % n;
    if (healthy(range, r)) return r;
  }
  return std::nullopt;
}

std::vector<std::pair<int, int>> Pipeline::ProbeAll() {
  std::vector<std::pair<int, int>> back;
  for (int k = 0; k < n_ranges(); ++k) {
    for (int r = 0; r < n_replicas(k); ++r) {
      const bool ok = ranges_[k][r]->Ping().ok();
      const bool was = healthy(k, r);
      SetHealthy(k, r, ok);
      if (ok && !was) back.push_back({k, r});
    }
  }
  return back;
}

}  // namespace shardlm

namespace shardlm {
namespace {

// Share of the budget that running requests hold, 0 to 1 (0 without a
// budget). Blocks held only by prefix-cache entries do not count: the engine
// evicts them whenever a request needs the room (as vLLM counts a cached
// block with no request as free), so a full cache never reads as a full
// server. Stages that report no blocks count bytes.
double KvUsageRatio(const KvStats& kv) {
  if (kv.blocks_budget > 0) {
    const int64_t held = std::max<int64_t>(0, kv.blocks_used - kv.blocks_cache_only);
    return std::min(1.0, static_cast<double>(held) / kv.blocks_budget);
  }
  if (kv.bytes_budget <= 0) return 0;
  return std::min(1.0, static_cast<double>(kv.bytes_used) / kv.bytes_budget);
}

}  // namespace

double Pipeline::KvCacheUsage() const {
  double fullest = 0;
  for (int k = 0; k < n_ranges(); ++k) {
    for (int r = 0; r < n_replicas(k); ++r) {
      if (!healthy(k, r)) continue;  // its KV is gone; it holds no request
      fullest = std::max(fullest, KvUsageRatio(ranges_[k][r]->known_kv_stats()));
    }
  }
  return fullest;
}

void Pipeline::RenderMetrics(MetricsPage* page) const {
  struct Row {
    std::string labels;
    const Health* health;
    KvStats kv;
  };
  std::vector<Row> rows;
  for (int k = 0; k < n_ranges(); ++k) {
    for (int r = 0; r < n_replicas(k); ++r) {
      const ShardInfo& info = ranges_[k][r]->info();
      rows.push_back({absl::StrCat("stage=\"", LabelValue(ranges_[k][r]->name()), "\",layers=\"",
                                   info.first_layer, ":", info.last_layer, "\""),
                      health_[k][r].get(), ranges_[k][r]->known_kv_stats()});
    }
  }
  // Family by family: the text format wants each family's lines together.
  for (const Row& row : rows) {
    page->Gauge("shardlm_stage_healthy", "1 if the stage answers its health probes and calls",
                row.health->healthy.load() ? 1 : 0, row.labels);
  }
  for (const Row& row : rows) {
    page->Histogram("shardlm_stage_forward_seconds", "Forward call time per stage (compute + hop)",
                    row.health->forward_seconds, row.labels);
  }
  for (const Row& row : rows) {
    page->Histogram("shardlm_stage_compute_seconds",
                    "Time the stage spent computing a Forward call, as it reports it",
                    row.health->compute_seconds, row.labels);
  }
  for (const Row& row : rows) {
    page->Histogram("shardlm_stage_hop_seconds",
                    "Forward call time not spent computing (serialization, network, queueing)",
                    row.health->hop_seconds, row.labels);
  }
  for (const Row& row : rows) {
    page->Gauge("shardlm_stage_kv_bytes", "KV-cache bytes the stage holds (as of its last reply)",
                row.kv.bytes_used, row.labels);
  }
  for (const Row& row : rows) {
    page->Gauge("shardlm_stage_kv_budget_bytes", "KV-cache budget of the stage (0: unlimited)",
                row.kv.bytes_budget, row.labels);
  }
  for (const Row& row : rows) {
    page->Gauge("shardlm_stage_kv_usage_ratio",
                "KV-cache blocks held by requests over budget, 0 to 1 (prefix-cache-only "
                "blocks are free to evict)",
                KvUsageRatio(row.kv), row.labels);
  }
  page->Gauge("shardlm_kv_cache_usage_ratio",
              "KV-cache utilisation, 0 to 1: the fullest healthy stage's request-held blocks "
              "over budget",
              KvCacheUsage());
}

}  // namespace shardlm
