// End to end on the test models that carry a real tokenizer.chat_template
// (Llama 3.1 in llama3-nano, Qwen2.5 in qwen2-nano, Qwen3 in qwen3-nano):
// BuildChatPrompt with the model's own template and vocabulary must give the
// tokens of exactly the text Jinja2 rendered (templates/expected), with each
// control-token text as its one special token and BOS never doubled.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "common/model/gguf.h"
#include "common/tokenizer/tokenizer.h"
#include "coordinator/chat_template.h"
#include "nlohmann/json.hpp"
#include "tests/test_data.h"

namespace shardlm::testing {
namespace {

using json = nlohmann::ordered_json;

struct ModelCase {
  const char* model;
  const char* template_stem;  // the template the model file carries
  std::vector<const char*> markers;
};

// The conversations a chat request can carry (role and content only, with
// a generation prompt, no tools or template kwargs).
std::vector<json> PlainCases() {
  std::vector<json> out;
  for (const json& c : json::parse(ReadFileOrDie(TestDataPath("templates/cases.json")))) {
    bool plain = c["add_generation_prompt"].get<bool>() && !c.contains("tools") &&
                 !c.contains("template_kwargs");
    for (const json& m : c["messages"]) plain = plain && m.size() == 2 && m.contains("content");
    if (plain) out.push_back(c);
  }
  return out;
}

size_t Occurrences(const std::string& text, const std::string& marker) {
  size_t n = 0;
  for (size_t at = text.find(marker); at != std::string::npos; at = text.find(marker, at + 1)) ++n;
  return n;
}

TEST(ChatModelTemplatesTest, ModelTemplatesTokenizeAsJinja2RendersThem) {
  const std::vector<ModelCase> models = {
      {"llama3-nano-q4_k_m.gguf",
       "meta-llama-Llama-3.1-8B-Instruct",
       {"<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"}},
      {"qwen2-nano-q4_0.gguf", "Qwen-Qwen2.5-7B-Instruct", {"<|im_start|>", "<|im_end|>"}},
      {"qwen3-nano-q4_k_m.gguf", "Qwen-Qwen3-0.6B", {"<|im_start|>", "<|im_end|>"}},
  };
  const std::vector<json> cases = PlainCases();
  ASSERT_GE(cases.size(), 4u);
  for (const ModelCase& m : models) {
    SCOPED_TRACE(m.model);
    auto file = GgufFile::Open(TestDataPath(std::string("models/") + m.model));
    ASSERT_TRUE(file.ok()) << file.status();
    auto tok = Tokenizer::FromGguf(**file);
    ASSERT_TRUE(tok.ok()) << tok.status();
    const Tokenizer& t = **tok;
    auto model_template = (*file)->GetString("tokenizer.chat_template");
    ASSERT_TRUE(model_template.ok()) << model_template.status();
    ASSERT_EQ(*model_template,
              ReadFileOrDie(TestDataPath(std::string("templates/") + m.template_stem + ".jinja")));
    const std::string bos = t.IsValidId(t.bos_id()) ? t.TokenText(t.bos_id()) : "";
    for (const json& c : cases) {
      SCOPED_TRACE(c["id"].get<std::string>());
      std::vector<ChatMessage> messages;
      for (const json& msg : c["messages"]) messages.push_back({msg["role"], msg["content"]});
      auto prompt = BuildChatPrompt(t, *model_template, "", messages, 1 << 20);
      ASSERT_TRUE(prompt.ok()) << prompt.status();
      EXPECT_EQ(prompt->template_name, "jinja");
      const std::string want =
          ReadFileOrDie(TestDataPath(std::string("templates/expected/") + m.template_stem + "." +
                                     c["id"].get<std::string>() + ".txt"));
      const bool spells_bos = !bos.empty() && absl::StartsWith(want, bos);
      EXPECT_EQ(prompt->tokens, t.Encode(want, /*add_bos=*/!spells_bos, /*parse_special=*/true));
      for (const char* marker : m.markers) {
        const std::vector<int32_t> id = t.Encode(marker, false, true);
        ASSERT_EQ(id.size(), 1u) << marker;
        EXPECT_EQ(
            static_cast<size_t>(std::count(prompt->tokens.begin(), prompt->tokens.end(), id[0])),
            Occurrences(want, marker))
            << marker;
      }
      if (spells_bos) {
        EXPECT_EQ(std::count(prompt->tokens.begin(), prompt->tokens.end(), t.bos_id()), 1);
      }
    }
  }
}

}  // namespace
}  // namespace shardlm::testing
