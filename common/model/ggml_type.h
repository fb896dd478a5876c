// Tensor element types as GGUF numbers them (ggml's `enum ggml_type`), with
// the block geometry every part of the engine needs: a row of n elements of
// type t occupies n / block_size * block_bytes bytes.
#ifndef SHARDLM_COMMON_MODEL_GGML_TYPE_H_
#define SHARDLM_COMMON_MODEL_GGML_TYPE_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace shardlm {

enum class GgmlType : uint32_t {
  kF32 = 0,
  kF16 = 1,
  kQ4_0 = 2,
  kQ4_1 = 3,
  kQ5_0 = 6,
  kQ5_1 = 7,
  kQ8_0 = 8,
  kQ8_1 = 9,
  kQ2_K = 10,
  kQ3_K = 11,
  kQ4_K = 12,
  kQ5_K = 13,
  kQ6_K = 14,
  kQ8_K = 15,
  kBF16 = 30,
};

struct GgmlTypeInfo {
  GgmlType type;
  // As llama.cpp prints it: "q4_K", "f32"... (a C string: it then works with
  // absl::StrCat, whose string_view on Debian is not std::string_view).
  const char* name;
  int block_size;         // elements per block
  size_t block_bytes;     // bytes per block
};

// Geometry of a type this engine supports, or nullopt for a type number it
// does not know (the caller turns that into an error naming the tensor).
std::optional<GgmlTypeInfo> LookupGgmlType(uint32_t raw_type);

// Same for a known enum value; aborts on an impossible value (our own bug).
const GgmlTypeInfo& TypeInfo(GgmlType type);

// Bytes of a row of `n` elements, or nullopt when n is not a multiple of the
// block size.
std::optional<size_t> RowBytes(GgmlType type, int64_t n);

// "q4_K" -> kQ4_K etc. (case-insensitive); nullopt if unknown.
std::optional<GgmlType> ParseGgmlType(std::string_view name);

}  // namespace shardlm

#endif  // SHARDLM_COMMON_MODEL_GGML_TYPE_H_
