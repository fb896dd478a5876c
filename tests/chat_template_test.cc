// Chat templates: each family renders exactly as its official Jinja template
// does (system prompt, multi-turn, generation prompt), detection from real
// tokenizer.chat_template texts, and clear errors for the rest.
#include "coordinator/chat_template.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ctime>

#include "common/model/gguf.h"
#include "common/tokenizer/tokenizer.h"
#include "tests/test_data.h"

namespace shardlm::testing {
namespace {

using Messages = std::vector<ChatMessage>;

// The official templates as found in the models' tokenizer_config.json.
constexpr char kTinyLlamaJinja[] =
    "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + "
    "message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\n' "
    "+ message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ "
    "'<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and "
    "add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}";
constexpr char kLlama2Jinja[] =
    "{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set "
    "system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}{% set "
    "system_message = false %}{% endif %}{% for message in loop_messages %}{% if (message['role'] "
    "== 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
    "user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 == 0 and system_message != "
    "false %}{% set content = '<<SYS>>\\n' + system_message + '\\n<</SYS>>\\n\\n' + "
    "message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if "
    "message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}{% elif "
    "message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' + eos_token }}{% endif %}{% "
    "endfor %}";
constexpr char kChatMlJinja[] =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] "
    "+ '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|im_start|>assistant\\n' "
    "}}{% endif %}";
constexpr char kLlama3Jinja[] =
    "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
    "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim "
    "+ "
    "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ "
    "content }}{% endfor %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}";
constexpr char kMistralJinja[] =
    "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + "
    "message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ "
    "message['content'] + eos_token}}{% endif %}{% endfor %}";
constexpr char kPhi3Jinja[] =
    "{{ bos_token }}{% for message in messages %}{{'<|' + message['role'] + '|>' + '\n' + "
    "message['content'] + '<|end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ "
    "'<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}";

// llama.cpp's tests/test-chat-template.cpp conversation.
const Messages kConversation = {
    {"system", "You are a helpful assistant"},
    {"user", "Hello"},
    {"assistant", "Hi there"},
    {"user", "Who are you"},
    {"assistant", "   I am an assistant   "},
    {"user", "Another question"},
};

std::string Render(const char* name, const Messages& m) {
  auto t = ChatTemplate::FromName(name);
  EXPECT_TRUE(t.ok()) << t.status();
  auto r = t->Render(m);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? r->prompt : "";
}

TEST(ChatTemplateTest, ZephyrSystemPromptAndGenerationPrompt) {
  EXPECT_EQ(Render("zephyr", {{"system", "You are a pirate."}, {"user", "Hello!"}}),
            "<|system|>\nYou are a pirate.</s>\n<|user|>\nHello!</s>\n<|assistant|>\n");
  EXPECT_EQ(Render("zephyr", {{"user", "Hi"}}), "<|user|>\nHi</s>\n<|assistant|>\n");
}

TEST(ChatTemplateTest, ZephyrMultiTurn) {
  EXPECT_EQ(Render("zephyr", kConversation),
            "<|system|>\nYou are a helpful assistant</s>\n<|user|>\nHello</s>\n<|assistant|>\nHi "
            "there</s>\n<|user|>\nWho are you</s>\n<|assistant|>\n   I am an assistant   "
            "</s>\n<|user|>\nAnother question</s>\n<|assistant|>\n");
  auto r = ChatTemplate::FromName("zephyr")->Render(kConversation);
  EXPECT_TRUE(r->add_bos);
  EXPECT_EQ(r->stop, std::vector<std::string>{"</s>"});
}

TEST(ChatTemplateTest, Llama2MatchesTransformersRendering) {
  // transformers' test of the Llama-2 template (hf-internal-testing/llama-tokenizer).
  EXPECT_EQ(Render("llama2", {{"system",
                               "You are a friendly chatbot who always responds in the "
                               "style of a pirate"},
                              {"user", "Hello, how are you?"},
                              {"assistant", "I'm doing great. How can I help you today?"},
                              {"user", "I'd like to show off how chat templating works!"}}),
            "<s>[INST] <<SYS>>\nYou are a friendly chatbot who always responds in the style of a "
            "pirate\n<</SYS>>\n\nHello, how are you? [/INST] I'm doing great. How can I help you "
            "today? </s><s>[INST] I'd like to show off how chat templating works! [/INST]");
}

TEST(ChatTemplateTest, Llama2StripsAndWorksWithoutSystem) {
  EXPECT_EQ(Render("llama2", kConversation),
            "<s>[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST] Hi there "
            "</s><s>[INST] Who are you [/INST] I am an assistant </s><s>[INST] Another question "
            "[/INST]");
  EXPECT_EQ(Render("llama2", {{"user", "  Hi  "}}), "<s>[INST] Hi [/INST]");
  auto r = ChatTemplate::FromName("llama2")->Render({{"user", "Hi"}});
  EXPECT_FALSE(r->add_bos);  // the text spells <s>
}

TEST(ChatTemplateTest, Llama2RefusesOrdersItCannotExpress) {
  auto t = *ChatTemplate::FromName("llama2");
  for (const Messages& m : std::vector<Messages>{
           {{"user", "a"}, {"user", "b"}},
           {{"assistant", "a"}},
           {{"user", "a"}, {"assistant", "b"}},
           {{"system", "s"}},
           {{"user", "a"}, {"system", "s"}, {"user", "b"}},
       }) {
    auto r = t.Render(m);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << m.size();
  }
}

TEST(ChatTemplateTest, ChatMlMatchesOpenHermes) {
  EXPECT_EQ(
      Render("chatml", kConversation),
      "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nHello<|im_"
      "end|>\n<|im_start|>assistant\nHi there<|im_end|>\n<|im_start|>user\nWho are "
      "you<|im_end|>\n<|im_start|>assistant\n   I am an assistant   "
      "<|im_end|>\n<|im_start|>user\nAnother question<|im_end|>\n<|im_start|>assistant\n");
  auto r = ChatTemplate::FromName("chatml")->Render({{"user", "x"}});
  EXPECT_EQ(r->stop, std::vector<std::string>{"<|im_end|>"});
}

TEST(ChatTemplateTest, DetectsFamiliesFromOfficialJinja) {
  EXPECT_EQ(ChatTemplate::Detect(kTinyLlamaJinja)->family(), ChatFamily::kZephyr);
  EXPECT_EQ(ChatTemplate::Detect(kLlama2Jinja)->family(), ChatFamily::kLlama2);
  EXPECT_EQ(ChatTemplate::Detect(kChatMlJinja)->family(), ChatFamily::kChatMl);
}

TEST(ChatTemplateTest, UnsupportedTemplatesAreNamedInTheError) {
  for (auto [jinja, family] : std::vector<std::pair<const char*, const char*>>{
           {kLlama3Jinja, "Llama-3"}, {kMistralJinja, "Mistral"}, {kPhi3Jinja, "Phi-3"}}) {
    auto t = ChatTemplate::Detect(jinja);
    ASSERT_EQ(t.status().code(), absl::StatusCode::kFailedPrecondition) << family;
    const std::string msg(t.status().message());
    EXPECT_NE(msg.find(family), std::string::npos) << msg;
    EXPECT_NE(msg.find("zephyr, llama2, chatml"), std::string::npos) << msg;
  }
  auto none = ChatTemplate::Detect("{{ messages }}");
  EXPECT_EQ(none.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(std::string(none.status().message()).find("{{ messages }}"), std::string::npos);
}

TEST(ChatTemplateTest, ResolvePrefersTheRequestThenTheServerDefault) {
  EXPECT_EQ(ChatTemplate::Resolve("chatml", kTinyLlamaJinja)->family(), ChatFamily::kChatMl);
  EXPECT_EQ(ChatTemplate::Resolve("", kTinyLlamaJinja)->family(), ChatFamily::kZephyr);
  EXPECT_EQ(ChatTemplate::Resolve("", "llama2")->family(), ChatFamily::kLlama2);  // --chat-template
  // No template in the model: ChatML, as llama.cpp's server does.
  EXPECT_EQ(ChatTemplate::Resolve("", "")->family(), ChatFamily::kChatMl);
  auto unknown = ChatTemplate::Resolve("vicuna", kTinyLlamaJinja);
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(unknown.status().message()).find("'vicuna'"), std::string::npos);
}

TEST(ChatTemplateTest, BadMessagesAreInvalidArguments) {
  auto t = *ChatTemplate::FromName("zephyr");
  EXPECT_EQ(t.Render({}).status().code(), absl::StatusCode::kInvalidArgument);
  auto r = t.Render({{"user", "a"}, {"tool", "b"}});
  ASSERT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(r.status().message()).find("messages[1].role"), std::string::npos);
}

TEST(ChatTemplateTest, PromptTokensParseTheMarkers) {
  auto file = GgufFile::Open(TestDataPath("models/stories260K.gguf"));
  ASSERT_TRUE(file.ok()) << file.status();
  auto tok = Tokenizer::FromGguf(**file);
  ASSERT_TRUE(tok.ok()) << tok.status();
  const Tokenizer& t = **tok;
  auto zephyr = BuildChatPrompt(t, "", "zephyr", {{"user", "Hi"}}, 1 << 20);
  ASSERT_TRUE(zephyr.ok()) << zephyr.status();
  EXPECT_EQ(zephyr->tokens.front(), t.bos_id());
  EXPECT_EQ(std::count(zephyr->tokens.begin(), zephyr->tokens.end(), t.eos_id()), 1);  // the </s>
  EXPECT_EQ(zephyr->template_name, "zephyr");
  EXPECT_EQ(t.Decode(zephyr->tokens, {.render_special = true}),
            t.Decode(t.Encode("<|user|>\nHi</s>\n<|assistant|>\n", true, true),
                     {.render_special = true}));
  auto llama2 = BuildChatPrompt(t, "llama2", "", {{"user", "Hi"}}, 1 << 20);
  ASSERT_TRUE(llama2.ok()) << llama2.status();
  EXPECT_EQ(llama2->tokens.front(), t.bos_id());
  EXPECT_EQ(std::count(llama2->tokens.begin(), llama2->tokens.end(), t.bos_id()),
            1);  // not doubled
  auto big = BuildChatPrompt(t, "", "zephyr", {{"user", std::string(100, 'x')}}, 50);
  EXPECT_EQ(big.status().code(), absl::StatusCode::kInvalidArgument);
}

// The model's own Jinja template renders through the interpreter, with the
// vocabulary's BOS/EOS texts (stories260K: <s>, </s>) and today's date.
class ModelTemplateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto tok = TestModelTokenizer("stories260K");
    ASSERT_TRUE(tok.ok()) << tok.status();
    tokenizer_ = *std::move(tok);
  }
  static std::string Template(const std::string& stem) {
    return ReadFileOrDie(TestDataPath("templates/" + stem + ".jinja"));
  }
  std::unique_ptr<Tokenizer> tokenizer_;
};

TEST_F(ModelTemplateTest, RendersTheModelsJinjaWithItsSpecialTokens) {
  const Tokenizer& t = *tokenizer_;
  const std::string mistral = Template("mistralai-Mistral-Nemo-Instruct-2407");
  auto p = BuildChatPrompt(t, mistral, "", {{"user", "Hi"}}, 1 << 20);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->template_name, "jinja");
  // The template spells <s> itself: the tokenizer adds no second one.
  EXPECT_EQ(p->tokens, t.Encode("<s>[INST]Hi[/INST]", /*add_bos=*/false, true));
  EXPECT_EQ(std::count(p->tokens.begin(), p->tokens.end(), t.bos_id()), 1);
  EXPECT_NE(std::find(p->stop.begin(), p->stop.end(), "</s>"), p->stop.end());

  // A request may still name a family.
  auto named = BuildChatPrompt(t, mistral, "chatml", {{"user", "Hi"}}, 1 << 20);
  ASSERT_TRUE(named.ok()) << named.status();
  EXPECT_EQ(named->template_name, "chatml");
}

TEST_F(ModelTemplateTest, TheDateLineComesFromTheClock) {
  auto p = BuildChatPrompt(*tokenizer_, Template("meta-llama-Llama-3.2-3B-Instruct"), "",
                           {{"user", "Hi"}}, 1 << 20);
  ASSERT_TRUE(p.ok()) << p.status();
  char today[32];
  const std::time_t now = std::time(nullptr);
  std::tm tm;
  localtime_r(&now, &tm);
  std::strftime(today, sizeof(today), "%d %b %Y", &tm);
  EXPECT_THAT(tokenizer_->Decode(p->tokens, {.render_special = true}),
              ::testing::HasSubstr(std::string("Today Date: ") + today));
}

TEST_F(ModelTemplateTest, NoTemplateFallsBackToChatMl) {
  auto p = BuildChatPrompt(*tokenizer_, "", "", {{"user", "Hi"}}, 1 << 20);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->template_name, "chatml");
  EXPECT_EQ(p->tokens, tokenizer_->Encode("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n",
                                          true, true));
}

TEST_F(ModelTemplateTest, RefusalsAndUnsupportedConstructsAreErrors) {
  // Mistral's own raise_exception: roles must alternate.
  auto refused = BuildChatPrompt(*tokenizer_, Template("mistralai-Mistral-Nemo-Instruct-2407"), "",
                                 {{"user", "a"}, {"user", "b"}}, 1 << 20);
  ASSERT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), ::testing::HasSubstr("roles must alternate"));
  EXPECT_THAT(refused.status().message(), ::testing::HasSubstr("chat template line"));

  // A construct the interpreter lacks in a ChatML-looking template: the
  // native family renders it; in an unknown one: refused, naming the line.
  const std::string chatml_with_filter =
      std::string(kChatMlJinja) + "\n{% filter upper %}x{% endfilter %}";
  auto family = BuildChatPrompt(*tokenizer_, chatml_with_filter, "", {{"user", "Hi"}}, 1 << 20);
  ASSERT_TRUE(family.ok()) << family.status();
  EXPECT_EQ(family->template_name, "chatml");
  auto unknown = BuildChatPrompt(*tokenizer_, "{{ x }}\n{% filter upper %}x{% endfilter %}", "",
                                 {{"user", "Hi"}}, 1 << 20);
  ASSERT_EQ(unknown.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(unknown.status().message(), ::testing::HasSubstr("line 2"));
  auto described = DescribeDefaultTemplate("");
  ASSERT_TRUE(described.ok()) << described.status();
  EXPECT_THAT(*described, ::testing::HasSubstr("chatml"));
}

TEST(ChatTemplateTest, MergeStopsKeepsTheUsersFirst) {
  std::vector<std::string> stop = {"END", "</s>"};
  MergeStops({"</s>", "<|im_end|>"}, &stop);
  EXPECT_EQ(stop, (std::vector<std::string>{"END", "</s>", "<|im_end|>"}));
}

}  // namespace
}  // namespace shardlm::testing
