#include "coordinator/prefix_cache.h"

#include <algorithm>

namespace shardlm {
namespace {

int CommonPrefix(absl::Span<const int32_t> a, absl::Span<const int32_t> b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  return static_cast<int>(i);
}

}  // namespace

int FreshGemmPrefix(int n, int chunk) {
  int end = 0;
  for (int start = 0; start < n; start += chunk) {
    const int size = std::min(chunk, n - start);
    if (size < 4) break;  // gemm needs 4 tokens (and a batch of >= 2)
    end = start + size - size % 4;
    if (size % 4 != 0) break;  // the chunk's tail takes gemv
  }
  return end;
}

int ExactForkLength(int common, int n, int chunk) {
  if (chunk < 4 || chunk % 4 != 0) return 0;
  int f = std::min({common, FreshGemmPrefix(n, chunk), n - 1});
  f -= f % 4;
  // Forked at f, the suffix is one chunk [f, n) when f lies in the fresh
  // prefill's last chunk: a single token there is computed alone (not
  // batched) unless the fresh prefill computed it alone too.
  const int last_chunk_start = (n - 1) / chunk * chunk;
  if (n - f == 1 && f > last_chunk_start) f -= 4;
  return std::max(f, 0);
}

PrefixCache::Match PrefixCache::Find(absl::Span<const int32_t> prompt, const Route& route) const {
  Match best;
  for (const Entry& e : entries_) {
    if (e.route != route) continue;
    const int common = CommonPrefix(prompt, e.tokens);
    if (common > best.common) best = {e.seq, common};
  }
  return best;
}

PrefixCache::Match PrefixCache::Acquire(absl::Span<const int32_t> prompt, const Route& route) {
  const Match m = Find(prompt, route);
  if (m.common == 0) return m;
  auto it = FindEntry(m.entry);
  ++it->pins;
  entries_.splice(entries_.begin(), entries_, it);
  return m;
}

void PrefixCache::Unpin(SeqId entry) {
  auto it = FindEntry(entry);
  if (it != entries_.end() && it->pins > 0) --it->pins;
}

bool PrefixCache::Covers(absl::Span<const int32_t> tokens, const Route& route) const {
  for (const Entry& e : entries_) {
    if (e.route == route && CommonPrefix(tokens, e.tokens) == static_cast<int>(tokens.size())) {
      return true;
    }
  }
  return false;
}

void PrefixCache::Insert(SeqId seq, std::vector<int32_t> tokens, Route route,
                         std::vector<SeqId>* released) {
  if (Covers(tokens, route)) {
    released->push_back(seq);
    return;
  }
  for (auto it = entries_.begin(); it != entries_.end();) {
    auto next = std::next(it);
    if (it->pins == 0 && it->route == route &&
        CommonPrefix(tokens, it->tokens) == static_cast<int>(it->tokens.size())) {
      Erase(it, released);  // the new entry holds all of it
    }
    it = next;
  }
  tokens_ += static_cast<int64_t>(tokens.size());
  entries_.push_front(Entry{seq, std::move(tokens), std::move(route), 0});
  while (tokens_ > max_tokens_ && EvictOne(released)) {
  }
}

bool PrefixCache::EvictOne(std::vector<SeqId>* released) {
  for (auto it = entries_.rbegin(); it != entries_.rend(); ++it) {
    if (it->pins > 0) continue;
    Erase(std::next(it).base(), released);
    return true;
  }
  return false;
}

void PrefixCache::Drop(SeqId entry, std::vector<SeqId>* released) {
  auto it = FindEntry(entry);
  if (it != entries_.end()) Erase(it, released);
}

void PrefixCache::DropRoute(const Route& route, std::vector<SeqId>* released) {
  for (auto it = entries_.begin(); it != entries_.end();) {
    auto next = std::next(it);
    if (it->route == route && it->pins == 0) Erase(it, released);
    it = next;
  }
}

void PrefixCache::Clear(std::vector<SeqId>* released) {
  while (!entries_.empty()) Erase(entries_.begin(), released);
}

PrefixCache::List::iterator PrefixCache::FindEntry(SeqId seq) {
  return std::find_if(entries_.begin(), entries_.end(), [&](const Entry& e) { return e.seq == seq; });
}

void PrefixCache::Erase(List::iterator it, std::vector<SeqId>* released) {
  tokens_ -= static_cast<int64_t>(it->tokens.size());
  released->push_back(it->seq);
  entries_.erase(it);
}

}  // namespace shardlm
