#include "coordinator/grammar/vocab_trie.h"

#include <algorithm>
#include <numeric>
#include <utility>

namespace shardlm {

// Pieces longer than this (none in real vocabularies) are left out of the
// trie, so they are never allowed under a grammar.
static constexpr size_t kMaxPieceBytes = 65535;

std::shared_ptr<const VocabTrie> VocabTrie::Build(const Tokenizer& tokenizer) {
  std::vector<std::string> pieces(tokenizer.n_vocab());
  for (int32_t id = 0; id < tokenizer.n_vocab(); ++id) {
    pieces[id] = tokenizer.TokenPiece(id, /*render_special=*/false);
  }
  return FromPieces(std::move(pieces), tokenizer.EndOfGenerationIds());
}

std::shared_ptr<const VocabTrie> VocabTrie::FromPieces(std::vector<std::string> pieces,
                                                       std::vector<int32_t> end_of_generation) {
  auto trie = std::shared_ptr<VocabTrie>(new VocabTrie());
  trie->pieces_ = std::move(pieces);
  trie->eog_ = std::move(end_of_generation);
  // End-of-generation tokens are allowed by the grammar's end, never by
  // their text (the engine emits none for them).
  for (int32_t t : trie->eog_) {
    if (t >= 0 && t < static_cast<int32_t>(trie->pieces_.size())) trie->pieces_[t].clear();
  }
  const std::vector<std::string>& p = trie->pieces_;
  std::vector<int32_t> order;
  for (int32_t id = 0; id < static_cast<int32_t>(p.size()); ++id) {
    if (!p[id].empty() && p[id].size() <= kMaxPieceBytes) order.push_back(id);
  }
  // std::string compares bytes as unsigned char: children come out by
  // ascending byte.
  std::stable_sort(order.begin(), order.end(),
                   [&](int32_t a, int32_t b) { return p[a] < p[b]; });

  std::vector<Node>& nodes = trie->nodes_;
  nodes.push_back(Node{});
  std::vector<uint32_t> path{0};  // path[d]: the node of depth d on the current prefix
  const std::string* prev = nullptr;
  for (int32_t id : order) {
    const std::string& s = p[id];
    size_t common = 0;
    if (prev != nullptr) {
      const size_t n = std::min(prev->size(), s.size());
      while (common < n && (*prev)[common] == s[common]) ++common;
    }
    while (path.size() > common + 1) {
      nodes[path.back()].subtree_end = static_cast<uint32_t>(nodes.size());
      path.pop_back();
    }
    for (size_t d = common; d < s.size(); ++d) {
      Node n;
      n.byte = static_cast<uint8_t>(s[d]);
      n.depth = static_cast<uint16_t>(d + 1);
      path.push_back(static_cast<uint32_t>(nodes.size()));
      nodes.push_back(n);
    }
    Node& leaf = nodes[path.back()];
    if (leaf.token < 0) {
      leaf.token = id;
    } else {
      trie->extra_.push_back({path.back(), id});
    }
    trie->max_depth_ = std::max(trie->max_depth_, static_cast<int>(s.size()));
    prev = &s;
  }
  while (!path.empty()) {
    nodes[path.back()].subtree_end = static_cast<uint32_t>(nodes.size());
    path.pop_back();
  }
  // Tokens in node order, and where each node's tokens start.
  std::vector<uint32_t> first_token(nodes.size() + 1, 0);
  {
    size_t e = 0;
    for (uint32_t i = 0; i < nodes.size(); ++i) {
      first_token[i] = static_cast<uint32_t>(trie->dfs_tokens_.size());
      if (nodes[i].token >= 0) trie->dfs_tokens_.push_back(nodes[i].token);
      for (; e < trie->extra_.size() && trie->extra_[e].first == i; ++e) {
        trie->dfs_tokens_.push_back(trie->extra_[e].second);
      }
    }
    first_token[nodes.size()] = static_cast<uint32_t>(trie->dfs_tokens_.size());
  }
  // Summaries of the large subtrees: their edge bytes, by one pass over
  // each (nodes are few enough: only subtrees of kSummaryMinNodes or more).
  trie->summary_of_.assign(nodes.size(), -1);
  for (uint32_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].subtree_end - i < kSummaryMinNodes) continue;
    Summary sum;
    for (uint32_t j = i + 1; j < nodes[i].subtree_end; ++j) {
      sum.bytes[nodes[j].byte >> 6] |= uint64_t{1} << (nodes[j].byte & 63);
    }
    sum.token_begin = first_token[i];
    sum.token_end = first_token[nodes[i].subtree_end];
    trie->summary_of_[i] = static_cast<int32_t>(trie->summaries_.size());
    trie->summaries_.push_back(sum);
  }
  return trie;
}

}  // namespace shardlm
