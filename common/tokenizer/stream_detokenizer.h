// Token-by-token detokenization for streaming generated text to a client.
//
// A SentencePiece vocabulary spells rare characters as several byte tokens
// (`<0xE2><0x96><0x81>`), and a byte-level BPE one may split a character's
// bytes over tokens (Llama 3, Qwen), so a single token's piece can be part of
// a UTF-8 character. Push() returns only complete, valid UTF-8: bytes of a character
// still being spelled are held back (at most 3) until it completes. Bytes that
// can never become valid (a lone 0xFF, a continuation byte without a lead, a
// lead byte followed by a non-continuation) come out at once as U+FFFD, one
// per maximal invalid subpart, so the stream never stalls. Flush() at the end
// of the stream turns a held, unfinished character into U+FFFD.
//
// Invariant (tested): the concatenation of every Push() and the final Flush()
// equals SanitizeUtf8(tokenizer.Decode(ids, same options)), and each returned
// string is valid UTF-8 on its own.
#ifndef SHARDLM_COMMON_TOKENIZER_STREAM_DETOKENIZER_H_
#define SHARDLM_COMMON_TOKENIZER_STREAM_DETOKENIZER_H_

#include <cstdint>
#include <string>

#include "common/tokenizer/tokenizer.h"

namespace shardlm {

class StreamDetokenizer {
 public:
  // `tokenizer` must outlive this object. Set options.strip_leading_space
  // only when the stream starts at the beginning of a sequence (e.g. right
  // after BOS), see the leading-space rule in tokenizer.h.
  explicit StreamDetokenizer(const Tokenizer& tokenizer, DecodeOptions options = {})
      : tokenizer_(&tokenizer),
        options_(options),
        strip_(options.strip_leading_space && tokenizer.strips_leading_space()) {}

  // Text completed by token `id`: possibly empty, always valid UTF-8.
  // Out-of-range ids decode to nothing.
  std::string Push(int32_t id);

  // Everything still held, as U+FFFD; resets the held bytes. Call once at
  // the end of the stream (finish, stop, cancel, deadline).
  std::string Flush();

  // Bytes held back, waiting for the rest of a character (0..3).
  size_t pending_bytes() const { return pending_.size(); }

 private:
  const Tokenizer* tokenizer_;
  DecodeOptions options_;
  bool strip_;           // the leading-space rule still applies
  std::string pending_;  // an incomplete but still possible character
};

}  // namespace shardlm

#endif  // SHARDLM_COMMON_TOKENIZER_STREAM_DETOKENIZER_H_
