// The vocabulary as the grammar sees it, built once per tokenizer: every
// token's decoded bytes (byte-level BPE pieces mapped back to raw bytes,
// SentencePiece "▁" to ' ', byte tokens to their byte) in a trie stored in
// depth-first order, so a mask is one linear pass that can jump over a whole
// subtree when its prefix is dead. Tokens that decode to nothing (control,
// unused) are not in the trie: end-of-generation ids are allowed separately
// when the grammar may end, the rest never.
#ifndef SHARDLM_COORDINATOR_GRAMMAR_VOCAB_TRIE_H_
#define SHARDLM_COORDINATOR_GRAMMAR_VOCAB_TRIE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/tokenizer/tokenizer.h"

namespace shardlm {

class VocabTrie {
 public:
  // One node per distinct non-empty prefix, in depth-first order (children
  // by ascending byte). Node 0 is the root (the empty prefix).
  struct Node {
    uint32_t subtree_end = 0;  // first node after this node's subtree
    uint8_t byte = 0;          // the edge from the parent
    uint16_t depth = 0;        // bytes in the prefix (the root: 0)
    int32_t token = -1;        // a token with exactly these bytes (others: extra_tokens)
  };

  static std::shared_ptr<const VocabTrie> Build(const Tokenizer& tokenizer);
  // For tests and tools: from explicit byte strings (index = token id).
  static std::shared_ptr<const VocabTrie> FromPieces(std::vector<std::string> pieces,
                                                     std::vector<int32_t> end_of_generation);

  int32_t n_vocab() const { return static_cast<int32_t>(pieces_.size()); }
  const std::vector<Node>& nodes() const { return nodes_; }
  // Tokens whose bytes equal another token's (node, token), by node.
  const std::vector<std::pair<uint32_t, int32_t>>& extra_tokens() const { return extra_; }
  const std::string& piece(int32_t token) const { return pieces_[token]; }
  const std::vector<int32_t>& end_of_generation() const { return eog_; }
  // The deepest node (longest token) — the walk's state stack size.
  int max_depth() const { return max_depth_; }

  // For the walk's shortcut: the bytes on the edges below node i (not its
  // own), and the tokens of its subtree (node i's included) as a range of
  // subtree_tokens(). Kept for nodes whose subtree holds at least
  // kSummaryMinNodes nodes (summary_index(i) < 0 for the others).
  static constexpr uint32_t kSummaryMinNodes = 32;
  struct Summary {
    uint64_t bytes[4] = {0, 0, 0, 0};
    uint32_t token_begin = 0, token_end = 0;
  };
  int32_t summary_index(uint32_t node) const { return summary_of_[node]; }
  const Summary& summary(int32_t index) const { return summaries_[index]; }
  const std::vector<int32_t>& subtree_tokens() const { return dfs_tokens_; }

 private:
  std::vector<std::string> pieces_;
  std::vector<Node> nodes_;
  std::vector<std::pair<uint32_t, int32_t>> extra_;  // sorted by node
  std::vector<int32_t> eog_;
  int max_depth_ = 0;
  std::vector<int32_t> summary_of_;  // by node
  std::vector<Summary> summaries_;
  std::vector<int32_t> dfs_tokens_;  // every token of the trie, in node order
};

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_GRAMMAR_VOCAB_TRIE_H_
