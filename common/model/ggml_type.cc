#include "common/model/ggml_type.h"

#include <array>

#include "absl/strings/match.h"
#include "common/base/logging.h"

namespace shardlm {
namespace {

// Block layouts (bytes): see common/kernels/quant/*.h for the field-by-field structs.
constexpr std::array<GgmlTypeInfo, 15> kTypes = {{
    {GgmlType::kF32, "f32", 1, 4},
    {GgmlType::kF16, "f16", 1, 2},
    {GgmlType::kBF16, "bf16", 1, 2},
    {GgmlType::kQ4_0, "q4_0", 32, 2 + 16},
    {GgmlType::kQ4_1, "q4_1", 32, 2 + 2 + 16},
    {GgmlType::kQ5_0, "q5_0", 32, 2 + 4 + 16},
    {GgmlType::kQ5_1, "q5_1", 32, 2 + 2 + 4 + 16},
    {GgmlType::kQ8_0, "q8_0", 32, 2 + 32},
    {GgmlType::kQ8_1, "q8_1", 32, 2 + 2 + 32},
    {GgmlType::kQ2_K, "q2_K", 256, 16 + 64 + 2 + 2},
    {GgmlType::kQ3_K, "q3_K", 256, 32 + 64 + 12 + 2},
    {GgmlType::kQ4_K, "q4_K", 256, 2 + 2 + 12 + 128},
    {GgmlType::kQ5_K, "q5_K", 256, 2 + 2 + 12 + 32 + 128},
    {GgmlType::kQ6_K, "q6_K", 256, 128 + 64 + 16 + 2},
    {GgmlType::kQ8_K, "q8_K", 256, 4 + 256 + 2 * 16},
}};

}  // namespace

std::optional<GgmlTypeInfo> LookupGgmlType(uint32_t raw_type) {
  for (const auto& t : kTypes) {
    if (static_cast<uint32_t>(t.type) == raw_type) return t;
  }
  return std::nullopt;
}

const GgmlTypeInfo& TypeInfo(GgmlType type) {
  for (const auto& t : kTypes) {
    if (t.type == type) return t;
  }
  SHARDLM_CHECK(false && "TypeInfo of an unknown GgmlType");
  return kTypes[0];
}

std::optional<size_t> RowBytes(GgmlType type, int64_t n) {
  const GgmlTypeInfo& info = TypeInfo(type);
  if (n < 0 || n % info.block_size != 0) return std::nullopt;
  return static_cast<size_t>(n / info.block_size) * info.block_bytes;
}

std::optional<GgmlType> ParseGgmlType(std::string_view name) {
  for (const auto& t : kTypes) {
    // Debian's abseil has its own string_view type, not std::string_view.
    if (absl::EqualsIgnoreCase(absl::string_view(t.name),
                               absl::string_view(name.data(), name.size()))) {
      return t.type;
    }
  }
  return std::nullopt;
}

}  // namespace shardlm
