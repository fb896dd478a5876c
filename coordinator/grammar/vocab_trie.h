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

 private:
  std::vector<std::string> pieces_;
  std::vector<Node> nodes_;
  std::vector<std::pair<uint32_t, int32_t>> extra_;  // sorted by node
  std::vector<int32_t> eog_;
  int max_depth_ = 0;
};

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_GRAMMAR_VOCAB_TRIE_H_
