#include "worker/kv_cache.h"

#include <algorithm>

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
    : n_layers_(n_layers), row_(row), n_ctx_(n_ctx), type_(type), budget_(budget_bytes) {}

int64_t KvCache::BytesFor(int capacity) const {
  return bytes_per_token() * capacity;
}

// Capacity grows geometrically (at least 64 positions) so a decode of n
// tokens reallocates O(log n) times, capped at the context size.
int KvCache::GrownCapacity(int current, int needed) const {
  if (needed <= current) return current;
  return std::min(n_ctx_, std::max({needed, 64, current * 2}));
}

absl::Status KvCache::CheckAppend(SeqId seq, int start, int count, int64_t* extra_bytes) const {
  auto it = seqs_.find(seq);
  const int length = it == seqs_.end() ? 0 : it->second.length;
  const int capacity = it == seqs_.end() ? 0 : it->second.capacity;
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
  const int grown = GrownCapacity(capacity, start + count);
  *extra_bytes += BytesFor(grown) - BytesFor(capacity);
  if (budget_ > 0 && used_ + *extra_bytes > budget_) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "KV cache budget exhausted: ", used_, " of ", budget_, " bytes in use, sequence ", seq,
        " needs ", BytesFor(grown) - BytesFor(capacity), " more"));
  }
  return absl::OkStatus();
}

void KvCache::Prepare(SeqId seq, int start, int count) {
  Sequence& s = seqs_[seq];
  if (s.k.empty()) {
    s.k.resize(n_layers_);
    s.v.resize(n_layers_);
  }
  const int grown = GrownCapacity(s.capacity, start + count);
  if (grown != s.capacity) {
    used_ += BytesFor(grown) - BytesFor(s.capacity);
    const size_t bytes = static_cast<size_t>(grown) * row_bytes();
    for (int l = 0; l < n_layers_; ++l) {
      s.k[l].resize(bytes);
      s.v[l].resize(bytes);
    }
    s.capacity = grown;
  }
  s.length = start + count;
}

void* KvCache::keys(SeqId seq, int layer) { return seqs_.at(seq).k[layer].data(); }
void* KvCache::values(SeqId seq, int layer) { return seqs_.at(seq).v[layer].data(); }

int KvCache::length(SeqId seq) const {
  auto it = seqs_.find(seq);
  return it == seqs_.end() ? 0 : it->second.length;
}

void KvCache::Release(SeqId seq) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return;
  used_ -= BytesFor(it->second.capacity);
  seqs_.erase(it);
}

KvStats KvCache::stats() const {
  KvStats st;
  st.sequences = static_cast<int64_t>(seqs_.size());
  for (const auto& [id, s] : seqs_) st.tokens += s.length;
  st.bytes_used = used_;
  st.bytes_budget = budget_;
  return st;
}

}  // namespace shardlm
