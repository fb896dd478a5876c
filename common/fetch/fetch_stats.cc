#include "common/fetch/fetch_stats.h"

namespace shardlm {

void ModelFetchStats::Render(MetricsPage* page) const {
  const double got = static_cast<double>(fetched.load());
  const double want = static_cast<double>(to_fetch.load());
  const double r = rate.load();
  page->Counter("shardlm_model_fetch_bytes_total",
                "bytes of the --model URL received by this process", got);
  page->Gauge("shardlm_model_fetch_needed_bytes",
              "bytes of the --model URL this process had to fetch (not in its cache)", want);
  page->Gauge("shardlm_model_fetch_cached_bytes",
              "bytes this process reads that its model cache already held", cached.load());
  page->Gauge("shardlm_model_fetch_rate_bytes_per_second", "rate of the running fetch", r);
  page->Gauge("shardlm_model_fetch_eta_seconds", "time left at the current rate, 0 when done",
              done.load() || r <= 0 || got >= want ? 0.0 : (want - got) / r);
  page->Gauge("shardlm_model_fetch_done", "1 once every byte this process reads is local",
              done.load() ? 1 : 0);
}

}  // namespace shardlm
