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

// Walks the prefix; `Need()` records how far it got when bytes run out.
class Scanner {
 public:
  Scanner(std::string_view p, uint64_t file_size) : p_(p), file_size_(file_size) {}

  absl::StatusOr<GgufHeaderExtent> Scan();

 private:
  struct OutOfBytes {};  // thrown inside Scan only, never out of it
  template <typename T>
  T Read() {
    if (p_.size() - pos_ < sizeof(T)) Stop(sizeof(T));
    T v;
    std::memcpy(&v, p_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  void Skip(uint64_t n) {
    if (n > file_size_ - std::min<uint64_t>(file_size_, pos_)) bad_ = true;
    if (bad_ || p_.size() - pos_ < n) Stop(n);
    pos_ += n;
  }
  // Bytes ran out `need` bytes short of the next item.
  [[noreturn]] void Stop(uint64_t need) {
    short_by_ = need;
    throw OutOfBytes{};
  }
  std::string_view ReadString() {
    const uint64_t len = Read<uint64_t>();
    const size_t at = pos_;
    Skip(len);
    return p_.substr(at, len);
  }
  void SkipValue(uint32_t type, std::string_view key);

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

void Scanner::SkipValue(uint32_t type, std::string_view key) {
  if (type == kString) {
    ReadString();
  } else if (type == kArray) {
    const uint32_t elem = Read<uint32_t>();
    const uint64_t count = Read<uint64_t>();
    if (elem == kString) {
      array_start_ = pos_;
      array_count_ = count;
      for (array_read_ = 0; array_read_ < count; ++array_read_) ReadString();
      array_count_ = 0;
    } else if (FixedSize(elem) == 0 || count > file_size_ / FixedSize(elem)) {
      bad_ = true;
      Stop(0);
    } else {
      Skip(count * FixedSize(elem));
    }
  } else if (FixedSize(type) == 0) {
    bad_ = true;
    Stop(0);
  } else if (key == "general.alignment" && FixedSize(type) <= 8) {
    uint64_t v = 0;
    const uint64_t n = FixedSize(type);
    if (p_.size() - pos_ < n) Stop(n);
    std::memcpy(&v, p_.data() + pos_, n);
    pos_ += n;
    if (v != 0 && (v & (v - 1)) == 0) alignment_ = v;
  } else {
    Skip(FixedSize(type));
  }
}

absl::StatusOr<GgufHeaderExtent> Scanner::Scan() {
  try {
    if (p_.size() >= 4 && p_.substr(0, 4) != "GGUF") {
      return absl::InvalidArgumentError("not a GGUF file (magic bytes are not \"GGUF\")");
    }
    Skip(4);
    Read<uint32_t>();  // version: checked by GgufFile::Open
    n_tensors_ = Read<uint64_t>();
    const uint64_t n_kv = Read<uint64_t>();
    for (uint64_t k = 0; k < n_kv; ++k) {
      const std::string_view key = ReadString();
      SkipValue(Read<uint32_t>(), key);
    }
    for (uint64_t t = 0; t < n_tensors_; ++t) {
      ReadString();
      const uint32_t n_dims = Read<uint32_t>();
      if (n_dims > 4) return absl::InvalidArgumentError(absl::StrCat("tensor ", t, " has ", n_dims, " dimensions"));
      Skip(8 * n_dims + 4 + 8);
    }
    const uint64_t end = pos_;
    return GgufHeaderExtent{true, std::min(file_size_, (end + alignment_ - 1) / alignment_ * alignment_)};
  } catch (const OutOfBytes&) {
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
  return GgufHeaderExtent{false, std::min(file_size_, std::max<uint64_t>(p_.size() + 4096, pos_ + rest))};
}

}  // namespace

absl::StatusOr<GgufHeaderExtent> ScanGgufHeader(std::string_view prefix, uint64_t file_size) {
  if (prefix.size() > file_size) return absl::InvalidArgumentError("prefix longer than the file");
  return Scanner(prefix, file_size).Scan();
}

}  // namespace shardlm
