// A bounds-checked little-endian reader over an untrusted byte span, used by
// the GGUF parser. Every read checks the remaining length first and reports
// failure instead of reading past the end, so a truncated or lying file can
// never make the parser touch memory outside the mapping.
#ifndef SHARDLM_COMMON_MODEL_GGUF_CURSOR_H_
#define SHARDLM_COMMON_MODEL_GGUF_CURSOR_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <type_traits>

namespace shardlm {

class ByteCursor {
 public:
  ByteCursor(const uint8_t* data, size_t size) : data_(data), size_(size) {}

  size_t offset() const { return pos_; }
  size_t size() const { return size_; }
  size_t remaining() const { return size_ - pos_; }

  // Reads one little-endian scalar (integer or IEEE float). GGUF is
  // little-endian and so are the machines we build for (x86-64, arm64 Linux),
  // so a memcpy is the decode; memcpy also avoids unaligned loads.
  template <typename T>
  bool Read(T* out) {
    static_assert(std::is_arithmetic_v<T>);
    if (remaining() < sizeof(T)) return false;
    std::memcpy(out, data_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }

  // A view of the next n bytes (no copy); fails if fewer remain.
  bool ReadBytes(uint64_t n, std::string_view* out) {
    if (n > remaining()) return false;
    *out = std::string_view(reinterpret_cast<const char*>(data_ + pos_), static_cast<size_t>(n));
    pos_ += static_cast<size_t>(n);
    return true;
  }

  bool Skip(uint64_t n) {
    if (n > remaining()) return false;
    pos_ += static_cast<size_t>(n);
    return true;
  }

 private:
  const uint8_t* data_;
  size_t size_;
  size_t pos_ = 0;
};

static_assert(sizeof(float) == 4 && sizeof(double) == 8, "IEEE float sizes assumed by GGUF");

}  // namespace shardlm

#endif  // SHARDLM_COMMON_MODEL_GGUF_CURSOR_H_
