#include "worker/kv_cache.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/kernels/quant/blocks.h"

namespace shardlm {

const char* KvTypeName(KvType type) {
  switch (type) {
    case KvType::kF32: return "f32";
    case KvType::kF16: return "f16";
    case KvType::kQ8_0: return "q8_0";
    case KvType::kQ4_0: return "q4_0";
  }
  return "?";
}

absl::StatusOr<KvType> ParseKvType(const std::string& name) {
  for (KvType t : {KvType::kF16, KvType::kF32, KvType::kQ8_0, KvType::kQ4_0}) {
    if (name == KvTypeName(t)) return t;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--kv-type must be f16, f32, q8_0 or q4_0, not '", name, "'"));
}

absl::Status CheckKvTypeFits(KvType type, int head_dim) {
  if (KvTypeIsQuantized(type) && head_dim % quant::kQK != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a ", KvTypeName(type), " KV cache needs a head size divisible by 32 (its blocks of 32 "
        "values), this model's is ", head_dim, ": use --kv-type f16 or f32"));
  }
  return absl::OkStatus();
}

size_t KvRowBytes(KvType type, int64_t n) {
  switch (type) {
    case KvType::kF32: return static_cast<size_t>(n) * 4;
    case KvType::kF16: return static_cast<size_t>(n) * 2;
    case KvType::kQ8_0: return static_cast<size_t>(n / quant::kQK) * sizeof(quant::BlockQ8_0);
    case KvType::kQ4_0: return static_cast<size_t>(n / quant::kQK) * sizeof(quant::BlockQ4_0);
  }
  return 0;
}

GgmlType KvGgmlType(KvType type) {
  switch (type) {
    case KvType::kF32: return GgmlType::kF32;
    case KvType::kF16: return GgmlType::kF16;
    case KvType::kQ8_0: return GgmlType::kQ8_0;
    case KvType::kQ4_0: return GgmlType::kQ4_0;
  }
  return GgmlType::kF16;
}

KvCache::KvCache(int n_layers, int row, int n_ctx, KvType type, int64_t budget_bytes)
    : n_layers_(n_layers),
      row_(row),
      n_ctx_(n_ctx),
      type_(type),
      row_bytes_(KvRowBytes(type, row)),
      budget_(budget_bytes) {}

int64_t KvCache::block_bytes() const {
  return int64_t{2} * n_layers_ * kBlockPositions * static_cast<int64_t>(row_bytes_);
}

// 0 = unlimited; a positive budget smaller than one block allows none.
int64_t KvCache::max_blocks() const {
  return budget_ > 0 ? budget_ / std::max<int64_t>(block_bytes(), 1) : 0;
}

uint8_t* KvCache::RowIn(int block, int layer, bool values, int offset) const {
  const size_t plane = static_cast<size_t>(kBlockPositions) * row_bytes_;
  return blocks_[block].data.get() + (static_cast<size_t>(layer) * 2 + values) * plane +
         static_cast<size_t>(offset) * row_bytes_;
}

int KvCache::Allocate() {
  int id;
  if (!free_ids_.empty()) {
    id = free_ids_.back();
    free_ids_.pop_back();
  } else {
    id = static_cast<int>(blocks_.size());
    blocks_.emplace_back();
  }
  // Not zeroed: a position is always written before any attention reads it.
  blocks_[id].data.reset(new uint8_t[block_bytes()]);
  blocks_[id].refs = 1;
  ++live_blocks_;
  return id;
}

void KvCache::Unref(int block) {
  if (--blocks_[block].refs > 0) return;
  blocks_[block].data.reset();  // back to the allocator: the budget is what is live
  free_ids_.push_back(block);
  --live_blocks_;
}

absl::Status KvCache::CheckAppend(SeqId seq, int start, int count, int64_t* extra_blocks) const {
  auto it = seqs_.find(seq);
  const int length = it == seqs_.end() ? 0 : it->second.length;
  if (start < 0 || start > length) {
    return absl::InvalidArgumentError(
        absl::StrCat("sequence ", seq, ": position ", start, " is not contiguous with its ", length,
                     " cached positions (replay the sequence from position <= ", length, ")"));
  }
  if (count < 0 || start + count > n_ctx_) {
    return absl::InvalidArgumentError(absl::StrCat("sequence ", seq, ": positions up to ",
                                                   start + count, " exceed the context size ",
                                                   n_ctx_));
  }
  // Net blocks: the rewind drops the blocks past `start` (freeing those
  // nobody else holds); the write needs fresh blocks past what is kept and
  // a copy of a kept partial block that is shared.
  const int keep = BlocksFor(start);
  int64_t net = BlocksFor(start + count) - keep;
  if (it != seqs_.end()) {
    const std::vector<int>& held = it->second.blocks;
    for (size_t b = keep; b < held.size(); ++b) net -= blocks_[held[b]].refs == 1;
    if (count > 0 && start % kBlockPositions != 0 &&
        blocks_[held[start / kBlockPositions]].refs > 1) {
      ++net;
    }
  }
  *extra_blocks += net;
  const int64_t limit = max_blocks();
  if (budget_ > 0 && live_blocks_ + *extra_blocks > limit) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "KV cache budget exhausted: ", live_blocks_, " of ", limit, " blocks of ",
        kBlockPositions, " positions (", budget_, " bytes) in use, sequence ", seq, " needs ",
        net, " more"));
  }
  return absl::OkStatus();
}

void KvCache::Prepare(SeqId seq, int start, int count) {
  Sequence& s = seqs_[seq];
  const size_t keep = BlocksFor(start);
  while (s.blocks.size() > keep) {
    Unref(s.blocks.back());
    s.blocks.pop_back();
  }
  if (count > 0 && start % kBlockPositions != 0) {
    int& shared = s.blocks[start / kBlockPositions];
    if (blocks_[shared].refs > 1) {  // copy on write
      const int copy = Allocate();
      std::memcpy(blocks_[copy].data.get(), blocks_[shared].data.get(), block_bytes());
      Unref(shared);
      shared = copy;
    }
  }
  while (static_cast<int>(s.blocks.size()) < BlocksFor(start + count)) {
    s.blocks.push_back(Allocate());
  }
  s.length = start + count;
}

uint8_t* KvCache::key_row(SeqId seq, int layer, int pos) {
  const Sequence& s = seqs_.at(seq);
  return RowIn(s.blocks[pos / kBlockPositions], layer, false, pos % kBlockPositions);
}

uint8_t* KvCache::value_row(SeqId seq, int layer, int pos) {
  const Sequence& s = seqs_.at(seq);
  return RowIn(s.blocks[pos / kBlockPositions], layer, true, pos % kBlockPositions);
}

void KvCache::RowPointers(SeqId seq, int layer, bool values, int n_pos,
                          std::vector<const void*>* rows) const {
  const Sequence& s = seqs_.at(seq);
  rows->resize(n_pos);
  for (int b = 0; b * kBlockPositions < n_pos; ++b) {
    const uint8_t* first = RowIn(s.blocks[b], layer, values, 0);
    const int end = std::min(kBlockPositions, n_pos - b * kBlockPositions);
    for (int i = 0; i < end; ++i) (*rows)[b * kBlockPositions + i] = first + i * row_bytes_;
  }
}

int KvCache::length(SeqId seq) const {
  auto it = seqs_.find(seq);
  return it == seqs_.end() ? 0 : it->second.length;
}

absl::Status KvCache::Fork(SeqId dst, SeqId src, int n, bool cache_entry) {
  auto it = seqs_.find(src);
  if (it == seqs_.end()) {
    return absl::InvalidArgumentError(
        absl::StrCat("fork: source sequence ", src, " holds no KV on this stage"));
  }
  if (n < 1 || n > it->second.length) {
    return absl::InvalidArgumentError(absl::StrCat("fork: ", n, " positions requested, source ",
                                                   src, " holds ", it->second.length,
                                                   " (need 1 to its length)"));
  }
  if (seqs_.contains(dst)) {
    return absl::InvalidArgumentError(
        absl::StrCat("fork: destination sequence ", dst, " already exists (release it first)"));
  }
  const bool partial = n % kBlockPositions != 0;
  if (partial && budget_ > 0 && live_blocks_ + 1 > max_blocks()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("KV cache budget exhausted: ", live_blocks_, " of ", max_blocks(),
                     " blocks in use, fork of ", n, " positions needs one more"));
  }
  const std::vector<int> src_blocks = it->second.blocks;  // `it` dies at the insert below
  Sequence& d = seqs_[dst];
  d.length = n;
  d.cache_entry = cache_entry;
  const int full = n / kBlockPositions;
  for (int b = 0; b < full; ++b) {
    ++blocks_[src_blocks[b]].refs;
    d.blocks.push_back(src_blocks[b]);
  }
  if (partial) {
    const int copy = Allocate();
    std::memcpy(blocks_[copy].data.get(), blocks_[src_blocks[full]].data.get(), block_bytes());
    d.blocks.push_back(copy);
  }
  return absl::OkStatus();
}

void KvCache::Release(SeqId seq) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return;
  for (int b : it->second.blocks) Unref(b);
  seqs_.erase(it);
}

KvStats KvCache::stats() const {
  KvStats st;
  std::vector<bool> held_by_request(blocks_.size());
  int64_t request_held = 0;
  for (const auto& [id, s] : seqs_) {
    if (s.cache_entry) {
      ++st.cache_sequences;
      continue;
    }
    ++st.sequences;
    st.tokens += s.length;
    for (int b : s.blocks) {
      if (!held_by_request[b]) ++request_held;
      held_by_request[b] = true;
    }
  }
  st.blocks_used = live_blocks_;
  st.blocks_cache_only = live_blocks_ - request_held;
  st.blocks_budget = max_blocks();
  st.block_positions = kBlockPositions;
  st.bytes_used = live_blocks_ * block_bytes();
  st.bytes_budget = budget_;
  return st;
}

}  // namespace shardlm
