// Byte-level BPE ("gpt2" vocabularies: Llama 3, Qwen), matching llama.cpp's
// llm_tokenizer_bpe_session id for id.
//
// For each word of the pre-tokenizer:
//  1. With `ignore_merges` (Llama 3), a word whose byte-level spelling is a
//     token is that token.
//  2. Otherwise the word starts as one symbol per byte (the byte's GPT-2
//     character, byte_unicode.h) and the adjacent pair whose merge has the
//     lowest rank (its line in `tokenizer.ggml.merges`) is merged, leftmost
//     first on ties, until no adjacent pair has a merge.
//  3. Each final symbol is its token; a symbol that is not a token (only
//     possible with merges or bytes missing from the vocabulary) becomes the
//     tokens of its one-byte pieces that exist, as llama.cpp does.
// Symbols are token ids and merges a table (left id, right id) -> (rank,
// merged id), so no string is built per merge. Texts that merges produce
// but the vocabulary lacks get ids past the vocabulary, kept for step 3.
#ifndef SHARDLM_COMMON_TOKENIZER_BPE_TOKENIZER_H_
#define SHARDLM_COMMON_TOKENIZER_BPE_TOKENIZER_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "common/tokenizer/pre_tokenizer.h"
#include "common/tokenizer/vocabulary.h"

namespace shardlm {

class BpeTokenizer {
 public:
  using TokenMap = absl::flat_hash_map<std::string, int32_t>;

  // `token_to_id` (text -> id of every token) must outlive the tokenizer.
  // Fails if the pre-tokenizer `vocab.pre` is not supported.
  static absl::StatusOr<std::unique_ptr<BpeTokenizer>> Create(const Vocabulary& vocab,
                                                              const TokenMap* token_to_id);

  // Appends the ids of `text`, a run of text between special tokens.
  void Encode(std::string_view text, std::vector<int32_t>* out) const;

  // Step 2-3 for one word (exposed for tests): the merges of `word`'s bytes.
  void EncodeWord(std::string_view word, std::vector<int32_t>* out) const;

  const PreTokenizer& pre_tokenizer() const { return *pre_; }

 private:
  struct Merge {
    int32_t rank;
    int32_t merged;  // id of the merged symbol
  };

  BpeTokenizer(std::unique_ptr<PreTokenizer> pre, const TokenMap* token_to_id, int32_t n_vocab)
      : pre_(std::move(pre)), token_to_id_(token_to_id), n_vocab_(n_vocab) {}

  // Id of a symbol text: its token, or an id past the vocabulary.
  int32_t Intern(const std::string& text);
  int32_t Lookup(std::string_view text) const;
  const Merge* FindMerge(int32_t left, int32_t right) const;
  void MergeSmall(std::vector<int32_t>* symbols) const;
  void MergeLarge(std::vector<int32_t>* symbols) const;
  void Emit(int32_t symbol, std::vector<int32_t>* out) const;

  std::unique_ptr<PreTokenizer> pre_;
  const TokenMap* token_to_id_;
  int32_t n_vocab_;
  // Symbol of each byte value.
  std::array<int32_t, 256> byte_symbol_{};
  // (left << 32 | right) -> merge; the first line wins on duplicates.
  absl::flat_hash_map<uint64_t, Merge> merges_;
  // Texts of the symbols past the vocabulary (id n_vocab_ + index).
  std::vector<std::string> extra_texts_;
  absl::flat_hash_map<std::string, int32_t> extra_ids_;
};

}  // namespace shardlm

#endif  // SHARDLM_COMMON_TOKENIZER_BPE_TOKENIZER_H_
