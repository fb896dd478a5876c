// StreamDetokenizer: never emits invalid UTF-8, never holds more than one
// unfinished character, and agrees with the whole-sequence Decode.
#include "common/tokenizer/stream_detokenizer.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "common/model/gguf.h"
#include "common/tokenizer/utf8.h"
#include "tests/spm_byte_vocab.h"
#include "tests/test_data.h"

namespace shardlm {
namespace {

const std::string kFffd(kUtf8Replacement);

// 0 <unk>, 1 <s>, 2 </s>, 3..258 bytes, 259 "▁Hi", 260 "é", 261 "\xFF" as a
// NORMAL token (a broken vocabulary entry must not break the stream either).
std::unique_ptr<Tokenizer> ByteVocab() {
  Vocabulary v = testing::SpmByteVocab();
  v.tokens.insert(v.tokens.end(), {"\xE2\x96\x81Hi", "\xC3\xA9", "\xFF"});
  v.types.insert(v.types.end(), 3, TokenType::kNormal);
  v.scores.insert(v.scores.end(), 3, 0.0f);
  auto t = Tokenizer::Create(std::move(v));
  EXPECT_TRUE(t.ok()) << t.status();
  return std::move(t).value();
}

int32_t Byte(int b) { return 3 + b; }

TEST(StreamDetokenizerTest, HoldsBytesUntilTheCharacterIsComplete) {
  auto t = ByteVocab();
  StreamDetokenizer s(*t);
  // "🦙" = F0 9F A6 99, spelled as four byte tokens.
  EXPECT_EQ(s.Push(Byte(0xF0)), "");
  EXPECT_EQ(s.Push(Byte(0x9F)), "");
  EXPECT_EQ(s.Push(Byte(0xA6)), "");
  EXPECT_EQ(s.pending_bytes(), 3u);
  EXPECT_EQ(s.Push(Byte(0x99)), "\xF0\x9F\xA6\x99");
  EXPECT_EQ(s.pending_bytes(), 0u);
  EXPECT_EQ(s.Push(259), " Hi");
  EXPECT_EQ(s.Flush(), "");
}

TEST(StreamDetokenizerTest, ImpossibleBytesComeOutAsReplacementAtOnce) {
  auto t = ByteVocab();
  StreamDetokenizer s(*t);
  EXPECT_EQ(s.Push(Byte(0xFF)), kFffd);  // can never start a character
  EXPECT_EQ(s.Push(Byte(0xE2)), "");
  EXPECT_EQ(s.Push(Byte('A')), kFffd + "A");  // E2 then ASCII: E2 is dead
  EXPECT_EQ(s.Push(Byte(0x80)), kFffd);       // stray continuation byte
  EXPECT_EQ(s.Push(261), kFffd);              // an invalid NORMAL token
  EXPECT_EQ(s.Push(260), "\xC3\xA9");
}

TEST(StreamDetokenizerTest, FlushReplacesAnUnfinishedCharacter) {
  auto t = ByteVocab();
  StreamDetokenizer s(*t);
  EXPECT_EQ(s.Push(Byte(0xE2)), "");
  EXPECT_EQ(s.Push(Byte(0x82)), "");
  EXPECT_EQ(s.Flush(), kFffd);
  EXPECT_EQ(s.Flush(), "");
  EXPECT_EQ(s.Push(Byte('x')), "x");
}

TEST(StreamDetokenizerTest, LeadingSpaceRuleAndControlTokens) {
  auto t = ByteVocab();
  StreamDetokenizer start(*t, {.strip_leading_space = true});
  EXPECT_EQ(start.Push(1), "");  // BOS: nothing, rule still pending
  EXPECT_EQ(start.Push(259), "Hi");
  EXPECT_EQ(start.Push(259), " Hi");
  StreamDetokenizer continuation(*t);
  EXPECT_EQ(continuation.Push(259), " Hi");
  StreamDetokenizer special(*t, {.render_special = true});
  EXPECT_EQ(special.Push(2), "</s>");
  EXPECT_EQ(special.Push(-5), "");  // out of range: nothing, no crash
}

// Property: for random id sequences every chunk is valid UTF-8, at most 3
// bytes are ever held, and all chunks + Flush == SanitizeUtf8(Decode(ids)).
void CheckRandomSequences(const Tokenizer& t, uint32_t seed, int byte_first, int byte_count) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> any(0, t.n_vocab() - 1);
  std::uniform_int_distribution<int32_t> byte(byte_first, byte_first + byte_count - 1);
  std::uniform_int_distribution<int> length(0, 40);
  for (int round = 0; round < 3000; ++round) {
    std::vector<int32_t> ids(length(rng));
    // Mostly byte tokens: that is where broken UTF-8 comes from.
    for (int32_t& id : ids) id = rng() % 4 == 0 ? any(rng) : byte(rng);
    const DecodeOptions options{.strip_leading_space = round % 2 == 0,
                                .render_special = round % 3 == 0};
    StreamDetokenizer s(t, options);
    std::string streamed;
    for (int32_t id : ids) {
      const std::string chunk = s.Push(id);
      ASSERT_TRUE(IsValidUtf8(chunk)) << "seed " << seed << " round " << round;
      ASSERT_LE(s.pending_bytes(), 3u);
      streamed += chunk;
    }
    const std::string tail = s.Flush();
    ASSERT_TRUE(IsValidUtf8(tail));
    streamed += tail;
    ASSERT_EQ(streamed, SanitizeUtf8(t.Decode(ids, options))) << "round " << round;
  }
}

TEST(StreamDetokenizerTest, RandomSequencesSmallVocab) {
  auto t = ByteVocab();
  CheckRandomSequences(*t, 1, 3, 256);
}

TEST(StreamDetokenizerTest, RandomSequencesRealVocabularies) {
  for (const char* model : {"models/stories260K.gguf", "tokenizer/ggml-vocab-llama-spm.gguf"}) {
    auto gguf = GgufFile::Open(testing::TestDataPath(model));
    ASSERT_TRUE(gguf.ok()) << gguf.status();
    auto t = Tokenizer::FromGguf(**gguf);
    ASSERT_TRUE(t.ok()) << t.status();
    // Both vocabularies keep <0x00>..<0xFF> at ids 3..258.
    ASSERT_EQ((*t)->TokenText(3), "<0x00>");
    CheckRandomSequences(**t, 7, 3, 256);
  }
  // Byte-level BPE: ids 0..255 are the single-byte pieces (in GPT-2's
  // character order), so random runs of them split characters anywhere.
  for (const char* model :
       {"tokenizer/ggml-vocab-llama-bpe.gguf", "tokenizer/ggml-vocab-qwen2.gguf"}) {
    auto gguf = GgufFile::Open(testing::TestDataPath(model));
    ASSERT_TRUE(gguf.ok()) << gguf.status();
    auto t = Tokenizer::FromGguf(**gguf);
    ASSERT_TRUE(t.ok()) << t.status();
    for (int32_t id = 0; id < 256; ++id) ASSERT_EQ((*t)->TokenPiece(id).size(), 1u) << id;
    CheckRandomSequences(**t, 11, 0, 256);
  }
}

}  // namespace
}  // namespace shardlm
