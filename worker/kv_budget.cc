#include "worker/kv_budget.h"

#include <algorithm>
#include <fstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

namespace shardlm {
namespace {

constexpr int64_t kMinBudget = int64_t{64} << 20;

// The first line of a cgroup file as a number; nullopt for "max", a missing
// file or junk. cgroup v1 says "no limit" with a huge number: treated as none.
std::optional<int64_t> ReadCgroupNumber(const char* path) {
  std::ifstream in(path);
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  int64_t value = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(line), &value) || value <= 0 ||
      value >= (int64_t{1} << 60)) {
    return std::nullopt;
  }
  return value;
}

std::optional<int64_t> ReadMemAvailable() {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("MemAvailable:", 0) != 0) continue;
    int64_t kb = 0;
    if (absl::SimpleAtoi(
            absl::StripAsciiWhitespace(absl::StripSuffix(
                absl::StripAsciiWhitespace(absl::string_view(line).substr(13)), "kB")),
            &kb)) {
      return kb * 1024;
    }
  }
  return std::nullopt;
}

std::string Gib(std::optional<int64_t> bytes) {
  return bytes ? absl::StrFormat("%.1f GiB", *bytes / 1073741824.0) : std::string("unknown");
}

}  // namespace

MemoryFacts ReadMemoryFacts() {
  MemoryFacts f;
  f.mem_available = ReadMemAvailable();
  f.cgroup_limit = ReadCgroupNumber("/sys/fs/cgroup/memory.max");
  f.cgroup_usage = ReadCgroupNumber("/sys/fs/cgroup/memory.current");
  if (!f.cgroup_limit) {  // cgroup v1
    f.cgroup_limit = ReadCgroupNumber("/sys/fs/cgroup/memory/memory.limit_in_bytes");
    f.cgroup_usage = ReadCgroupNumber("/sys/fs/cgroup/memory/memory.usage_in_bytes");
  }
  return f;
}

int64_t DefaultKvBudget(const MemoryFacts& facts, int64_t weight_bytes) {
  std::optional<int64_t> room = facts.mem_available;
  if (facts.cgroup_limit) {
    const int64_t cgroup_room = *facts.cgroup_limit - facts.cgroup_usage.value_or(0);
    room = room ? std::min(*room, cgroup_room) : cgroup_room;
  }
  if (!room) return kMinBudget;
  return std::max(kMinBudget, (*room - std::max<int64_t>(weight_bytes, 0)) / 2);
}

std::string DescribeMemoryFacts(const MemoryFacts& facts) {
  return absl::StrFormat("MemAvailable %s, cgroup limit %s (used %s)", Gib(facts.mem_available),
                         facts.cgroup_limit ? Gib(facts.cgroup_limit) : std::string("none"),
                         Gib(facts.cgroup_usage));
}

}  // namespace shardlm
