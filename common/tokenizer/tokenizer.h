// Text <-> token ids for "llama" (SentencePiece BPE) and "gpt2" (byte-level
// BPE: Llama 3, Qwen) vocabularies, matching llama.cpp's tokenizer id for id.
//
// Encoding, both types:
//  1. Special-token text is cut out first (special_tokens.h). User-defined
//     tokens are always recognised; control and unknown tokens (`<s>`,
//     `</s>`, `<|im_start|>`, `<|eot_id|>`) only when `parse_special` is set.
//     Longer token texts win.
// Each text fragment between special tokens is then encoded on its own:
// byte-level BPE vocabularies as bpe_tokenizer.h describes (pre-tokenizer
// regex, then merges by rank), SentencePiece ones as follows
// (llama.cpp `llm_tokenizer_spm` semantics):
//  2. Each remaining text fragment that starts the input or follows a special
//     token gets one space prepended (`add_space_prefix`, SentencePiece's dummy
//     prefix); every ' ' becomes "▁" (U+2581). No whitespace is collapsed.
//  3. The fragment is split into characters (lead-byte length, as llama.cpp),
//     and adjacent pairs whose concatenation is a token are merged, highest
//     token score first, leftmost first on ties, until no pair is a token.
//  4. A final symbol that is not a token is emitted as its bytes' `<0xXX>`
//     tokens (byte fallback), or as the unknown token if those are missing.
//
// Decoding: a normal token's text with "▁" turned into ' ' (byte-level BPE:
// each character turned back into its byte, so a piece may be part of a
// UTF-8 character); a byte token its one byte; user-defined and unknown
// tokens their text; control tokens (BOS/EOS, <|eot_id|>) nothing unless
// `render_special`; unused tokens nothing.
//
// Leading-space rule (our rule, documented once here): for SentencePiece
// vocabularies that add the dummy prefix, with `strip_leading_space`, the
// first token that decodes to a non-empty piece loses ONE leading ' '.
// Control tokens before it (BOS) decode to nothing and are skipped over. This undoes the dummy
// prefix of step 2, so
//   Decode(Encode(s, add_bos, /*parse_special=*/false), {strip}) == s
// for any valid UTF-8 s without a literal "▁" (SentencePiece cannot tell it
// from ' ') and without user-defined token text (the text after such a token
// gets a dummy prefix, as in llama.cpp). Invalid UTF-8 round-trips too,
// except that an invalid lead byte right before a space swallows its "▁" in
// llama.cpp's character split, which we copy to keep the ids identical.
// It is llama2.c's "strip the space after BOS" and llama.cpp's
// `remove_space` with the difference that llama.cpp only ever looks at the
// very first token. Use it when decoding from the start of a sequence, never
// for a continuation (generated text after a prompt keeps its space).
// Byte-level BPE adds no prefix, so there the option changes nothing and
// Decode(Encode(s, add_bos, false)) == s for any valid UTF-8 s (invalid
// UTF-8 is encoded as U+FFFD, as llama.cpp does).
#ifndef SHARDLM_COMMON_TOKENIZER_TOKENIZER_H_
#define SHARDLM_COMMON_TOKENIZER_TOKENIZER_H_

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/tokenizer/bpe_tokenizer.h"
#include "common/tokenizer/special_tokens.h"
#include "common/tokenizer/vocabulary.h"

namespace shardlm {

class GgufFile;

struct DecodeOptions {
  // See the leading-space rule above.
  bool strip_leading_space = false;
  // Control tokens (`<s>`, `</s>`) decode to their text instead of nothing.
  bool render_special = false;
};

class Tokenizer {
 public:
  // Validates the vocabulary (non-empty, consistent lengths, special ids in
  // range) and builds the lookup tables. UNIMPLEMENTED, naming it, for a
  // `model` other than "llama" and "gpt2" or a "gpt2" pre-tokenizer we do
  // not have.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> Create(Vocabulary vocab);
  // Vocabulary::FromGguf + Create.
  static absl::StatusOr<std::unique_ptr<Tokenizer>> FromGguf(const GgufFile& gguf);

  Tokenizer(const Tokenizer&) = delete;
  Tokenizer& operator=(const Tokenizer&) = delete;

  // Token ids of `text`. With `add_bos`, adds BOS if the vocabulary's
  // add_bos_token flag is set (the default) and EOS at the end if its
  // add_eos_token flag is set — llama.cpp's `add_special`. Any bytes are
  // accepted (invalid UTF-8 falls back to byte tokens). Thread-safe.
  std::vector<int32_t> Encode(std::string_view text, bool add_bos, bool parse_special) const;

  // The decoded bytes of one token (see "Decoding" above); empty for an
  // out-of-range id. May be an incomplete UTF-8 character (byte tokens).
  std::string TokenPiece(int32_t id, bool render_special = false) const;
  // The token's text as stored in the vocabulary ("▁Hello", "<0x0A>", "<s>").
  const std::string& TokenText(int32_t id) const;
  TokenType token_type(int32_t id) const;
  float token_score(int32_t id) const;

  // Concatenated pieces, raw bytes (may be invalid UTF-8 for arbitrary ids:
  // pass through SanitizeUtf8 before sending as text). Out-of-range ids are
  // skipped: check untrusted ids with CheckIds first.
  std::string Decode(absl::Span<const int32_t> ids, const DecodeOptions& options = {}) const;
  // INVALID_ARGUMENT naming the first id outside [0, n_vocab).
  absl::Status CheckIds(absl::Span<const int32_t> ids) const;

  int n_vocab() const { return vocab_.size(); }
  int32_t bos_id() const { return vocab_.bos_id; }
  int32_t eos_id() const { return vocab_.eos_id; }
  int32_t unk_id() const { return vocab_.unk_id; }
  bool add_bos() const { return vocab_.add_bos; }
  bool add_eos() const { return vocab_.add_eos; }
  bool add_space_prefix() const { return vocab_.add_space_prefix; }
  // Whether DecodeOptions::strip_leading_space does anything: only for
  // SentencePiece vocabularies with the dummy prefix.
  bool strips_leading_space() const { return strips_leading_space_; }
  // True for "gpt2" (byte-level BPE) vocabularies.
  bool is_byte_level() const { return bpe_ != nullptr; }
  // EOS, EOT, EOM and the end-of-turn tokens llama.cpp finds by text
  // (<|eot_id|>, <|im_end|>, <|endoftext|>, ...; special_tokens.h) end a
  // generation.
  bool IsEndOfGeneration(int32_t id) const;
  // Those ids, ascending.
  std::vector<int32_t> EndOfGenerationIds() const;
  bool IsValidId(int32_t id) const { return id >= 0 && id < vocab_.size(); }
  const Vocabulary& vocabulary() const { return vocab_; }

 private:
  explicit Tokenizer(Vocabulary vocab) : vocab_(std::move(vocab)) {}
  absl::Status Init();

  // Steps 2-4 of the SentencePiece encoder for one text fragment.
  void EncodeFragment(std::string_view text, bool add_prefix, std::vector<int32_t>* out) const;
  int32_t LookupToken(std::string_view text) const;

  Vocabulary vocab_;
  // Text -> id; the last id wins on duplicate texts, as in llama.cpp.
  absl::flat_hash_map<std::string, int32_t> token_to_id_;
  // `<0xXX>` token of each byte, or kNoToken.
  std::array<int32_t, 256> byte_to_token_;
  // Byte value of each byte-type token (decoding), -1 for other tokens.
  std::vector<int16_t> token_byte_;
  SpecialTokens special_;
  // Set for byte-level BPE vocabularies.
  std::unique_ptr<BpeTokenizer> bpe_;
  // The leading-space rule applies (SentencePiece with the dummy prefix).
  bool strips_leading_space_ = false;
  size_t max_token_bytes_ = 0;
  // Symbols X (their 1-4 bytes packed with the length) such that some token
  // contains X followed by "▁". Before any other "▁" no merge can ever
  // cross, so the encoder may process the words between such points
  // independently — the same result as one pass over the whole text, with a
  // small heap per word instead of one the size of the text.
  absl::flat_hash_set<uint64_t> joins_before_space_;
};

}  // namespace shardlm

#endif  // SHARDLM_COMMON_TOKENIZER_TOKENIZER_H_
