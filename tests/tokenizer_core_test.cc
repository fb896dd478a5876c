// The SentencePiece encoder and the decoder on small in-memory vocabularies,
// where every expected id can be worked out by hand.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "common/tokenizer/tokenizer.h"

namespace shardlm {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Ids: 0 <unk>, 1 <s>, 2 </s>, 3..258 <0x00>..<0xFF>, then `pieces` in order.
Vocabulary SmallVocab(const std::vector<std::pair<std::string, float>>& pieces) {
  Vocabulary v;
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.types = {TokenType::kUnknown, TokenType::kControl, TokenType::kControl};
  v.scores = {0, 0, 0};
  for (int b = 0; b < 256; ++b) {
    v.tokens.push_back(absl::StrFormat("<0x%02X>", b));
    v.types.push_back(TokenType::kByte);
    v.scores.push_back(0);
  }
  for (const auto& [text, score] : pieces) {
    v.tokens.push_back(text);
    v.types.push_back(TokenType::kNormal);
    v.scores.push_back(score);
  }
  return v;
}

constexpr int32_t kFirst = 259;  // id of the first piece
int32_t Byte(int b) { return 3 + b; }

std::unique_ptr<Tokenizer> Make(Vocabulary v) {
  auto t = Tokenizer::Create(std::move(v));
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(t).value() : nullptr;
}

// "▁" spelled out, to keep the tables readable.
const std::string kS = "\xE2\x96\x81";

TEST(TokenizerCoreTest, MergesHighestScoreFirst) {
  auto t = Make(SmallVocab(
      {{kS, -5}, {"a", -5}, {"b", -5}, {"c", -5}, {kS + "a", -1}, {"bc", -2}, {"ab", -0.5}}));
  // "▁abc": ab (-0.5) is the best pair and merges first; that makes the
  // queued ▁a and bc stale, and neither "▁ab" nor "abc" is a token.
  EXPECT_THAT(t->Encode("abc", false, false), ElementsAre(kFirst + 0, kFirst + 6, kFirst + 3));
}

TEST(TokenizerCoreTest, TiesGoToTheLeftmostPair) {
  auto t = Make(SmallVocab({{kS, -5}, {"a", -5}, {"aa", -1}}));
  // "▁aaa": pairs (a,a) at 1 and at 2 tie; the left one merges first.
  EXPECT_THAT(t->Encode("aaa", false, false), ElementsAre(kFirst, kFirst + 2, kFirst + 1));
}

TEST(TokenizerCoreTest, DummyPrefixAndSpacesBecomeMarkers) {
  auto t = Make(SmallVocab({{kS, -5}, {"a", -5}, {kS + "a", -1}, {kS + kS, -2}}));
  EXPECT_THAT(t->Encode("a a", false, false), ElementsAre(kFirst + 2, kFirst + 2));
  // " a" -> "▁▁a": ▁a (-1) wins over ▁▁ (-2).
  EXPECT_THAT(t->Encode(" a", false, false), ElementsAre(kFirst, kFirst + 2));
  EXPECT_THAT(t->Encode("", true, false), ElementsAre(1));
  EXPECT_THAT(t->Encode("", false, false), ElementsAre());
}

TEST(TokenizerCoreTest, ByteFallbackForUnknownCharacters) {
  auto t = Make(SmallVocab({{kS, -5}}));
  // "é" = C3 A9 is not in the vocabulary: two byte tokens.
  EXPECT_THAT(t->Encode("\xC3\xA9", false, false), ElementsAre(kFirst, Byte(0xC3), Byte(0xA9)));
  // Invalid UTF-8 is accepted and kept byte for byte.
  EXPECT_THAT(t->Encode("\xFF", false, false), ElementsAre(kFirst, Byte(0xFF)));
  EXPECT_EQ(t->Decode(t->Encode("x\xFF\x80", true, false), {.strip_leading_space = true}),
            "x\xFF\x80");
  // llama.cpp's symbol split trusts the lead byte: FF claims 4 bytes and
  // swallows the following "▁", which then decodes as "▁", not ' '. We keep
  // this quirk so ids match llama.cpp exactly.
  EXPECT_THAT(t->Encode("\xFF x", false, false),
              ElementsAre(kFirst, Byte(0xFF), Byte(0xE2), Byte(0x96), Byte(0x81), Byte('x')));
}

TEST(TokenizerCoreTest, SpecialTokensOnlyWhenAsked) {
  auto t = Make(SmallVocab({{kS, -5}, {"a", -5}, {kS + "a", -1}}));
  // Without parse_special, "</s>" is plain text: bytes for < / s >.
  const std::vector<int32_t> plain = t->Encode("a</s>a", false, false);
  EXPECT_EQ(std::count(plain.begin(), plain.end(), 2), 0);
  // With it, the token is cut out and the text after it gets a dummy prefix.
  EXPECT_THAT(t->Encode("a</s>a", false, true), ElementsAre(kFirst + 2, 2, kFirst + 2));
  EXPECT_THAT(t->Encode("</s>", true, true), ElementsAre(1, 2));
}

TEST(TokenizerCoreTest, UserDefinedTokensAreAlwaysParsed) {
  Vocabulary v = SmallVocab({{kS, -5}, {"a", -5}, {kS + "a", -1}, {"<tool>", 0}});
  v.types.back() = TokenType::kUserDefined;
  auto t = Make(std::move(v));
  EXPECT_THAT(t->Encode("a<tool>", false, false), ElementsAre(kFirst + 2, kFirst + 3));
  EXPECT_EQ(t->TokenPiece(kFirst + 3), "<tool>");
}

TEST(TokenizerCoreTest, AddBosAndEosFollowTheVocabularyFlags) {
  Vocabulary v = SmallVocab({{kS, -5}, {"a", -5}, {kS + "a", -1}});
  v.add_bos = false;
  v.add_eos = true;
  auto t = Make(std::move(v));
  EXPECT_THAT(t->Encode("a", true, false), ElementsAre(kFirst + 2, 2));
  EXPECT_THAT(t->Encode("a", false, false), ElementsAre(kFirst + 2));
}

TEST(TokenizerCoreTest, DecodeRules) {
  auto t = Make(SmallVocab({{kS, -5}, {"a", -5}, {kS + "a", -1}}));
  const std::vector<int32_t> ids = {1, kFirst + 2, kFirst + 2, Byte('!'), 2};
  EXPECT_EQ(t->Decode(ids), " a a!");
  EXPECT_EQ(t->Decode(ids, {.strip_leading_space = true}), "a a!");
  EXPECT_EQ(t->Decode(ids, {.strip_leading_space = true, .render_special = true}), "<s> a a!</s>");
  EXPECT_EQ(t->TokenPiece(0), "<unk>");
  EXPECT_EQ(t->TokenPiece(Byte(0xFF)), "\xFF");
  EXPECT_EQ(t->TokenPiece(-1), "");
  EXPECT_EQ(t->TokenPiece(100000), "");
  EXPECT_EQ(t->TokenText(kFirst + 2), kS + "a");
}

TEST(TokenizerCoreTest, EndOfGenerationAndIdChecks) {
  auto t = Make(SmallVocab({{kS, -5}}));
  EXPECT_TRUE(t->IsEndOfGeneration(2));
  EXPECT_FALSE(t->IsEndOfGeneration(1));
  EXPECT_FALSE(t->IsEndOfGeneration(-1));
  EXPECT_TRUE(t->CheckIds(std::vector<int32_t>{0, 1, kFirst}).ok());
  const absl::Status bad = t->CheckIds(std::vector<int32_t>{1, 99999});
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.message()), HasSubstr("99999"));
}

TEST(TokenizerCoreTest, EndOfTurnTextsAsLlamaCppFindsThem) {
  // Types as a converter might have left them; llama.cpp fixes them by text.
  Vocabulary v = SmallVocab({{"<|im_end|>", 0},
                             {"<｜end▁of▁sentence｜>", 0},
                             {"<｜fim▁begin｜>", 0},
                             {"<|fim_pad|>", 0},
                             {"<|im_start|>", 0}});
  auto t = Make(std::move(v));
  EXPECT_EQ(t->vocabulary().eot_id, kFirst);  // found by text
  EXPECT_TRUE(t->IsEndOfGeneration(kFirst));
  EXPECT_TRUE(t->IsEndOfGeneration(kFirst + 1));
  EXPECT_FALSE(t->IsEndOfGeneration(kFirst + 2));
  EXPECT_TRUE(t->IsEndOfGeneration(kFirst + 3));
  EXPECT_FALSE(t->IsEndOfGeneration(kFirst + 4));
  for (int32_t id : {kFirst, kFirst + 1, kFirst + 2, kFirst + 3}) {
    EXPECT_EQ(t->token_type(id), TokenType::kControl) << id;
  }
  EXPECT_EQ(t->token_type(kFirst + 4), TokenType::kNormal);
  EXPECT_THAT(t->EndOfGenerationIds(), ElementsAre(2, kFirst, kFirst + 1, kFirst + 3));
}

TEST(TokenizerCoreTest, RefusesOtherModelsByName) {
  Vocabulary v = SmallVocab({});
  v.model = "bert";
  auto t = Tokenizer::Create(std::move(v));
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("\"bert\""));
}

TEST(TokenizerCoreTest, RefusesInconsistentVocabularies) {
  Vocabulary v = SmallVocab({});
  v.scores.pop_back();
  EXPECT_EQ(Tokenizer::Create(v).status().code(), absl::StatusCode::kInvalidArgument);
  Vocabulary w = SmallVocab({});
  w.bos_id = 5000;
  EXPECT_EQ(Tokenizer::Create(w).status().code(), absl::StatusCode::kInvalidArgument);
  Vocabulary x = SmallVocab({});
  x.tokens[10] = "<0xZZ>";
  EXPECT_EQ(Tokenizer::Create(x).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(Tokenizer::Create(Vocabulary{}).ok());
}

TEST(TokenizerCoreTest, MergesMayCrossSpacesWhenAVocabularyAllowsIt) {
  // "a▁" is a token: the encoder must not treat "▁b" as a separate word.
  auto t = Make(SmallVocab({{kS, -5}, {"a", -5}, {"b", -5}, {"a" + kS, -1}, {kS + "b", -2}}));
  // "▁a▁b": a▁ (-1) beats ▁b (-2), leaving ▁, a▁, b.
  EXPECT_THAT(t->Encode("a b", false, false), ElementsAre(kFirst, kFirst + 3, kFirst + 2));
}

}  // namespace
}  // namespace shardlm
