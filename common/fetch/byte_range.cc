#include "common/fetch/byte_range.h"

#include <algorithm>

namespace shardlm {

std::vector<ByteRange> MergeRanges(std::vector<ByteRange> ranges, uint64_t max_gap) {
  std::erase_if(ranges, [](const ByteRange& r) { return r.length == 0; });
  std::sort(ranges.begin(), ranges.end(),
            [](const ByteRange& a, const ByteRange& b) { return a.offset < b.offset; });
  std::vector<ByteRange> out;
  for (const ByteRange& r : ranges) {
    if (!out.empty() && r.offset <= out.back().end() + max_gap) {
      out.back().length = std::max(out.back().end(), r.end()) - out.back().offset;
    } else {
      out.push_back(r);
    }
  }
  return out;
}

std::vector<ByteRange> SubtractRanges(std::vector<ByteRange> wanted, std::vector<ByteRange> have) {
  wanted = MergeRanges(std::move(wanted));
  have = MergeRanges(std::move(have));
  std::vector<ByteRange> out;
  size_t h = 0;
  for (ByteRange w : wanted) {
    uint64_t pos = w.offset;
    while (h < have.size() && have[h].end() <= pos) ++h;
    for (size_t k = h; k < have.size() && have[k].offset < w.end(); ++k) {
      if (have[k].offset > pos) out.push_back({pos, have[k].offset - pos});
      pos = std::max(pos, have[k].end());
    }
    if (pos < w.end()) out.push_back({pos, w.end() - pos});
  }
  return out;
}

uint64_t TotalBytes(const std::vector<ByteRange>& ranges) {
  uint64_t total = 0;
  for (const ByteRange& r : ranges) total += r.length;
  return total;
}

}  // namespace shardlm
