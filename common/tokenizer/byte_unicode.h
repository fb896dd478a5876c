// GPT-2's reversible byte <-> character map, which byte-level BPE
// vocabularies ("gpt2" in GGUF) spell their tokens in.
//
// Every byte value gets a printable character so that a token of arbitrary
// bytes is still a visible string: the bytes '!'..'~', 0xA1..0xAC and
// 0xAE..0xFF map to the code point of the same value; the remaining 68
// (0x00..0x20, 0x7F..0xA0, 0xAD) map, in increasing order, to U+0100,
// U+0101, ... U+0143. So ' ' is "Ġ" (U+0120) and '\n' is "Ċ" (U+010A).
#ifndef SHARDLM_COMMON_TOKENIZER_BYTE_UNICODE_H_
#define SHARDLM_COMMON_TOKENIZER_BYTE_UNICODE_H_

#include <cstdint>
#include <string>
#include <string_view>

namespace shardlm {

// The UTF-8 spelling (1 or 2 bytes) of the character standing for `byte`.
std::string_view ByteToUnicode(uint8_t byte);

// Appends to `out` the byte-level encoding of `bytes` (each byte replaced by
// its character).
void AppendByteLevel(std::string_view bytes, std::string* out);

// The byte a code point stands for, or -1 if it stands for none.
int UnicodeToByte(uint32_t code_point);

// Decodes a byte-level token text back to its bytes (llama.cpp's
// llama_decode_text): each character becomes its byte. A character outside
// the map (a token text no GPT-2 converter would write) becomes
// "[UNK_BYTE_0x<its utf-8 in hex><the whole text>]", as llama.cpp prints it.
void AppendByteLevelDecoded(std::string_view text, std::string* out);

}  // namespace shardlm

#endif  // SHARDLM_COMMON_TOKENIZER_BYTE_UNICODE_H_
