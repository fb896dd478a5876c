#include "common/tokenizer/bpe_tokenizer.h"

#include <algorithm>
#include <climits>
#include <utility>

#include "absl/strings/string_view.h"
#include "common/base/status_macros.h"
#include "common/tokenizer/byte_unicode.h"

namespace shardlm {
namespace {

uint64_t PairKey(int32_t left, int32_t right) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(left)) << 32) | static_cast<uint32_t>(right);
}

// Words up to this many bytes are merged by scanning for the best pair (a
// few dozen comparisons beat a heap); longer ones use the heap, so a huge
// word (a long run of one script) stays O(n log n).
constexpr size_t kSmallWord = 32;

// Words up to this many bytes are remembered within one Encode call: prose
// repeats its words, and a repeated word costs one hash lookup.
constexpr size_t kCachedWord = 48;

}  // namespace

absl::StatusOr<std::unique_ptr<BpeTokenizer>> BpeTokenizer::Create(const Vocabulary& vocab,
                                                                   const TokenMap* token_to_id) {
  ASSIGN_OR_RETURN(std::unique_ptr<PreTokenizer> pre, PreTokenizer::Create(vocab.pre));
  std::unique_ptr<BpeTokenizer> bpe(new BpeTokenizer(std::move(pre), token_to_id, vocab.size()));
  for (int b = 0; b < 256; ++b) {
    bpe->byte_symbol_[b] = bpe->Intern(std::string(ByteToUnicode(static_cast<uint8_t>(b))));
  }
  bpe->merges_.reserve(vocab.merges.size());
  std::string merged;
  for (size_t i = 0; i < vocab.merges.size() && i < static_cast<size_t>(INT32_MAX); ++i) {
    const std::string& line = vocab.merges[i];
    // llama.cpp splits at the first space after the first byte, so that a
    // merge may start with a (byte-level) space character.
    const size_t space = line.find(' ', 1);
    if (space == std::string::npos) continue;  // never matches a pair of symbols
    const std::string first = line.substr(0, space);
    const std::string second = line.substr(space + 1);
    if (second.empty()) continue;
    merged = first + second;
    const int32_t left = bpe->Intern(first);
    const int32_t right = bpe->Intern(second);
    bpe->merges_.try_emplace(PairKey(left, right),
                             Merge{static_cast<int32_t>(i), bpe->Intern(merged)});
  }
  return bpe;
}

int32_t BpeTokenizer::Lookup(std::string_view text) const {
  auto it = token_to_id_->find(absl::string_view(text.data(), text.size()));
  return it == token_to_id_->end() ? kNoToken : it->second;
}

int32_t BpeTokenizer::Intern(const std::string& text) {
  const int32_t id = Lookup(text);
  if (id != kNoToken) return id;
  auto [it, fresh] =
      extra_ids_.try_emplace(text, n_vocab_ + static_cast<int32_t>(extra_texts_.size()));
  if (fresh) extra_texts_.push_back(text);
  return it->second;
}

const BpeTokenizer::Merge* BpeTokenizer::FindMerge(int32_t left, int32_t right) const {
  auto it = merges_.find(PairKey(left, right));
  return it == merges_.end() ? nullptr : &it->second;
}

void BpeTokenizer::Encode(std::string_view text, std::vector<int32_t>* out) const {
  // word -> [offset, offset + count) in `cached`.
  absl::flat_hash_map<absl::string_view, std::pair<uint32_t, uint32_t>> cache;
  std::vector<int32_t> cached;
  pre_->Split(text, [&](std::string_view word) {
    if (word.size() > kCachedWord) {
      EncodeWord(word, out);
      return;
    }
    const absl::string_view key(word.data(), word.size());
    if (auto it = cache.find(key); it != cache.end()) {
      const auto [offset, count] = it->second;
      out->insert(out->end(), cached.begin() + offset, cached.begin() + offset + count);
      return;
    }
    const size_t before = out->size();
    EncodeWord(word, out);
    cache.emplace(key, std::make_pair(static_cast<uint32_t>(cached.size()),
                                      static_cast<uint32_t>(out->size() - before)));
    cached.insert(cached.end(), out->begin() + before, out->end());
  });
}

void BpeTokenizer::EncodeWord(std::string_view word, std::vector<int32_t>* out) const {
  if (word.empty()) return;
  if (pre_->traits().ignore_merges) {
    std::string spelled;
    spelled.reserve(word.size() * 2);
    AppendByteLevel(word, &spelled);
    const int32_t id = Lookup(spelled);
    if (id != kNoToken) {
      out->push_back(id);
      return;
    }
  }
  std::vector<int32_t> symbols(word.size());
  for (size_t i = 0; i < word.size(); ++i) {
    symbols[i] = byte_symbol_[static_cast<uint8_t>(word[i])];
  }
  if (symbols.size() <= kSmallWord) {
    MergeSmall(&symbols);
  } else {
    MergeLarge(&symbols);
  }
  for (const int32_t symbol : symbols) Emit(symbol, out);
}

void BpeTokenizer::MergeSmall(std::vector<int32_t>* symbols) const {
  std::vector<int32_t>& s = *symbols;
  // merge[i]: the merge of the pair (s[i], s[i + 1]), or {INT_MAX, -1}.
  Merge merge[kSmallWord];
  auto pair_merge = [&](size_t i) {
    const Merge* m = FindMerge(s[i], s[i + 1]);
    return m != nullptr ? *m : Merge{INT32_MAX, kNoToken};
  };
  size_t n = s.size();
  for (size_t i = 0; i + 1 < n; ++i) merge[i] = pair_merge(i);
  while (n > 1) {
    // Lowest rank; the strict < keeps the leftmost of equal ranks, which is
    // what llama.cpp's heap pops first.
    size_t best = 0;
    for (size_t i = 1; i + 1 < n; ++i) {
      if (merge[i].rank < merge[best].rank) best = i;
    }
    if (merge[best].rank == INT32_MAX) break;
    s[best] = merge[best].merged;
    s.erase(s.begin() + best + 1);
    std::copy(merge + best + 1, merge + n - 1, merge + best);
    --n;
    if (best > 0) merge[best - 1] = pair_merge(best - 1);
    if (best + 1 < n) merge[best] = pair_merge(best);
  }
}

void BpeTokenizer::MergeLarge(std::vector<int32_t>* symbols) const {
  std::vector<int32_t>& s = *symbols;
  const int32_t n = static_cast<int32_t>(s.size());
  std::vector<int32_t> prev(n), next(n);
  for (int32_t i = 0; i < n; ++i) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Candidate {
    int32_t rank;
    int32_t left;
    int32_t right;
    int32_t left_symbol;
    int32_t right_symbol;
    int32_t merged;
  };
  // Min-heap on (rank, left): llama.cpp's llm_bigram_bpe::comparator.
  auto later = [](const Candidate& a, const Candidate& b) {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  };
  std::vector<Candidate> heap;
  auto push = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const Merge* m = FindMerge(s[left], s[right]);
    if (m == nullptr) return;
    heap.push_back({m->rank, left, right, s[left], s[right], m->merged});
    std::push_heap(heap.begin(), heap.end(), later);
  };
  for (int32_t i = 0; i + 1 < n; ++i) push(i, i + 1);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), later);
    const Candidate c = heap.back();
    heap.pop_back();
    // Stale: a side was merged away (kNoToken) or grew since it was queued.
    // Symbols only grow to the right and stay adjacent while both live, so
    // equal symbols mean equal text, llama.cpp's test.
    if (s[c.left] != c.left_symbol || s[c.right] != c.right_symbol) continue;
    s[c.left] = c.merged;
    s[c.right] = kNoToken;
    next[c.left] = next[c.right];
    if (next[c.right] >= 0) prev[next[c.right]] = c.left;
    push(prev[c.left], c.left);
    push(c.left, next[c.left]);
  }
  s.erase(std::remove(s.begin(), s.end(), kNoToken), s.end());
}

void BpeTokenizer::Emit(int32_t symbol, std::vector<int32_t>* out) const {
  if (symbol < n_vocab_) {
    out->push_back(symbol);
    return;
  }
  // Not a token: llama.cpp looks up each byte of its (byte-level) text as a
  // one-character token and keeps those that exist.
  for (const char c : extra_texts_[symbol - n_vocab_]) {
    const int32_t id = Lookup(std::string_view(&c, 1));
    if (id != kNoToken) out->push_back(id);
  }
}

}  // namespace shardlm
