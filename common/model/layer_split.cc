#include "common/model/layer_split.h"

#include <algorithm>
#include <charconv>
#include <limits>
#include <string_view>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace shardlm {
namespace {

constexpr uint64_t kInfinity = std::numeric_limits<uint64_t>::max();

// The block index of a "blk.N.*" tensor name, or -1.
int BlockIndex(std::string_view name) {
  constexpr std::string_view kPrefix = "blk.";
  if (!name.starts_with(kPrefix)) return -1;
  int index = -1;
  const char* begin = name.data() + kPrefix.size();
  const auto [end, ec] = std::from_chars(begin, name.data() + name.size(), index);
  if (ec != std::errc() || end == name.data() + name.size() || *end != '.') return -1;
  return index;
}

}  // namespace

std::vector<LayerRange> SplitByCost(std::span<const uint64_t> layer_cost, uint64_t head_cost,
                                    int n_stages) {
  const int n = static_cast<int>(layer_cost.size());
  std::vector<uint64_t> prefix(n + 1, 0);
  for (int i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + layer_cost[i];
  // Cost of stage [a, b) when it is stage `k` of n_stages.
  auto cost = [&](int a, int b, int k) {
    return prefix[b] - prefix[a] + (k == n_stages - 1 ? head_cost : 0);
  };
  // Two dynamic programs over "the first i layers in the first k stages":
  // the smallest possible largest stage cost, then, with every stage within
  // that, the smallest sum of squared costs (as doubles: bytes squared
  // overflow 64 bits). Layer counts are small (tens), so O(k n^2) is nothing.
  std::vector<std::vector<uint64_t>> worst(n_stages + 1, std::vector<uint64_t>(n + 1, kInfinity));
  worst[0][0] = 0;
  for (int k = 0; k < n_stages; ++k) {
    for (int b = 1; b <= n; ++b) {
      for (int a = 0; a < b; ++a) {
        if (worst[k][a] == kInfinity) continue;
        worst[k + 1][b] = std::min(worst[k + 1][b], std::max(worst[k][a], cost(a, b, k)));
      }
    }
  }
  const uint64_t limit = worst[n_stages][n];
  constexpr double kNone = std::numeric_limits<double>::infinity();
  std::vector<std::vector<double>> squares(n_stages + 1, std::vector<double>(n + 1, kNone));
  std::vector<std::vector<int>> start(n_stages + 1, std::vector<int>(n + 1, -1));
  squares[0][0] = 0;
  for (int k = 0; k < n_stages; ++k) {
    for (int b = 1; b <= n; ++b) {
      for (int a = 0; a < b; ++a) {
        const uint64_t c = cost(a, b, k);
        if (squares[k][a] == kNone || c > limit) continue;
        const double s = squares[k][a] + static_cast<double>(c) * static_cast<double>(c);
        if (s < squares[k + 1][b]) {
          squares[k + 1][b] = s;
          start[k + 1][b] = a;
        }
      }
    }
  }
  std::vector<LayerRange> ranges(n_stages);
  for (int k = n_stages, b = n; k > 0; --k) {
    const int a = start[k][b];
    ranges[k - 1] = {a, b};
    b = a;
  }
  return ranges;
}

absl::StatusOr<std::vector<LayerRange>> BalancedLayerRanges(const GgufFile& file, int n_layer,
                                                            int n_stages) {
  if (n_stages < 1 || n_stages > n_layer) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot split ", n_layer, " layers into ", n_stages,
                     " stages: every stage needs at least one layer"));
  }
  std::vector<uint64_t> layer_cost(n_layer, 0);
  uint64_t head_cost = 0;
  const GgufTensorInfo* head = file.FindTensor("output.weight");
  if (head == nullptr) head = file.FindTensor("token_embd.weight");  // tied head
  if (head != nullptr) head_cost = head->n_bytes;
  for (const GgufTensorInfo& t : file.tensors()) {
    const int block = BlockIndex(t.name);
    if (block >= 0 && block < n_layer) layer_cost[block] += t.n_bytes;
  }
  return SplitByCost(layer_cost, head_cost, n_stages);
}

absl::StatusOr<std::vector<LayerRange>> ParseLayerRanges(absl::string_view text,
                                                         absl::string_view flag) {
  std::vector<LayerRange> ranges;
  for (absl::string_view part : absl::StrSplit(text, ',')) {
    std::vector<absl::string_view> ends = absl::StrSplit(part, ':');
    int a, b;
    if (ends.size() != 2 || !absl::SimpleAtoi(ends[0], &a) || !absl::SimpleAtoi(ends[1], &b)) {
      return absl::InvalidArgumentError(absl::StrCat(flag, ": '", part, "' is not FIRST:LAST"));
    }
    ranges.push_back({a, b});
  }
  return ranges;
}

}  // namespace shardlm
