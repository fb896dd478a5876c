// Live figures of a --model URL fetch, updated by ResolveModelPath while it
// runs and read by a process's /metrics page from another thread.
#ifndef SHARDLM_COMMON_FETCH_FETCH_STATS_H_
#define SHARDLM_COMMON_FETCH_FETCH_STATS_H_

#include <atomic>
#include <cstdint>

#include "common/base/metrics.h"

namespace shardlm {

struct ModelFetchStats {
  std::atomic<uint64_t> fetched{0};  // body bytes received by this process
  std::atomic<uint64_t> to_fetch{0};  // bytes it had to fetch (not in the cache)
  std::atomic<uint64_t> cached{0};   // bytes it needed that the cache already held
  std::atomic<double> rate{0};       // bytes per second of the running fetch
  std::atomic<bool> done{false};     // every byte this process reads is local

  // shardlm_model_fetch_* series.
  void Render(MetricsPage* page) const;
};

}  // namespace shardlm

#endif  // SHARDLM_COMMON_FETCH_FETCH_STATS_H_
