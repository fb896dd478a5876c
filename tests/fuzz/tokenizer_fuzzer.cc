// libFuzzer target for the tokenizer, the streaming detokenizer and the UTF-8
// helpers. Any input must be encodable without crashing; valid UTF-8 must
// round-trip; the streaming detokenizer must never emit invalid UTF-8, never
// hold more than 3 bytes, and agree with Decode + SanitizeUtf8.
//
// Input: byte 0 = option bits, the rest = text (also read as token ids).
// Bit 16 picks a byte-level BPE vocabulary instead of the SentencePiece one.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/tokenizer/byte_unicode.h"
#include "common/tokenizer/stream_detokenizer.h"
#include "common/tokenizer/tokenizer.h"
#include "common/tokenizer/utf8.h"
#include "tests/spm_byte_vocab.h"

namespace shardlm {
namespace {

void Fail(const char* what) {
  std::fprintf(stderr, "tokenizer_fuzzer: %s\n", what);
  std::abort();
}

// A small vocabulary with every feature the encoder has: byte fallback, a
// piece that ends in "▁" (merges across spaces), a multi-byte character, a
// user-defined token, an invalid-UTF-8 normal token and equal scores (ties).
std::unique_ptr<Tokenizer> MakeTokenizer() {
  const std::string s = "\xE2\x96\x81";
  Vocabulary v = testing::SpmByteVocab();
  const std::pair<std::string, float> pieces[] = {
      {s, -1},           {"a", -2},      {"b", -2},          {"c", -2},    {s + "a", -1},
      {"ab", -1},        {"abc", -0.5f}, {"a" + s, -1.5f},   {s + s, -3},  {"\xC3\xA9", -2},
      {"e\xCC\x81", -2}, {"\xFF", -4},   {s + "the", -0.1f}, {"th", -3},   {"he", -3},
      {"t", -4},         {"h", -4},      {"e", -4},          {s + "t", -3}};
  for (const auto& [text, score] : pieces) {
    v.tokens.push_back(text);
    v.types.push_back(TokenType::kNormal);
    v.scores.push_back(score);
  }
  v.tokens.push_back("<tool>");
  v.types.push_back(TokenType::kUserDefined);
  v.scores.push_back(0);
  auto t = Tokenizer::Create(std::move(v));
  if (!t.ok()) Fail("cannot build the vocabulary");
  return std::move(t).value();
}

// Byte-level BPE (Qwen2 pre-tokenizer): the 256 byte characters, merges
// with a result that is not a token, ties, a space merge, a control token.
std::unique_ptr<Tokenizer> MakeBpeTokenizer() {
  Vocabulary v;
  v.model = "gpt2";
  v.pre = "qwen2";
  for (int b = 0; b < 256; ++b) v.tokens.emplace_back(ByteToUnicode(static_cast<uint8_t>(b)));
  for (const char* extra : {"aa", "ab",
                            "\xC4\xA0"
                            "a",
                            "\xC3\x83\xC2\xA9", "\xC4\xA0\xC4\xA0"}) {
    v.tokens.push_back(extra);
  }
  v.tokens.push_back("<|endoftext|>");
  v.types.assign(v.tokens.size(), TokenType::kNormal);
  v.types.back() = TokenType::kControl;
  v.merges = {"a a", "a b", "\xC4\xA0 a", "\xC3\x83 \xC2\xA9", "b c", "\xC4\xA0 \xC4\xA0"};
  v.bos_id = v.eos_id = v.size() - 1;
  v.unk_id = kNoToken;
  v.add_bos = false;
  v.add_space_prefix = false;
  auto t = Tokenizer::Create(std::move(v));
  if (!t.ok()) Fail("cannot build the BPE vocabulary");
  return std::move(t).value();
}

void CheckStream(const Tokenizer& t, const std::vector<int32_t>& ids, DecodeOptions options) {
  StreamDetokenizer stream(t, options);
  std::string streamed;
  for (const int32_t id : ids) {
    const std::string chunk = stream.Push(id);
    if (!IsValidUtf8(chunk)) Fail("Push returned invalid UTF-8");
    if (stream.pending_bytes() > 3) Fail("more than 3 bytes held back");
    streamed += chunk;
  }
  const std::string tail = stream.Flush();
  if (!IsValidUtf8(tail)) Fail("Flush returned invalid UTF-8");
  if (streamed + tail != SanitizeUtf8(t.Decode(ids, options))) {
    Fail("stream differs from SanitizeUtf8(Decode)");
  }
}

}  // namespace
}  // namespace shardlm

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace shardlm;
  static const Tokenizer* const spm = MakeTokenizer().release();
  static const Tokenizer* const bpe = MakeBpeTokenizer().release();
  if (size == 0) return 0;
  const uint8_t flags = data[0];
  const Tokenizer& t = (flags & 16) ? *bpe : *spm;
  const std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  const bool add_bos = flags & 1;
  const bool parse_special = flags & 2;
  const DecodeOptions options{.strip_leading_space = (flags & 4) != 0,
                              .render_special = (flags & 8) != 0};

  // Encode any bytes; every id must be in range.
  const std::vector<int32_t> ids = t.Encode(text, add_bos, parse_special);
  if (!t.CheckIds(ids).ok()) Fail("Encode produced an invalid id");
  // Round trip for valid UTF-8 without a literal "▁" or user-defined token
  // text (see tokenizer.h); byte-level BPE round-trips any valid UTF-8.
  if (!parse_special && IsValidUtf8(text) &&
      (t.is_byte_level() || (text.find("\xE2\x96\x81") == std::string_view::npos &&
                             text.find("<tool>") == std::string_view::npos)) &&
      t.Decode(ids, {.strip_leading_space = true}) != text) {
    Fail("Decode(Encode(text)) != text");
  }
  CheckStream(t, ids, options);

  // The same bytes as arbitrary token ids (two bytes each, some out of range).
  std::vector<int32_t> raw_ids;
  for (size_t i = 0; i + 1 < text.size(); i += 2) {
    const int v = static_cast<uint8_t>(text[i]) | (static_cast<uint8_t>(text[i + 1]) << 8);
    raw_ids.push_back(v % (t.n_vocab() + 2) - 1);
  }
  CheckStream(t, raw_ids, options);

  // The UTF-8 validator on the raw bytes: only a possible character's prefix
  // (at most 3 bytes) may be left unconsumed.
  std::string out;
  const size_t consumed = AppendValidUtf8(text, /*final=*/false, &out);
  if (consumed + 3 < text.size() || !IsValidUtf8(out)) Fail("AppendValidUtf8 contract");
  return 0;
}
