#include <gtest/gtest.h>

#include "common/model/ggml_type.h"

namespace shardlm {
namespace {

TEST(GgmlTypeTest, GeometryOfQ4_0) {
  auto info = LookupGgmlType(2);
  ASSERT_TRUE(info.has_value());
  EXPECT_EQ(info->block_size, 32);
  EXPECT_EQ(info->block_bytes, 18u);
  EXPECT_FALSE(LookupGgmlType(4).has_value());  // q4_2: removed from ggml long ago
  EXPECT_EQ(RowBytes(GgmlType::kQ4_K, 512).value(), 2 * 144u);
  EXPECT_FALSE(RowBytes(GgmlType::kQ8_0, 172).has_value());
}

}  // namespace
}  // namespace shardlm
