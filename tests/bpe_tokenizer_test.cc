// Byte-level BPE on small in-memory vocabularies (each expected id worked
// out by hand), and the merge loop against a literal port of llama.cpp's
// llm_tokenizer_bpe_session on the real Qwen vocabulary.
#include "common/tokenizer/bpe_tokenizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <queue>
#include <random>
#include <string>
#include <vector>

#include "common/model/gguf.h"
#include "common/model/gguf_writer.h"
#include "common/tokenizer/byte_unicode.h"
#include "common/tokenizer/pre_tokenizer.h"
#include "common/tokenizer/stream_detokenizer.h"
#include "common/tokenizer/tokenizer.h"
#include "common/tokenizer/utf8.h"
#include "tests/test_data.h"

namespace shardlm {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Ids 0..255: the GPT-2 character of each byte; then `extra` tokens; then
// <|endoftext|> (control, EOS) last.
Vocabulary ByteVocab(const std::vector<std::string>& extra, const std::vector<std::string>& merges,
                     const std::string& pre = "qwen2") {
  Vocabulary v;
  v.model = "gpt2";
  v.pre = pre;
  for (int b = 0; b < 256; ++b) v.tokens.emplace_back(ByteToUnicode(static_cast<uint8_t>(b)));
  for (const std::string& e : extra) v.tokens.push_back(e);
  v.tokens.push_back("<|endoftext|>");
  v.types.assign(v.tokens.size(), TokenType::kNormal);
  v.types.back() = TokenType::kControl;
  v.merges = merges;
  v.bos_id = v.eos_id = v.size() - 1;
  v.unk_id = kNoToken;
  v.add_bos = false;
  v.add_space_prefix = false;
  return v;
}

std::unique_ptr<Tokenizer> Make(Vocabulary v) {
  auto t = Tokenizer::Create(std::move(v));
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(t).value() : nullptr;
}

TEST(BpeTokenizerTest, LowestRankMergesFirstAndTiesGoLeft) {
  // "aaa": the two (a, a) pairs tie; the left one merges.
  auto t = Make(ByteVocab({"aa", "bc", "ab"}, {"a a", "b c", "a b"}));
  EXPECT_THAT(t->Encode("aaa", false, false), ElementsAre(256, 'a'));
  // "abc": "b c" (rank 1) beats "a b" (rank 2) although it is further right.
  EXPECT_THAT(t->Encode("abc", false, false), ElementsAre('a', 257));
}

TEST(BpeTokenizerTest, WordsAreMergedSeparately) {
  auto t = Make(ByteVocab({"aa", "Ġa"}, {"a a", "Ġ a"}));
  // Qwen2's pre-tokenizer: "aa", " a" ("Ġa"), ",": no merge crosses words.
  EXPECT_THAT(t->Encode("aa a,", false, false), ElementsAre(256, 257, ','));
}

TEST(BpeTokenizerTest, IgnoreMergesTakesWholeWordTokens) {
  // "abc" is a token that no merge reaches.
  EXPECT_THAT(Make(ByteVocab({"abc"}, {}, "qwen2"))->Encode("abc", false, false),
              ElementsAre('a', 'b', 'c'));
  EXPECT_THAT(Make(ByteVocab({"abc"}, {}, "llama-bpe"))->Encode("abc", false, false),
              ElementsAre(256));
}

TEST(BpeTokenizerTest, MergedTextThatIsNotATokenFallsBackToItsBytes) {
  // "a b" merges to "ab", which the vocabulary lacks: llama.cpp emits the
  // one-character tokens of its text.
  auto t = Make(ByteVocab({}, {"a b"}));
  EXPECT_THAT(t->Encode("ab", false, false), ElementsAre('a', 'b'));
}

TEST(BpeTokenizerTest, SpecialTokensOnlyWhenAsked) {
  auto t = Make(ByteVocab({}, {}));
  const int32_t eot = t->n_vocab() - 1;
  EXPECT_THAT(t->Encode("a<|endoftext|>", false, true), ElementsAre('a', eot));
  for (int32_t id : t->Encode("a<|endoftext|>", false, false)) EXPECT_NE(id, eot);
  EXPECT_TRUE(t->IsEndOfGeneration(eot));
}

TEST(BpeTokenizerTest, DecodesBytesAndStreamsSplitCharacters) {
  auto t = Make(ByteVocab({"Ġé"}, {}));
  // 'é' = C3 A9 spelled "Ã©": two byte tokens, each half a character.
  const std::vector<int32_t> ids = t->Encode(" \xC3\xA9!", false, false);
  EXPECT_THAT(ids, ElementsAre(' ', 0xC3, 0xA9, '!'));
  EXPECT_EQ(t->TokenPiece(' '), " ");  // "Ġ"
  EXPECT_EQ(t->TokenPiece(0xC3), "\xC3");
  // No dummy prefix: the leading-space rule does nothing.
  EXPECT_EQ(t->Decode(ids, {.strip_leading_space = true}), " \xC3\xA9!");
  StreamDetokenizer stream(*t, {.strip_leading_space = true});
  EXPECT_EQ(stream.Push(ids[0]), " ");
  EXPECT_EQ(stream.Push(ids[1]), "");
  EXPECT_EQ(stream.Push(ids[2]), "\xC3\xA9");
  EXPECT_EQ(stream.Push(ids[3]), "!");
  EXPECT_EQ(stream.Flush(), "");
}

TEST(BpeTokenizerTest, InvalidUtf8BecomesReplacementCharacters) {
  auto t = Make(ByteVocab({}, {}));
  // llama.cpp decodes leniently: a stray byte becomes U+FFFD (EF BF BD).
  EXPECT_THAT(t->Encode("a\xFF", false, false), ElementsAre('a', 0xEF, 0xBF, 0xBD));
}

TEST(BpeTokenizerTest, RefusesUnknownPreTokenizersByName) {
  auto t = Tokenizer::Create(ByteVocab({}, {}, "falcon"));
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("\"falcon\""));
  EXPECT_THAT(std::string(t.status().message()), HasSubstr("llama-bpe"));
}

TEST(BpeTokenizerTest, ClassesAreSpelledOutForPcre2) {
  const std::string p = ExpandClasses("\\s+(?!\\S)|[^\\s\\p{L}]|\\p{N}");
  EXPECT_EQ(p.find("\\s"), std::string::npos);
  EXPECT_EQ(p.find("\\S"), std::string::npos);
  EXPECT_THAT(p, HasSubstr("\\x{85}"));
  EXPECT_THAT(p, HasSubstr("[^\\t-\\r"));
  EXPECT_THAT(p, HasSubstr("[\\p{N}\\x{11F50}"));
}

std::vector<std::string> Words(const std::string& pre, std::string_view text) {
  auto p = PreTokenizer::Create(pre);
  EXPECT_TRUE(p.ok()) << p.status();
  std::vector<std::string> words;
  (*p)->Split(text, [&](std::string_view w) { words.emplace_back(w); });
  return words;
}

TEST(BpeTokenizerTest, PreTokenizerWords) {
  EXPECT_THAT(Words("llama-bpe", "I'M 12345 ok,  x\n\n y"),
              ElementsAre("I", "'M", " ", "123", "45", " ok", ",", " ", " x", "\n\n", " y"));
  EXPECT_THAT(Words("qwen2", "12 ab"), ElementsAre("1", "2", " ab"));
  // NEL (U+0085) is whitespace for llama.cpp (not for PCRE2's \s).
  EXPECT_THAT(Words("qwen2",
                    "a\xC2\x85\xC2\x85"
                    "b"),
              ElementsAre("a", "\xC2\x85",
                          "\xC2\x85"
                          "b"));
  // Qwen3.5 keeps combining marks in words; for Qwen2 a mark is not a
  // letter, so it ends "e" and leads the next word.
  EXPECT_THAT(Words("qwen35", "e\xCC\x81x"), ElementsAre("e\xCC\x81x"));
  EXPECT_THAT(Words("qwen2", "e\xCC\x81x"), ElementsAre("e", "\xCC\x81x"));
  // A Unicode 15 letter (U+31350, CJK extension H) is a letter, as in
  // llama.cpp's table, though Debian's PCRE2 (Unicode 14) does not know it.
  EXPECT_THAT(Words("qwen2", " \xF0\xB1\x8D\x90,"), ElementsAre(" \xF0\xB1\x8D\x90", ","));
  // Invalid UTF-8: each bad byte is U+FFFD, as llama.cpp decodes it.
  EXPECT_THAT(Words("qwen2", "a\xFF"), ElementsAre("a", "\xEF\xBF\xBD"));
}

// A byte-level vocabulary written as a GGUF with or without the
// add_bos_token key, read back through Vocabulary::FromGguf.
absl::StatusOr<std::unique_ptr<Tokenizer>> FromGgufBytes(const std::string& pre,
                                                         std::optional<bool> add_bos,
                                                         std::string* storage) {
  const Vocabulary v = ByteVocab({}, {}, pre);
  GgufWriter w;
  w.SetString("general.architecture", "llama");
  w.SetString("tokenizer.ggml.model", "gpt2");
  w.SetString("tokenizer.ggml.pre", pre);
  w.SetStringArray("tokenizer.ggml.tokens", v.tokens);
  std::vector<int32_t> types;
  for (TokenType type : v.types) types.push_back(static_cast<int32_t>(type));
  w.SetInt32Array("tokenizer.ggml.token_type", types);
  w.SetStringArray("tokenizer.ggml.merges", {"a b"});
  w.SetUint32("tokenizer.ggml.bos_token_id", v.size() - 1);
  w.SetUint32("tokenizer.ggml.eos_token_id", v.size() - 1);
  if (add_bos.has_value()) w.SetBool("tokenizer.ggml.add_bos_token", *add_bos);
  if (absl::Status s = w.OpenInMemory(storage); !s.ok()) return s;
  if (absl::Status s = w.Finish(); !s.ok()) return s;
  auto gguf = GgufFile::OpenFromMemory(reinterpret_cast<const uint8_t*>(storage->data()),
                                       storage->size(), "mem");
  if (!gguf.ok()) return gguf.status();
  return Tokenizer::FromGguf(**gguf);
}

TEST(BpeTokenizerTest, BosFromTheGgufElseFromThePreTokenizer) {
  struct Row {
    const char* pre;
    std::optional<bool> key;
    bool bos;
  };
  for (const Row& row : {Row{"llama-bpe", std::nullopt, true}, Row{"qwen2", std::nullopt, false},
                         Row{"qwen35", std::nullopt, false}, Row{"llama-bpe", false, false},
                         Row{"qwen2", true, true}}) {
    std::string storage;
    auto t = FromGgufBytes(row.pre, row.key, &storage);
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ((*t)->add_bos(), row.bos) << row.pre;
    const std::vector<int32_t> ids = (*t)->Encode("a", /*add_bos=*/true, false);
    EXPECT_EQ(ids.size(), row.bos ? 2u : 1u) << row.pre;
    EXPECT_FALSE((*t)->strips_leading_space());
  }
}

// llama.cpp's merge loop, ported literally: string symbols, a priority
// queue of (rank, left) with text-based staleness, byte fallback.
std::vector<int32_t> ReferenceWord(const absl::flat_hash_map<std::string, int32_t>& text_to_id,
                                   const std::map<std::pair<std::string, std::string>, int>& ranks,
                                   std::string_view word) {
  std::string spelled;
  AppendByteLevel(word, &spelled);
  struct Sym {
    int prev, next;
    size_t start, n;
  };
  struct Big {
    int left, right, rank;
    std::string text;
  };
  auto cmp = [](const Big& l, const Big& r) {
    return l.rank > r.rank || (l.rank == r.rank && l.left > r.left);
  };
  std::priority_queue<Big, std::vector<Big>, decltype(cmp)> queue(cmp);
  std::vector<Sym> syms;
  for (size_t off = 0; off < spelled.size();) {
    const size_t n =
        std::min(Utf8LeadLength(static_cast<uint8_t>(spelled[off])), spelled.size() - off);
    const int i = static_cast<int>(syms.size());
    syms.push_back({i - 1, off + n == spelled.size() ? -1 : i + 1, off, n});
    off += n;
  }
  auto text = [&](const Sym& s) { return spelled.substr(s.start, s.n); };
  auto add = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    auto it = ranks.find({text(syms[l]), text(syms[r])});
    if (it == ranks.end()) return;
    queue.push({l, r, it->second, text(syms[l]) + text(syms[r])});
  };
  for (int i = 1; i < static_cast<int>(syms.size()); ++i) add(i - 1, i);
  while (!queue.empty()) {
    const Big b = queue.top();
    queue.pop();
    Sym& l = syms[b.left];
    Sym& r = syms[b.right];
    if (l.n == 0 || r.n == 0 || text(l) + text(r) != b.text) continue;
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = b.left;
    add(l.prev, b.left);
    add(b.left, l.next);
  }
  std::vector<int32_t> out;
  for (int i = 0; i != -1; i = syms[i].next) {
    const std::string s = text(syms[i]);
    if (auto it = text_to_id.find(s); it != text_to_id.end()) {
      out.push_back(it->second);
      continue;
    }
    for (char c : s) {
      if (auto it = text_to_id.find(std::string(1, c)); it != text_to_id.end()) {
        out.push_back(it->second);
      }
    }
  }
  return out;
}

TEST(BpeTokenizerTest, SameIdsAsLlamaCppMergeLoopOnLongAndShortWords) {
  auto gguf = GgufFile::Open(testing::TestDataPath("tokenizer/ggml-vocab-qwen2.gguf"));
  ASSERT_TRUE(gguf.ok()) << gguf.status();
  auto t = Tokenizer::FromGguf(**gguf);
  ASSERT_TRUE(t.ok()) << t.status();
  const Vocabulary& v = (*t)->vocabulary();
  std::map<std::pair<std::string, std::string>, int> ranks;
  for (size_t i = 0; i < v.merges.size(); ++i) {
    const size_t space = v.merges[i].find(' ', 1);
    ranks.emplace(std::make_pair(v.merges[i].substr(0, space), v.merges[i].substr(space + 1)),
                  static_cast<int>(i));
  }
  absl::flat_hash_map<std::string, int32_t> map;
  for (int32_t i = 0; i < v.size(); ++i) map[v.tokens[i]] = i;
  auto bpe = BpeTokenizer::Create(v, &map);
  ASSERT_TRUE(bpe.ok()) << bpe.status();
  // Words of decoded vocabulary pieces glued together: 1 to ~200 bytes, so
  // both the scan (<= 32 bytes) and the heap path run; some raw bytes too.
  std::mt19937 rng(7);
  for (int round = 0; round < 300; ++round) {
    std::string word;
    const int parts = 1 + rng() % (round % 3 == 0 ? 40 : 4);
    for (int p = 0; p < parts; ++p) {
      word += rng() % 8 == 0 ? std::string(1, static_cast<char>(rng() % 256))
                             : (*t)->TokenPiece(static_cast<int32_t>(rng() % 151643));
    }
    std::vector<int32_t> got;
    (*bpe)->EncodeWord(word, &got);
    ASSERT_EQ(got, ReferenceWord(map, ranks, word)) << "round " << round << " size " << word.size();
  }
}

}  // namespace
}  // namespace shardlm
