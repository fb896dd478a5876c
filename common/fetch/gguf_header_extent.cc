#include "common/fetch/gguf_header_extent.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace shardlm {
namespace {

// GGUF value types (as in gguf.h) and the size of the fixed ones.
constexpr uint32_t kString = 8, kArray = 9;
uint64_t FixedSize(uint32_t type) {
  static constexpr uint64_t kSizes[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
  return type < 13 ? kSizes[type] : 0;
}

// Walks the prefix. Every step returns false when it cannot go on: either
// the bytes ran out (short_by_ says how many the next item needs) or a
// length is impossible for a file of this size (bad_).
class Scanner {
 public:
  Scanner(std::string_view p, uint64_t file_size) : p_(p), file_size_(file_size) {}

  absl::StatusOr<GgufHeaderExtent> Scan();

 private:
  bool Need(uint64_t n) {
    if (n > file_size_ - pos_) {
      bad_ = true;
      return false;
    }
    if (n > p_.size() - pos_) {
      short_by_ = n;
      return false;
    }
    return true;
  }
  template <typename T>
  bool Read(T* v) {
    if (!Need(sizeof(T))) return false;
    std::memcpy(v, p_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool Skip(uint64_t n) {
    if (!Need(n)) return false;
    pos_ += n;
    return true;
  }
  bool SkipString(std::string_view* s = nullptr) {
    uint64_t len = 0;
    if (!Read(&len) || !Need(len)) return false;
    if (s != nullptr) *s = p_.substr(pos_, len);
    pos_ += len;
    return true;
  }
  bool SkipValue(uint32_t type, std::string_view key);
  bool Walk();  // true once the whole header was walked

  std::string_view p_;
  uint64_t file_size_;
  size_t pos_ = 0;
  uint64_t short_by_ = 0;
  bool bad_ = false;
  uint64_t alignment_ = 32;
  uint64_t n_tensors_ = 0;
  // The string array being read when bytes ran out: where it started, how
  // many elements it has and how many were read, for the estimate.
  size_t array_start_ = 0;
  uint64_t array_count_ = 0, array_read_ = 0;
};

bool Scanner::SkipValue(uint32_t type, std::string_view key) {
  if (type == kString) return SkipString();
  if (type == kArray) {
    uint32_t elem = 0;
    uint64_t count = 0;
    if (!Read(&elem) || !Read(&count)) return false;
    if (elem == kString) {
      if (count > file_size_ / 8) {  // each element has at least its length
        bad_ = true;
        return false;
      }
      array_start_ = pos_;
      array_count_ = count;
      for (array_read_ = 0; array_read_ < count; ++array_read_) {
        if (!SkipString()) return false;
      }
      array_count_ = 0;
      return true;
    }
    const uint64_t size = FixedSize(elem);
    if (size == 0 || count > file_size_ / size) {
      bad_ = true;
      return false;
    }
    return Skip(count * size);
  }
  const uint64_t size = FixedSize(type);
  if (size == 0) {
    bad_ = true;
    return false;
  }
  if (key != "general.alignment") return Skip(size);
  uint64_t v = 0;  // any unsigned width; GgufFile::Open checks the type
  if (!Need(size)) return false;
  std::memcpy(&v, p_.data() + pos_, size);
  pos_ += size;
  if (v != 0 && (v & (v - 1)) == 0) alignment_ = v;
  return true;
}

bool Scanner::Walk() {
  uint32_t version = 0;  // checked by GgufFile::Open
  uint64_t n_kv = 0;
  if (!Skip(4) || !Read(&version) || !Read(&n_tensors_) || !Read(&n_kv)) return false;
  for (uint64_t k = 0; k < n_kv; ++k) {
    std::string_view key;
    uint32_t type = 0;
    if (!SkipString(&key) || !Read(&type) || !SkipValue(type, key)) return false;
  }
  for (uint64_t t = 0; t < n_tensors_; ++t) {
    uint32_t n_dims = 0;
    if (!SkipString() || !Read(&n_dims)) return false;
    if (n_dims > 4) {
      bad_ = true;
      return false;
    }
    if (!Skip(8 * n_dims + 4 + 8)) return false;  // ne[], type, offset
  }
  return true;
}

absl::StatusOr<GgufHeaderExtent> Scanner::Scan() {
  if (p_.size() >= 4 && p_.substr(0, 4) != "GGUF") {
    return absl::InvalidArgumentError("not a GGUF file (magic bytes are not \"GGUF\")");
  }
  if (Walk()) {
    const uint64_t data = (pos_ + alignment_ - 1) / alignment_ * alignment_;
    return GgufHeaderExtent{true, std::min(file_size_, data)};
  }
  if (bad_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "not a valid GGUF header: a length or count at offset ", pos_,
        " runs past the end of the file (", file_size_, " bytes)"));
  }
  // Estimate the rest: the unread elements of a string array at the average
  // size of those read, plus a tensor table entry of ~96 bytes per tensor.
  uint64_t rest = short_by_ + n_tensors_ * 96 + 4096;
  if (array_count_ > 0) {
    const uint64_t avg = array_read_ > 0 ? (pos_ - array_start_) / array_read_ + 1 : 16;
    rest += (array_count_ - array_read_) * avg * 11 / 10;
  }
  return GgufHeaderExtent{false,
                          std::min(file_size_, std::max<uint64_t>(p_.size() + 4096, pos_ + rest))};
}

}  // namespace

absl::StatusOr<GgufHeaderExtent> ScanGgufHeader(std::string_view prefix, uint64_t file_size) {
  if (prefix.size() > file_size) return absl::InvalidArgumentError("prefix longer than the file");
  return Scanner(prefix, file_size).Scan();
}

}  // namespace shardlm
