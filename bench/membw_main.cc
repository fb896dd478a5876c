// shardlm-membw: read bandwidth of this machine (sums a large array with N
// threads, best of several passes) — the denominator of the decode bound
// "bytes of weights per token / bandwidth".
#include <tbb/blocked_range.h>
#include <tbb/parallel_reduce.h>
#include <tbb/task_arena.h>

#include <cstdio>
#include <vector>

#include "absl/time/clock.h"
#include "common/base/cli_args.h"

int main(int argc, char** argv) {
  int threads = 2, passes = 10;
  int64_t mib = 1024;
  shardlm::CliArgs args("shardlm-membw [--threads 2] [--mib 1024] [--passes 10]",
                        "Measures read bandwidth by summing an array of doubles; prints GB/s.");
  args.AddInt("-t,--threads", &threads, "threads");
  args.AddInt64("--mib", &mib, "array size in MiB (well above the caches)");
  args.AddInt("--passes", &passes, "passes (the best is reported)");
  if (std::optional<int> exit = args.ParseForMain(argc, argv, "shardlm-membw")) return *exit;
  std::vector<double> data(static_cast<size_t>(mib) * (1 << 20) / sizeof(double), 1.0);
  tbb::task_arena arena(threads);
  double best = 0, checksum = 0;
  for (int p = 0; p < passes; ++p) {
    const absl::Time t0 = absl::Now();
    const double sum = arena.execute([&] {
      return tbb::parallel_reduce(
          tbb::blocked_range<size_t>(0, data.size(), 1 << 16), 0.0,
          [&](const tbb::blocked_range<size_t>& r, double acc) {
            for (size_t i = r.begin(); i < r.end(); ++i) acc += data[i];
            return acc;
          },
          [](double a, double b) { return a + b; });
    });
    const double secs = absl::ToDoubleSeconds(absl::Now() - t0);
    checksum += sum;
    best = std::max(best, data.size() * sizeof(double) / secs / 1e9);
  }
  std::printf("{\"threads\":%d,\"mib\":%lld,\"read_gb_per_s_best\":%.2f,\"checksum\":%.0f}\n",
              threads, static_cast<long long>(mib), best, checksum);
  return 0;
}
