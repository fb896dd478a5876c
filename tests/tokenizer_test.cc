// The tokenizer against llama.cpp's, SentencePiece's and llama2.c's expected
// ids on the real vocabularies in shared/ (see shared/models/SOURCES.md).
#include "common/tokenizer/tokenizer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <map>
#include <queue>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/model/gguf.h"
#include "common/tokenizer/utf8.h"
#include "tests/test_data.h"

namespace shardlm {
namespace {

// Loads (once per process) the tokenizer of a GGUF under shared/.
const Tokenizer& LoadTokenizer(const std::string& relative) {
  static auto* cache = new std::map<std::string, std::unique_ptr<Tokenizer>>();
  auto& slot = (*cache)[relative];
  if (slot == nullptr) {
    auto gguf = GgufFile::Open(testing::TestDataPath(relative));
    if (!gguf.ok()) {
      std::cerr << gguf.status() << "\n";
      std::abort();
    }
    auto tokenizer = Tokenizer::FromGguf(**gguf);
    if (!tokenizer.ok()) {
      std::cerr << tokenizer.status() << "\n";
      std::abort();
    }
    slot = std::move(tokenizer).value();
  }
  return *slot;
}

struct Case {
  std::string text;
  std::vector<int32_t> ids;
};

// llama.cpp's .inp/.out pairs: inputs separated by "\n__ggml_vocab_test__\n",
// one line of ids (without BOS) per input.
std::vector<Case> ReadVocabTest(const std::string& base) {
  const std::string inp = testing::ReadFileOrDie(testing::TestDataPath(base + ".inp"));
  const std::string out = testing::ReadFileOrDie(testing::TestDataPath(base + ".out"));
  std::vector<std::string> texts = absl::StrSplit(inp, "\n__ggml_vocab_test__\n");
  if (!texts.empty() && texts.back().empty()) texts.pop_back();
  std::vector<std::string> lines = absl::StrSplit(out, '\n');
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  EXPECT_EQ(texts.size(), lines.size()) << base;
  std::vector<Case> cases;
  for (size_t i = 0; i < texts.size() && i < lines.size(); ++i) {
    Case c{texts[i], {}};
    std::istringstream in(lines[i]);
    for (int32_t id; in >> id;) c.ids.push_back(id);
    cases.push_back(std::move(c));
  }
  return cases;
}

// Minimal JSON reading for the two fixed-format files we need: a string value
// (with escapes) and an integer array, starting at `pos`.
std::string JsonString(const std::string& json, size_t* pos) {
  size_t i = json.find('"', *pos) + 1;
  std::string out;
  while (i < json.size() && json[i] != '"') {
    if (json[i] != '\\') {
      out.push_back(json[i++]);
      continue;
    }
    const char e = json[i + 1];
    i += 2;
    switch (e) {
      case 'n':
        out.push_back('\n');
        break;
      case 't':
        out.push_back('\t');
        break;
      case 'r':
        out.push_back('\r');
        break;
      case 'b':
        out.push_back('\b');
        break;
      case 'f':
        out.push_back('\f');
        break;
      case 'u': {
        uint32_t cp = std::stoul(json.substr(i, 4), nullptr, 16);
        i += 4;
        if (cp >= 0xD800 && cp < 0xDC00 && json.compare(i, 2, "\\u") == 0) {
          const uint32_t lo = std::stoul(json.substr(i + 2, 4), nullptr, 16);
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          i += 6;
        }
        AppendCodePoint(cp, &out);
        break;
      }
      default:
        out.push_back(e);
    }
  }
  *pos = i + 1;
  return out;
}

std::vector<int32_t> JsonIntArray(const std::string& json, size_t* pos) {
  const size_t open = json.find('[', *pos);
  const size_t close = json.find(']', open);
  std::vector<int32_t> ids;
  for (absl::string_view part :
       absl::StrSplit(json.substr(open + 1, close - open - 1), ',', absl::SkipWhitespace())) {
    ids.push_back(std::stoi(std::string(part)));
  }
  *pos = close + 1;
  return ids;
}

// Runs every case and reports "N/M cases" for the file.
void ExpectAllCases(const Tokenizer& t, const std::string& name, const std::vector<Case>& cases,
                    bool add_bos, bool parse_special) {
  ASSERT_FALSE(cases.empty()) << name;
  int passed = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::vector<int32_t> got = t.Encode(cases[i].text, add_bos, parse_special);
    EXPECT_EQ(got, cases[i].ids) << name << " case " << i << ": \"" << cases[i].text << "\"";
    passed += got == cases[i].ids;
  }
  std::cout << "[ vectors  ] " << name << ": " << passed << "/" << cases.size() << " cases pass\n";
}

// Decode(Encode(s)) == s under the leading-space rule of tokenizer.h.
void ExpectRoundTrips(const Tokenizer& t, const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    for (bool add_bos : {true, false}) {
      const std::vector<int32_t> ids = t.Encode(c.text, add_bos, /*parse_special=*/false);
      EXPECT_EQ(t.Decode(ids, {.strip_leading_space = true}), c.text) << c.text;
    }
  }
}

// The vectors of `file` (a SentencePiece vocabulary's, special text parsed,
// no BOS): `n_cases` of them, all encoded as recorded and all round-tripping.
std::vector<Case> ExpectSpmVectors(const Tokenizer& t, const std::string& file,
                                   const std::string& name, size_t n_cases) {
  std::vector<Case> cases = ReadVocabTest(file);
  EXPECT_EQ(cases.size(), n_cases);
  ExpectAllCases(t, name, cases, false, true);
  ExpectRoundTrips(t, cases);
  return cases;
}

// llama.cpp's llm_tokenizer_spm_session, ported as literally as possible: one
// heap over the whole fragment, std::string keys, no word splitting. The
// optimised encoder must give the same ids on any input.
std::vector<int32_t> ReferenceSpmEncode(const Vocabulary& v,
                                        const std::map<std::string, int32_t>& text_to_id,
                                        std::string_view raw) {
  std::string text = "\xE2\x96\x81";
  for (char c : raw) text += c == ' ' ? std::string("\xE2\x96\x81") : std::string(1, c);
  struct Sym {
    int prev, next;
    const char* text;
    size_t n;
  };
  struct Big {
    int left, right;
    float score;
    size_t size;
  };
  auto cmp = [](const Big& l, const Big& r) {
    return l.score < r.score || (l.score == r.score && l.left > r.left);
  };
  std::priority_queue<Big, std::vector<Big>, decltype(cmp)> queue(cmp);
  std::vector<Sym> syms;
  for (size_t offs = 0; offs < text.size();) {
    const size_t n = std::min(Utf8LeadLength(static_cast<uint8_t>(text[offs])), text.size() - offs);
    const int index = static_cast<int>(syms.size());
    syms.push_back({index - 1, offs + n == text.size() ? -1 : index + 1, text.data() + offs, n});
    offs += n;
  }
  auto try_add = [&](int l, int r) {
    if (l == -1 || r == -1) return;
    auto it = text_to_id.find(std::string(syms[l].text, syms[l].n + syms[r].n));
    if (it == text_to_id.end()) return;
    queue.push({l, r, v.scores[it->second], syms[l].n + syms[r].n});
  };
  for (int i = 1; i < static_cast<int>(syms.size()); ++i) try_add(i - 1, i);
  while (!queue.empty()) {
    const Big b = queue.top();
    queue.pop();
    Sym& l = syms[b.left];
    Sym& r = syms[b.right];
    if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;
    l.n += r.n;
    r.n = 0;
    l.next = r.next;
    if (r.next >= 0) syms[r.next].prev = b.left;
    try_add(l.prev, b.left);
    try_add(b.left, l.next);
  }
  std::vector<int32_t> out;
  for (int i = 0; i != -1 && !syms.empty(); i = syms[i].next) {
    auto it = text_to_id.find(std::string(syms[i].text, syms[i].n));
    if (it != text_to_id.end()) {
      out.push_back(it->second);
      continue;
    }
    for (size_t j = 0; j < syms[i].n; ++j) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", static_cast<uint8_t>(syms[i].text[j]));
      out.push_back(text_to_id.at(name));
    }
  }
  return out;
}

TEST(TokenizerVectorsTest, SameIdsAsAnUnsplitReferenceOnRandomText) {
  // Random texts from vocabulary pieces, spaces, punctuation and raw bytes,
  // so that merges across "▁" and odd byte splits are exercised.
  for (const char* model : {"tokenizer/ggml-vocab-llama-spm.gguf", "models/stories260K.gguf"}) {
    const Tokenizer& t = LoadTokenizer(model);
    std::map<std::string, int32_t> text_to_id;
    for (int32_t i = 0; i < t.n_vocab(); ++i) text_to_id[t.TokenText(i)] = i;
    std::mt19937 rng(3);
    for (int round = 0; round < 2000; ++round) {
      std::string text;
      const int parts = 1 + rng() % 30;
      for (int p = 0; p < parts; ++p) {
        switch (rng() % 5) {
          case 0:
            text += std::string(1 + rng() % 3, ' ');
            break;
          case 1:
            text += static_cast<char>(rng() % 256);
            break;
          case 2:
            text += ".,!?\n\t'\"-"[rng() % 10];
            break;
          default: {
            text += t.TokenPiece(static_cast<int32_t>(rng() % t.n_vocab()));
          }
        }
      }
      ASSERT_EQ(t.Encode(text, false, false), ReferenceSpmEncode(t.vocabulary(), text_to_id, text))
          << model << " round " << round;
    }
  }
}

TEST(TokenizerVectorsTest, LlamaSpmVocabMatchesLlamaCpp) {
  const Tokenizer& t = LoadTokenizer("tokenizer/ggml-vocab-llama-spm.gguf");
  EXPECT_EQ(t.n_vocab(), 32000);
  EXPECT_EQ(t.bos_id(), 1);
  EXPECT_EQ(t.eos_id(), 2);
  EXPECT_TRUE(t.add_bos());
  EXPECT_FALSE(t.add_eos());
  ExpectSpmVectors(t, "tokenizer/ggml-vocab-llama-spm.gguf", "ggml-vocab-llama-spm", 46);
}

TEST(TokenizerVectorsTest, Stories260KVocabMatchesSentencePiece) {
  const Tokenizer& t = LoadTokenizer("models/stories260K.gguf");
  EXPECT_EQ(t.n_vocab(), 512);
  ExpectSpmVectors(t, "tokenizer/stories260K.gguf", "stories260K", 60);
}

TEST(TokenizerVectorsTest, TinyLlamaSpecialTokenParsing) {
  const Tokenizer& t = LoadTokenizer("tokenizer/ggml-vocab-llama-spm.gguf");
  // The round trips encode without special parsing: there "</s>" is plain text.
  const std::vector<Case> cases = ExpectSpmVectors(t, "tokenizer/ggml-vocab-tinyllama.gguf",
                                                   "ggml-vocab-tinyllama (</s> parsed)", 11);
  // Not parsed, "</s>" never becomes token 2.
  for (const Case& c : cases) {
    for (int32_t id : t.Encode(c.text, false, false)) EXPECT_NE(id, 2) << c.text;
  }
}

TEST(TokenizerVectorsTest, Llama2cPromptsWithBos) {
  const Tokenizer& t = LoadTokenizer("tokenizer/ggml-vocab-llama-spm.gguf");
  const std::string json =
      testing::ReadFileOrDie(testing::TestDataPath("tokenizer/llama2c-test.c-vectors.json"));
  std::vector<Case> cases;
  for (size_t pos = json.find("\"text\":"); pos != std::string::npos;
       pos = json.find("\"text\":", pos)) {
    pos += 7;
    Case c;
    c.text = JsonString(json, &pos);
    pos = json.find("\"ids\":", pos);
    c.ids = JsonIntArray(json, &pos);
    cases.push_back(std::move(c));
  }
  EXPECT_EQ(cases.size(), 5u);
  ExpectAllCases(t, "llama2c-test.c-vectors", cases, true, false);
  ExpectRoundTrips(t, cases);
}

// Every golden/*.json and golden/families/*.json: llama.cpp's prompt ids
// (add_special, so BOS exactly when the vocabulary adds it; special-token
// text parsed when the file says "parse_special": true).
TEST(TokenizerVectorsTest, GoldenPromptTokens) {
  std::vector<std::string> files;
  for (const char* dir : {"golden", "golden/families"}) {
    for (const auto& entry : std::filesystem::directory_iterator(testing::TestDataPath(dir))) {
      if (entry.path().extension() == ".json") files.push_back(entry.path().string());
    }
  }
  std::sort(files.begin(), files.end());
  ASSERT_FALSE(files.empty());
  int passed = 0;
  int families = 0;
  for (const std::string& file : files) {
    const std::string json = testing::ReadFileOrDie(file);
    size_t pos = json.find("\"model_file\":") + 13;
    const std::string model = JsonString(json, &pos);
    pos = json.find("\"prompt\":") + 9;
    const std::string prompt = JsonString(json, &pos);
    const bool parse_special = json.find("\"parse_special\": true") != std::string::npos;
    pos = json.find("\"prompt_tokens\":");
    const std::vector<int32_t> expected = JsonIntArray(json, &pos);
    const Tokenizer& t = LoadTokenizer("models/" + model);
    families += t.is_byte_level();
    const std::vector<int32_t> got = t.Encode(prompt, /*add_bos=*/true, parse_special);
    EXPECT_EQ(got, expected) << file;
    passed += got == expected;
    EXPECT_EQ(t.Decode(got, {.strip_leading_space = true, .render_special = parse_special}),
              parse_special && t.add_bos() ? t.TokenText(t.bos_id()) + prompt : prompt)
        << file;
  }
  EXPECT_EQ(families, 12);
  std::cout << "[ vectors  ] golden prompts: " << passed << "/" << files.size() << " files pass\n";
}

TEST(TokenizerVectorsTest, Stories260KGreedyTextDecodesLikeLlama2c) {
  const Tokenizer& t = LoadTokenizer("models/stories260K.gguf");
  const std::string json =
      testing::ReadFileOrDie(testing::TestDataPath("golden/stories260K.bos.json"));
  size_t pos = json.find("\"greedy_tokens\":");
  std::vector<int32_t> ids = {t.bos_id()};
  for (int32_t id : JsonIntArray(json, &pos)) ids.push_back(id);
  ASSERT_EQ(ids.size(), 201u);
  const std::string expected =
      testing::ReadFileOrDie(testing::TestDataPath("models/stories260K.expected_greedy.txt"));
  EXPECT_EQ(t.Decode(ids, {.strip_leading_space = true}), expected);
}

// llama.cpp's own vectors for the byte-level BPE vocabularies (ids without
// BOS, special text parsed as llama.cpp's test-tokenizer-0 does).
void ExpectBpeVocab(const std::string& name, size_t n_cases) {
  const Tokenizer& t = LoadTokenizer("tokenizer/ggml-vocab-" + name + ".gguf");
  EXPECT_TRUE(t.is_byte_level());
  const std::vector<Case> cases = ReadVocabTest("tokenizer/ggml-vocab-" + name + ".gguf");
  EXPECT_EQ(cases.size(), n_cases);
  ExpectAllCases(t, "ggml-vocab-" + name, cases, false, true);
  // No dummy prefix: decoding gives the text back, with or without BOS.
  for (const Case& c : cases) {
    if (!IsValidUtf8(c.text)) continue;
    for (bool add_bos : {true, false}) {
      const std::vector<int32_t> ids = t.Encode(c.text, add_bos, /*parse_special=*/false);
      EXPECT_EQ(t.Decode(ids, {.strip_leading_space = true}), c.text) << name << ": " << c.text;
    }
  }
}

TEST(TokenizerVectorsTest, Llama3BpeVocabMatchesLlamaCpp) {
  ExpectBpeVocab("llama-bpe", 46);
  const Tokenizer& t = LoadTokenizer("tokenizer/ggml-vocab-llama-bpe.gguf");
  EXPECT_EQ(t.n_vocab(), 128256);
  EXPECT_EQ(t.bos_id(), 128000);
  EXPECT_TRUE(t.add_bos());  // no add_bos_token key: llama-bpe adds BOS
  EXPECT_EQ(t.EndOfGenerationIds(), (std::vector<int32_t>{128001, 128009}));
  EXPECT_THAT(t.Encode("Once upon a time", true, false),
              ::testing::ElementsAre(128000, 12805, 5304, 264, 892));
  // <|eot_id|> is one token only when special text is parsed.
  EXPECT_THAT(t.Encode("a<|eot_id|>", false, true), ::testing::ElementsAre(64, 128009));
  for (int32_t id : t.Encode("<|eot_id|>", false, false)) EXPECT_NE(id, 128009);
  EXPECT_EQ(t.TokenPiece(128009), "");
  EXPECT_EQ(t.TokenPiece(128009, /*render_special=*/true), "<|eot_id|>");
}

TEST(TokenizerVectorsTest, Qwen2BpeVocabMatchesLlamaCpp) {
  ExpectBpeVocab("qwen2", 46);
  const Tokenizer& t = LoadTokenizer("tokenizer/ggml-vocab-qwen2.gguf");
  EXPECT_FALSE(t.add_bos());  // no add_bos_token key: qwen2 adds none
  // <|endoftext|> (EOS), <|im_end|> (EOT) and the ordinary "</s>" that
  // llama.cpp re-types as control and treats as end of generation.
  EXPECT_EQ(t.EndOfGenerationIds(), (std::vector<int32_t>{128247, 151643, 151645}));
  EXPECT_EQ(t.token_type(128247), TokenType::kControl);
  EXPECT_THAT(t.Encode("Once upon a time", true, false),
              ::testing::ElementsAre(12522, 5193, 264, 882));
  EXPECT_THAT(t.Encode("<|im_start|>user", true, true), ::testing::ElementsAre(151644, 872));
}

TEST(TokenizerVectorsTest, Qwen35BpeVocabMatchesLlamaCpp) {
  ExpectBpeVocab("qwen35", 50);
  EXPECT_FALSE(LoadTokenizer("tokenizer/ggml-vocab-qwen35.gguf").add_bos());
}

TEST(TokenizerVectorsTest, Phi3SpmVocabMatchesLlamaCpp) {
  const Tokenizer& t = LoadTokenizer("tokenizer/ggml-vocab-phi-3.gguf");
  ExpectSpmVectors(t, "tokenizer/ggml-vocab-phi-3.gguf", "ggml-vocab-phi-3", 46);
}

TEST(TokenizerVectorsTest, Phi3SpecialTokensAsLlamaCppTreatsThem) {
  const Tokenizer& t = LoadTokenizer("tokenizer/ggml-vocab-phi-3.gguf");
  // "</s>" is user-defined in the file; llama.cpp makes it a control token
  // (it ends generation), so it is plain text unless special text is parsed.
  EXPECT_EQ(t.token_type(2), TokenType::kControl);
  for (int32_t id : t.Encode("a</s>b", false, false)) EXPECT_NE(id, 2);
  // Phi-3's special tokens eat the whitespace after them (rstrip), except
  // <s>, <unk> and <|endoftext|>.
  EXPECT_EQ(t.Encode("<|user|>\n Hi", false, true), t.Encode("<|user|>Hi", false, true));
  EXPECT_NE(t.Encode("<|endoftext|> Hi", false, true), t.Encode("<|endoftext|>Hi", false, true));
  EXPECT_TRUE(t.IsEndOfGeneration(32000));  // <|endoftext|> (EOS)
  EXPECT_TRUE(t.IsEndOfGeneration(32007));  // <|end|>
  EXPECT_TRUE(t.IsEndOfGeneration(2));      // </s>
}

TEST(TokenizerVectorsTest, FamilyModelsTokenizeLikeTheirVocabularies) {
  // The nano models carry the vocab files' tokenizer KVs verbatim.
  const std::pair<const char*, const char*> pairs[] = {
      {"models/llama3-nano-q4_k_m.gguf", "tokenizer/ggml-vocab-llama-bpe.gguf"},
      {"models/qwen2-nano-q4_0.gguf", "tokenizer/ggml-vocab-qwen2.gguf"},
      {"models/qwen3-nano-q4_k_m.gguf", "tokenizer/ggml-vocab-qwen2.gguf"}};
  for (const auto& [model, vocab] : pairs) {
    const Tokenizer& m = LoadTokenizer(model);
    const Tokenizer& v = LoadTokenizer(vocab);
    EXPECT_EQ(m.EndOfGenerationIds(), v.EndOfGenerationIds()) << model;
    EXPECT_EQ(m.add_bos(), v.add_bos()) << model;
    for (const Case& c : ReadVocabTest(std::string(vocab))) {
      EXPECT_EQ(m.Encode(c.text, true, true), v.Encode(c.text, true, true)) << model;
    }
  }
}

TEST(TokenizerVectorsTest, OtherTokenizerModelsAreRefusedByName) {
  auto gguf = GgufFile::Open(testing::TestDataPath("tokenizer/ggml-vocab-llama-spm.gguf"));
  ASSERT_TRUE(gguf.ok()) << gguf.status();
  auto vocab = Vocabulary::FromGguf(**gguf);
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  EXPECT_EQ(vocab->pre, "default");
  vocab->model = "bert";
  auto t = Tokenizer::Create(*std::move(vocab));
  ASSERT_FALSE(t.ok());
  EXPECT_NE(std::string(t.status().message()).find("\"bert\""), std::string::npos);

  auto bpe = GgufFile::Open(testing::TestDataPath("tokenizer/ggml-vocab-qwen2.gguf"));
  ASSERT_TRUE(bpe.ok()) << bpe.status();
  auto qwen = Vocabulary::FromGguf(**bpe);
  ASSERT_TRUE(qwen.ok()) << qwen.status();
  qwen->pre = "deepseek-coder";
  auto refused = Tokenizer::Create(*std::move(qwen));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(std::string(refused.status().message()).find("\"deepseek-coder\""), std::string::npos);
}

}  // namespace
}  // namespace shardlm
