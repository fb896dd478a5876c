// The block KV cache: blocks shared by forks, the partial last block copied,
// copy on write when a shared block is written (a rewind), the budget in
// blocks (forks and appends refused with RESOURCE_EXHAUSTED, nothing
// changed), the Fork errors, and the stats that tell request blocks from
// prefix-cache ones.
#include "worker/kv_cache.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace shardlm::testing {
namespace {

constexpr int B = KvCache::kBlockPositions;
constexpr int kLayers = 2, kRow = 4;

// Appends positions [start, start + count) with values that name the
// sequence's tag, the layer and the position.
void Append(KvCache& kv, SeqId seq, int start, int count, float tag) {
  int64_t extra = 0;
  ASSERT_TRUE(kv.CheckAppend(seq, start, count, &extra).ok());
  kv.Prepare(seq, start, count);
  for (int l = 0; l < kLayers; ++l) {
    for (int p = start; p < start + count; ++p) {
      for (int i = 0; i < kRow; ++i) {
        const float k = tag + l * 1000 + p + i * 0.125f, v = -k;
        std::memcpy(kv.key_row(seq, l, p) + i * sizeof(float), &k, sizeof k);
        std::memcpy(kv.value_row(seq, l, p) + i * sizeof(float), &v, sizeof v);
      }
    }
  }
}

// Position p's first key (or value) element at layer l, read through
// RowPointers (the attention's view: the rows in their blocks).
float FirstAt(const KvCache& kv, SeqId seq, int l, int p, bool values) {
  std::vector<const void*> rows;
  kv.RowPointers(seq, l, values, p + 1, &rows);
  EXPECT_EQ(rows.size(), static_cast<size_t>(p + 1));
  float x;
  std::memcpy(&x, rows[p], sizeof x);
  return x;
}
float KeyAt(const KvCache& kv, SeqId seq, int l, int p) { return FirstAt(kv, seq, l, p, false); }
float ValueAt(const KvCache& kv, SeqId seq, int l, int p) { return FirstAt(kv, seq, l, p, true); }

TEST(KvCacheTest, BlocksGrowWithTheSequenceAndRowsReadAcrossBlocks) {
  KvCache kv(kLayers, kRow, 1024, KvType::kF32, 0);
  Append(kv, 1, 0, 2 * B + 5, 0);
  EXPECT_EQ(kv.length(1), 2 * B + 5);
  EXPECT_EQ(kv.stats().blocks_used, 3);
  EXPECT_EQ(kv.stats().block_positions, B);
  EXPECT_EQ(kv.stats().bytes_used, 3 * kv.block_bytes());
  EXPECT_EQ(kv.block_bytes(), int64_t{2} * kLayers * B * kRow * 4);
  for (int p : {0, B - 1, B, 2 * B + 4}) {
    EXPECT_EQ(KeyAt(kv, 1, 1, p), 1000 + p) << p;
    EXPECT_EQ(ValueAt(kv, 1, 0, p), -p) << p;
  }
  // The attention reads the rows where they are: no copy, whatever block.
  std::vector<const void*> rows;
  kv.RowPointers(1, 1, /*values=*/true, 2 * B + 5, &rows);
  ASSERT_EQ(rows.size(), static_cast<size_t>(2 * B + 5));
  for (int p = 0; p < 2 * B + 5; ++p) ASSERT_EQ(rows[p], kv.value_row(1, 1, p)) << p;
  kv.Release(1);
  EXPECT_EQ(kv.stats().blocks_used, 0);
  EXPECT_EQ(kv.stats().sequences, 0);
}

TEST(KvCacheTest, ForkSharesFullBlocksAndCopiesThePartialOne) {
  KvCache kv(kLayers, kRow, 1024, KvType::kF32, 0);
  Append(kv, 1, 0, 2 * B + 10, 0);
  ASSERT_TRUE(kv.Fork(2, 1, B + 7, /*cache_entry=*/false).ok());
  EXPECT_EQ(kv.length(2), B + 7);
  // 3 of the source + 1 copy of its second block (the first is shared).
  EXPECT_EQ(kv.stats().blocks_used, 4);
  for (int p : {0, B - 1, B, B + 6}) EXPECT_EQ(KeyAt(kv, 2, 0, p), p) << p;

  // The fork continues on its own: the source keeps its numbers.
  Append(kv, 2, B + 7, 20, 50000);
  EXPECT_EQ(KeyAt(kv, 2, 0, B + 8), 50000 + B + 8);
  EXPECT_EQ(KeyAt(kv, 1, 0, B + 8), B + 8);
  // A fork at a block boundary shares all its blocks: no copy.
  ASSERT_TRUE(kv.Fork(3, 1, 2 * B, false).ok());
  EXPECT_EQ(kv.stats().blocks_used, 4 + 0);
  Append(kv, 3, 2 * B, 1, 70000);  // a fresh block for position 2B
  EXPECT_EQ(kv.stats().blocks_used, 5);
  EXPECT_EQ(KeyAt(kv, 1, 0, 2 * B), 2 * B) << "the source's own block is untouched";

  // Releasing the source keeps the shared blocks alive for the forks.
  kv.Release(1);
  EXPECT_EQ(KeyAt(kv, 3, 1, B - 1), 1000 + B - 1);
  EXPECT_EQ(KeyAt(kv, 2, 1, 3), 1000 + 3);
  kv.Release(2);
  kv.Release(3);
  EXPECT_EQ(kv.stats().blocks_used, 0);
}

TEST(KvCacheTest, RewritingASharedBlockCopiesItFirst) {
  KvCache kv(kLayers, kRow, 1024, KvType::kF32, 0);
  Append(kv, 1, 0, 2 * B, 0);
  ASSERT_TRUE(kv.Fork(2, 1, 2 * B, false).ok());
  EXPECT_EQ(kv.stats().blocks_used, 2);
  // A replay that rewinds the source into its shared first block.
  Append(kv, 1, 10, 5, 90000);
  EXPECT_EQ(kv.length(1), 15);
  EXPECT_EQ(KeyAt(kv, 1, 0, 12), 90000 + 12);
  EXPECT_EQ(KeyAt(kv, 1, 0, 9), 9) << "positions before the rewind are copied";
  EXPECT_EQ(KeyAt(kv, 2, 0, 12), 12) << "the fork does not see the rewrite";
  EXPECT_EQ(KeyAt(kv, 2, 0, B + 3), B + 3);
  // The source's second block stays with the fork; its first is now a copy.
  EXPECT_EQ(kv.stats().blocks_used, 3);
}

TEST(KvCacheTest, ForkErrorsAreInvalidArgumentAndChangeNothing) {
  KvCache kv(kLayers, kRow, 1024, KvType::kF16, 0);
  Append(kv, 1, 0, 10, 0);
  const KvStats before = kv.stats();
  absl::Status st = kv.Fork(2, 99, 5, false);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("source sequence 99"), std::string::npos) << st;
  st = kv.Fork(2, 1, 11, false);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("holds 10"), std::string::npos) << st;
  EXPECT_EQ(kv.Fork(2, 1, 0, false).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(kv.Fork(2, 1, -3, false).code(), absl::StatusCode::kInvalidArgument);
  st = kv.Fork(1, 1, 5, false);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("already exists"), std::string::npos) << st;
  EXPECT_EQ(kv.length(2), 0);
  EXPECT_EQ(kv.stats().blocks_used, before.blocks_used);
  EXPECT_EQ(kv.stats().sequences, 1);
}

TEST(KvCacheTest, BudgetCountsBlocksForAppendsAndForks) {
  KvCache probe(kLayers, kRow, 1024, KvType::kF32, 0);
  KvCache kv(kLayers, kRow, 1024, KvType::kF32, 3 * probe.block_bytes() + 100);
  EXPECT_EQ(kv.stats().blocks_budget, 3);
  Append(kv, 1, 0, 2 * B + 1, 0);  // 3 blocks: full
  int64_t extra = 0;
  absl::Status st = kv.CheckAppend(1, 2 * B + 1, B, &extra);
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << st;
  EXPECT_NE(st.message().find("3 of 3 blocks"), std::string::npos) << st;
  extra = 0;
  EXPECT_TRUE(kv.CheckAppend(1, 2 * B + 1, B - 1, &extra).ok()) << "fits the last block";
  // A fork on a boundary needs no block; a partial one needs one.
  EXPECT_TRUE(kv.Fork(2, 1, 2 * B, false).ok());
  EXPECT_EQ(kv.Fork(3, 1, B + 1, false).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(kv.length(3), 0);
  // A rewind frees the blocks it drops (here: only the one nobody shares).
  extra = 0;
  EXPECT_TRUE(kv.CheckAppend(1, 2 * B, 1, &extra).ok());
  EXPECT_EQ(extra, 0);
  // Writing into the shared second block would copy it: over budget.
  extra = 0;
  EXPECT_EQ(kv.CheckAppend(2, B + 3, 1, &extra).code(), absl::StatusCode::kResourceExhausted);
  kv.Release(1);  // the third block goes; the fork keeps two
  EXPECT_EQ(kv.stats().blocks_used, 2);
  extra = 0;
  EXPECT_TRUE(kv.CheckAppend(2, B + 3, 1, &extra).ok());
}

TEST(KvCacheTest, StatsTellRequestBlocksFromPrefixCacheBlocks) {
  KvCache kv(kLayers, kRow, 1024, KvType::kF32, 0);
  Append(kv, 1, 0, 2 * B + 3, 0);
  ASSERT_TRUE(kv.Fork(100, 1, 2 * B, /*cache_entry=*/true).ok());  // an entry: shares 2
  KvStats st = kv.stats();
  EXPECT_EQ(st.sequences, 1);
  EXPECT_EQ(st.cache_sequences, 1);
  EXPECT_EQ(st.tokens, 2 * B + 3);
  EXPECT_EQ(st.blocks_used, 3);
  EXPECT_EQ(st.blocks_cache_only, 0) << "the request still holds them";
  kv.Release(1);
  st = kv.stats();
  EXPECT_EQ(st.sequences, 0);
  EXPECT_EQ(st.blocks_used, 2);
  EXPECT_EQ(st.blocks_cache_only, 2);
  ASSERT_TRUE(kv.Fork(5, 100, B + 9, false).ok());  // a request reuses the entry
  st = kv.stats();
  EXPECT_EQ(st.blocks_used, 3);
  EXPECT_EQ(st.blocks_cache_only, 1);
  kv.Release(100);
  kv.Release(5);
  EXPECT_EQ(kv.stats().blocks_used, 0);
}

}  // namespace
}  // namespace shardlm::testing
