// What every public API shares, without sockets: the bearer check (one
// for gRPC and HTTP), client input -> engine request with the limits and
// the field an error is about, the token stream's hand-over, the proto
// conversions both ways, and the front door submitting on the caller's
// thread and on a oneTBB task over an in-process stories260K pipeline.
#include "coordinator/front_door.h"

#include <gtest/gtest.h>

#include <atomic>
#include <future>

#include "absl/strings/escaping.h"

#include "common/base/field_error.h"
#include "common/model/gguf.h"
#include "common/rpc/credentials.h"
#include "coordinator/json_depth.h"
#include "coordinator/proto_convert.h"
#include "coordinator/token_stream.h"
#include "tests/test_data.h"
#include "worker/llama_stage.h"

namespace shardlm::testing {
namespace {

TEST(BearerAuthenticatorTest, SchemeIsCaseInsensitiveAndMessagesNeverEchoTheToken) {
  const BearerAuthenticator auth({"secret-1", "secret-2"});
  EXPECT_TRUE(auth.CheckHeader(true, "Bearer secret-1").ok());
  EXPECT_TRUE(auth.CheckHeader(true, "bearer secret-2").ok());
  EXPECT_TRUE(auth.CheckHeader(true, "BEARER  secret-1 ").ok());
  const absl::Status missing = auth.CheckHeader(false, "");
  EXPECT_TRUE(absl::IsUnauthenticated(missing));
  EXPECT_NE(missing.message().find("missing credentials"), absl::string_view::npos);
  EXPECT_NE(auth.CheckHeader(true, "Basic c2VjcmV0").message().find("not 'Bearer <token>'"),
            absl::string_view::npos);
  const absl::Status wrong = auth.CheckHeader(true, "Bearer secret-3");
  EXPECT_EQ(wrong.message(), "invalid bearer token");
  EXPECT_TRUE(BearerAuthenticator().CheckHeader(false, "").ok());  // no tokens: open
}

TEST(BearerAuthenticatorTest, RefusesControlBytesInThePresentedValue) {
  const BearerAuthenticator auth({"secret-1"});
  using namespace std::string_literals;
  for (const std::string& bad : {"Bearer secret-1\0junk"s, "Bearer secret-1\0"s,
                                 "Bearer secret-1\x01"s, "Bearer secret-1\x7f"s,
                                 "Bearer \nsecret-1"s}) {
    const absl::Status st = auth.CheckHeader(true, bad);
    EXPECT_TRUE(absl::IsUnauthenticated(st)) << absl::CEscape(bad);
    EXPECT_EQ(st.message(), "authorization holds a control byte");
  }
  EXPECT_TRUE(auth.CheckHeader(true, "Bearer secret-1\t").ok());  // a tab is a blank
}

TEST(JsonDepthTest, RefusesOnlyWhatNestsTooDeep) {
  EXPECT_TRUE(CheckJsonDepth(R"({"a": [[1], {"b": [2]}]})", 4).ok());
  EXPECT_FALSE(CheckJsonDepth(R"({"a": [[1], {"b": [2]}]})", 3).ok());
  // Brackets inside strings (escaped quotes too) do not count.
  EXPECT_TRUE(CheckJsonDepth(R"({"a": "[[[[\"{{{{"})", 1).ok());
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  const absl::Status st = CheckJsonDepth(deep, 64);
  EXPECT_TRUE(absl::IsInvalidArgument(st));
  EXPECT_NE(st.message().find("deeper than 64 levels"), absl::string_view::npos);
  EXPECT_TRUE(CheckJsonDepth("", 1).ok());
  EXPECT_TRUE(CheckJsonDepth("]]]]", 1).ok());  // malformed: the parser's business
}

TEST(ProtoConvertTest, RoundTrips) {
  SamplingParams s;
  s.temperature = 0.5f;
  s.top_k = 7;
  s.seed = 42;
  s.stop = {"x", "yz"};
  s.logit_bias = {{3, -1.5f}, {9, 2.0f}};
  s.top_logprobs = 3;
  const SamplingParams back = SamplingFromProto(SamplingToProto(s));
  EXPECT_EQ(back.temperature, s.temperature);
  EXPECT_EQ(back.top_k, s.top_k);
  EXPECT_EQ(back.seed, s.seed);
  EXPECT_EQ(back.stop, s.stop);
  EXPECT_EQ(back.logit_bias, s.logit_bias);
  EXPECT_EQ(back.top_logprobs, s.top_logprobs);
  EXPECT_TRUE(back.speculation);
  s.speculation = false;  // gRPC no_speculation
  EXPECT_FALSE(SamplingFromProto(SamplingToProto(s)).speculation);
  for (FinishReason r : {FinishReason::kLength, FinishReason::kStop, FinishReason::kEndOfText,
                         FinishReason::kCancelled}) {
    EXPECT_EQ(FinishReasonFromProto(FinishReasonToProto(r)), r) << FinishReasonName(r);
  }
  EXPECT_EQ(FinishReasonFromProto(v1::FINISH_REASON_UNSPECIFIED), FinishReason::kError);
  GenerationStats stats;
  stats.prompt_tokens = 5;
  stats.generated_tokens = 9;
  stats.total_ms = 12.5;
  const GenerationStats stats_back = StatsFromProto(SummaryToProto(FinishReason::kStop, stats));
  EXPECT_EQ(stats_back.prompt_tokens, 5);
  EXPECT_EQ(stats_back.generated_tokens, 9);
  EXPECT_EQ(stats_back.total_ms, 12.5);

  v1::GenerateRequest ids;
  ids.add_prompt_tokens(1);
  ids.set_prompt("ignored when ids are given");
  EXPECT_EQ(ClientRequestFromProto(ids).kind, ClientRequest::Kind::kTokens);
  EXPECT_EQ(ClientRequestFromProto(ids).prompt_field, "prompt_tokens");
  v1::ChatRequest chat;
  chat.add_messages()->set_role("user");
  EXPECT_EQ(ClientRequestFromProto(chat).prompt_field, "messages");
}

TEST(TokenStreamTest, HandsOverTokensThenTheEndAndNotifiesOutsideItsLock) {
  std::atomic<int> notified{0};
  TokenStream* self = nullptr;
  std::vector<GeneratedToken> seen;  // what the notification took itself
  TokenStream stream([&] {
    ++notified;
    // Taking from inside the notification (as the gRPC reactor does) must
    // not deadlock: no lock of the stream is held here.
    if (notified == 1) {
      StreamEnd unused;
      self->Take(&seen, &unused);
    }
  });
  self = &stream;
  std::vector<GeneratedToken> tokens;
  StreamEnd end;
  EXPECT_FALSE(stream.Take(&tokens, &end));
  EXPECT_TRUE(tokens.empty());
  stream.OnToken(GeneratedToken{5, "a", -0.5f, {}});
  stream.OnToken(GeneratedToken{6, "b", -0.25f, {}});
  EXPECT_EQ(notified.load(), 2);
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].text, "a");
  EXPECT_FALSE(stream.WaitAndTake(absl::ZeroDuration(), &tokens, &end));
  ASSERT_EQ(tokens.size(), 1u);
  EXPECT_EQ(tokens[0].text, "b");
  tokens.clear();
  stream.OnToken(GeneratedToken{7, "c", 0, {}});
  stream.OnFinish(FinishReason::kStop, GenerationStats{}, absl::OkStatus());
  // The last token comes with the end.
  EXPECT_TRUE(stream.WaitAndTake(absl::Seconds(1), &tokens, &end));
  ASSERT_EQ(tokens.size(), 1u);
  EXPECT_EQ(end.reason, FinishReason::kStop);
}

class FrontDoorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto file = GgufFile::Open(TestDataPath("models/stories260K.gguf"));
    ASSERT_TRUE(file.ok()) << file.status();
    file_ = std::shared_ptr<const GgufFile>(std::move(*file));
    auto tokenizer = Tokenizer::FromGguf(*file_);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    tokenizer_ = std::move(*tokenizer);
    auto stage = LlamaStage::Create(file_, StageOptions{});
    ASSERT_TRUE(stage.ok()) << stage.status();
    auto pipeline = Pipeline::Create(std::vector<std::shared_ptr<Stage>>{std::move(*stage)});
    ASSERT_TRUE(pipeline.ok()) << pipeline.status();
    pipeline_ = std::move(*pipeline);
    engine_ = std::make_unique<Engine>(pipeline_.get(), tokenizer_.get(), EngineOptions{});
    door_ = std::make_unique<FrontDoor>(engine_.get(), tokenizer_.get(), "zephyr");
  }
  void TearDown() override {
    door_.reset();
    engine_.reset();
  }

  static ClientRequest Text(std::string text, int max_tokens = 8) {
    ClientRequest r;
    r.text = std::move(text);
    r.params = SamplingParams::Greedy();
    r.params.max_tokens = max_tokens;
    return r;
  }
  // Drains `stream` to its end; returns the text.
  static std::string Drain(TokenStream* stream, StreamEnd* end) {
    std::string text;
    std::vector<GeneratedToken> tokens;
    bool ended = false;
    for (int i = 0; i < 600 && !ended; ++i) {
      ended = stream->WaitAndTake(absl::Milliseconds(100), &tokens, end);
    }
    EXPECT_TRUE(ended);
    for (const GeneratedToken& t : tokens) text += t.text;
    return text;
  }

  std::shared_ptr<const GgufFile> file_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<Pipeline> pipeline_;
  std::unique_ptr<Engine> engine_;
  std::unique_ptr<FrontDoor> door_;
};

TEST_F(FrontDoorTest, RefusalsNameTheFieldTheRequestUsed) {
  ClientRequest big = Text(std::string(kMaxPromptBytes + 1, 'a'));
  absl::Status st = door_->Submit(big, std::make_shared<TokenStream>()).status();
  EXPECT_TRUE(absl::IsInvalidArgument(st)) << st;
  EXPECT_EQ(FieldOf(st), "prompt");

  ClientRequest ids = Text("");
  ids.kind = ClientRequest::Kind::kTokens;
  ids.prompt_field = "prompt_tokens";
  ids.tokens.assign(kMaxPromptTokens + 1, 1);
  EXPECT_EQ(FieldOf(door_->Submit(ids, std::make_shared<TokenStream>()).status()), "prompt_tokens");
  // The engine's own refusals about the prompt (no token; an id outside
  // the vocabulary) get the request's field too...
  ids.tokens = {};
  EXPECT_EQ(FieldOf(door_->Submit(ids, std::make_shared<TokenStream>()).status()), "prompt_tokens");
  ids.tokens = {1, 1 << 20};
  EXPECT_EQ(FieldOf(door_->Submit(ids, std::make_shared<TokenStream>()).status()), "prompt_tokens");
  // ...while a sampling field keeps its own name.
  ClientRequest hot = Text("Once");
  hot.params.temperature = 500;
  EXPECT_EQ(FieldOf(door_->Submit(hot, std::make_shared<TokenStream>()).status()), "temperature");

  ClientRequest chat = Text("");
  chat.kind = ClientRequest::Kind::kChat;
  chat.prompt_field = "messages";
  chat.messages = {{"tool", "x"}};
  EXPECT_EQ(FieldOf(door_->Submit(chat, std::make_shared<TokenStream>()).status()), "messages");
  chat.messages = {};
  EXPECT_EQ(FieldOf(door_->Submit(chat, std::make_shared<TokenStream>()).status()), "messages");
  chat.messages = {{"user", "x"}};
  chat.chat_template = "vicuna";
  EXPECT_EQ(FieldOf(door_->Submit(chat, std::make_shared<TokenStream>()).status()), "template");
}

TEST_F(FrontDoorTest, AsyncSubmitEqualsSubmitOnTheCallersThread) {
  auto sync_stream = std::make_shared<TokenStream>();
  ASSERT_TRUE(door_->Submit(Text("Once upon a time"), sync_stream).ok());
  StreamEnd sync_end;
  const std::string sync_text = Drain(sync_stream.get(), &sync_end);

  auto async_stream = std::make_shared<TokenStream>();
  std::promise<absl::StatusOr<uint64_t>> submitted;
  door_->SubmitAsync(Text("Once upon a time"), async_stream,
                     [&](absl::StatusOr<uint64_t> id) { submitted.set_value(std::move(id)); });
  EXPECT_TRUE(submitted.get_future().get().ok());
  StreamEnd async_end;
  EXPECT_EQ(Drain(async_stream.get(), &async_end), sync_text);
  EXPECT_EQ(async_end.reason, FinishReason::kLength);
  EXPECT_FALSE(sync_text.empty());

  // A refusal reaches `done` too.
  std::promise<absl::StatusOr<uint64_t>> refused;
  ClientRequest hot = Text("Once");
  hot.params.temperature = 500;
  door_->SubmitAsync(hot, std::make_shared<TokenStream>(),
                     [&](absl::StatusOr<uint64_t> id) { refused.set_value(std::move(id)); });
  EXPECT_EQ(FieldOf(refused.get_future().get().status()), "temperature");
}

TEST_F(FrontDoorTest, ChatAddsTheTemplatesStop) {
  ClientRequest chat = Text("", 4);
  chat.kind = ClientRequest::Kind::kChat;
  chat.messages = {{"user", "Hi"}};
  absl::StatusOr<GenerationRequest> g = BuildGenerationRequest(*tokenizer_, "zephyr", chat);
  ASSERT_TRUE(g.ok()) << g.status();
  EXPECT_EQ(g->params.stop, std::vector<std::string>{"</s>"});
  EXPECT_FALSE(g->prompt.empty());
}

}  // namespace
}  // namespace shardlm::testing
