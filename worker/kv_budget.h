// The KV-cache budget a worker uses when none is given: a share of the
// memory this process can actually get, so that many sequences (or a
// client opening thousands of one-token sequences) meet RESOURCE_EXHAUSTED
// instead of the kernel's OOM killer.
#ifndef SHARDLM_WORKER_KV_BUDGET_H_
#define SHARDLM_WORKER_KV_BUDGET_H_

#include <cstdint>
#include <optional>
#include <string>

namespace shardlm {

// Memory facts the default is derived from; nullopt where unknown.
struct MemoryFacts {
  std::optional<int64_t> mem_available;  // /proc/meminfo MemAvailable
  std::optional<int64_t> cgroup_limit;   // cgroup v2 memory.max (v1 limit_in_bytes)
  std::optional<int64_t> cgroup_usage;   // cgroup v2 memory.current (v1 usage_in_bytes)
};

// Reads them from /proc and /sys/fs/cgroup (unreadable files: nullopt).
MemoryFacts ReadMemoryFacts();

// Half of what is left after the mapped weights: the smaller of
// MemAvailable and the cgroup's remaining room (limit - usage), minus
// `weight_bytes` (mmapped weights become page cache counted there), halved
// to leave room for activations, gRPC buffers and the OS. At least 64 MiB
// (a tiny model on a crowded machine still serves), 64 MiB also when
// nothing is known.
int64_t DefaultKvBudget(const MemoryFacts& facts, int64_t weight_bytes);

// "MemAvailable 22.1 GiB, cgroup limit none" — for the startup log.
std::string DescribeMemoryFacts(const MemoryFacts& facts);

}  // namespace shardlm

#endif  // SHARDLM_WORKER_KV_BUDGET_H_
