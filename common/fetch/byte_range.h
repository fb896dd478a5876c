// Byte ranges [offset, offset + length) of a remote file and the set
// arithmetic the model cache needs (merge, subtract), kept apart from the
// HTTP code so it is tested without a socket.
#ifndef SHARDLM_COMMON_FETCH_BYTE_RANGE_H_
#define SHARDLM_COMMON_FETCH_BYTE_RANGE_H_

#include <cstdint>
#include <vector>

namespace shardlm {

struct ByteRange {
  uint64_t offset = 0;
  uint64_t length = 0;
  uint64_t end() const { return offset + length; }
  bool operator==(const ByteRange& o) const { return offset == o.offset && length == o.length; }
};

// Sorted, with empty ranges dropped and ranges closer than `max_gap` bytes
// joined (a gap of a few padding bytes costs less than another request).
std::vector<ByteRange> MergeRanges(std::vector<ByteRange> ranges, uint64_t max_gap = 0);

// The parts of `wanted` not covered by `have` (both in any order), merged.
std::vector<ByteRange> SubtractRanges(std::vector<ByteRange> wanted, std::vector<ByteRange> have);

// Sum of the lengths.
uint64_t TotalBytes(const std::vector<ByteRange>& ranges);

}  // namespace shardlm

#endif  // SHARDLM_COMMON_FETCH_BYTE_RANGE_H_
