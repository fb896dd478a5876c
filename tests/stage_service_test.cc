// The worker's gRPC service on loopback: health before and after loading,
// every malformed Forward gets the right code without touching any
// sequence's cache, Release frees KV, GetShardInfo reports the shard.
#include <grpcpp/generic/generic_stub.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <tuple>

#include "common/rpc/tensor_codec.h"
#include "tests/rpc_test_util.h"

namespace shardlm::testing {
namespace {

grpc::Status CallForward(v1::Stage::Stub* stub, const v1::ForwardRequest& request,
                         v1::ForwardResponse* response) {
  grpc::ClientContext context;
  context.set_deadline(DeadlineIn(absl::Seconds(20)));
  return stub->Forward(&context, request, response);
}

v1::ShardInfo CallShardInfo(v1::Stage::Stub* stub) {
  grpc::ClientContext context;
  context.set_deadline(DeadlineIn(absl::Seconds(20)));
  v1::ShardInfo info;
  const grpc::Status st = stub->GetShardInfo(&context, v1::GetShardInfoRequest(), &info);
  EXPECT_TRUE(st.ok()) << st.error_message();
  return info;
}

// A valid request for a stage that takes hidden states.
v1::ForwardRequest HiddenRequest(const ShardInfo& info, SeqId seq, int start,
                                 const std::vector<float>& hidden) {
  v1::ForwardRequest r;
  r.set_protocol_version(kProtocolVersion);
  r.set_model_fingerprint(info.fingerprint);
  const int n = static_cast<int>(hidden.size() / info.n_embd);
  for (int i = 0; i < n; ++i) {
    r.add_seq_ids(seq);
    r.add_positions(start + i);
  }
  const int64_t shape[] = {n, info.n_embd};
  EXPECT_TRUE(EncodeTensor(hidden, shape, v1::DTYPE_F32, "hidden", r.mutable_hidden()).ok());
  return r;
}

std::vector<float> Decoded(const v1::Tensor& t) {
  std::vector<float> out;
  EXPECT_TRUE(DecodeTensor(t, "test", &out).ok());
  return out;
}

// Hidden states of `tokens` at positions [start, ...) after layers [0, 2).
std::vector<float> FirstStageHidden(LlamaStage* first, SeqId seq, int start,
                                    const std::vector<int32_t>& tokens) {
  ForwardResult res;
  EXPECT_TRUE(first->Forward(TokenBatch(seq, start, tokens), &res).ok());
  return res.hidden;
}

TEST(StageServiceTest, HealthAndForwardBeforeAndAfterLoading) {
  auto server = StageServer::Start(StageServerOptions{});
  ASSERT_TRUE(server.ok()) << server.status();
  auto channel = CreateClientChannel((*server)->address());
  for (const std::string service : {"", "shardlm.v1.Stage"}) {
    auto serving = CheckHealth(channel.get(), service, absl::Seconds(10));
    ASSERT_TRUE(serving.ok()) << serving.status();
    EXPECT_FALSE(*serving) << "service '" << service << "' before loading";
  }
  auto stub = v1::Stage::NewStub(channel);
  v1::ForwardResponse response;
  grpc::Status st = CallForward(stub.get(), v1::ForwardRequest(), &response);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_NE(st.error_message().find("still loading"), std::string::npos) << st.error_message();
  v1::ShardInfo info = CallShardInfo(stub.get());
  EXPECT_FALSE(info.ready());
  EXPECT_EQ(info.protocol_version(), kProtocolVersion);
  EXPECT_EQ(info.address(), (*server)->address());

  auto stage = LocalStage(StoriesModel(), 0, 2);
  ASSERT_TRUE(WarmUpStage(stage.get()).ok());
  (*server)->SetStage(stage, StageDetails{"stories", stage->weight_bytes()});
  for (const std::string service : {"", "shardlm.v1.Stage"}) {
    auto serving = CheckHealth(channel.get(), service, absl::Seconds(10));
    ASSERT_TRUE(serving.ok()) << serving.status();
    EXPECT_TRUE(*serving) << "service '" << service << "' after loading";
  }
  EXPECT_EQ(CheckHealth(channel.get(), "no.such.Service", absl::Seconds(10)).status().code(),
            absl::StatusCode::kNotFound);
  info = CallShardInfo(stub.get());
  EXPECT_TRUE(info.ready());
  EXPECT_EQ(info.first_layer(), 0);
  EXPECT_EQ(info.last_layer(), 2);
  EXPECT_EQ(info.n_layer(), 5);
  EXPECT_EQ(info.n_embd(), 64);
  EXPECT_EQ(info.n_vocab(), 512);
  EXPECT_EQ(info.model_fingerprint(), stage->info().fingerprint);
  EXPECT_EQ(info.weight_bytes(), stage->weight_bytes());
  EXPECT_GT(info.weight_bytes(), 0);
  EXPECT_EQ(info.kv().sequences(), 0) << "the warm-up sequence must be released";

  (*server)->Shutdown(absl::Seconds(1));
  auto after = CheckHealth(channel.get(), "", absl::Milliseconds(500));
  EXPECT_FALSE(after.ok() && *after) << "still SERVING after shutdown";
}

// grpc.reflection.v1alpha list_services over a raw bidi call (Debian ships
// no generated reflection client): the answer names our service.
TEST(StageServiceTest, ReflectionListsTheStageService) {
  TestWorker w = StartWorker(StoriesModel(), 0, 5);
  ASSERT_NE(w.stage, nullptr);
  grpc::GenericStub stub(CreateClientChannel(w.server->address()));
  grpc::CompletionQueue cq;
  grpc::ClientContext context;
  context.set_deadline(DeadlineIn(absl::Seconds(10)));
  auto call = stub.PrepareCall(&context,
                               "/grpc.reflection.v1alpha.ServerReflection/"
                               "ServerReflectionInfo",
                               &cq);
  void* tag;
  bool ok;
  auto step = [&](intptr_t id) {
    EXPECT_TRUE(cq.Next(&tag, &ok));
    EXPECT_EQ(reinterpret_cast<intptr_t>(tag), id);
    return ok;
  };
  call->StartCall(reinterpret_cast<void*>(1));
  ASSERT_TRUE(step(1));
  const std::string list_services("\x3a\x00", 2);  // field 7 (list_services) = ""
  grpc::Slice slice(list_services);
  call->Write(grpc::ByteBuffer(&slice, 1), reinterpret_cast<void*>(2));
  ASSERT_TRUE(step(2));
  call->WritesDone(reinterpret_cast<void*>(3));
  ASSERT_TRUE(step(3));
  grpc::ByteBuffer response;
  call->Read(&response, reinterpret_cast<void*>(4));
  ASSERT_TRUE(step(4));
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  step(5);
  EXPECT_TRUE(status.ok()) << status.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (const grpc::Slice& s : slices)
    bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
  EXPECT_NE(bytes.find("shardlm.v1.Stage"), std::string::npos);
  EXPECT_NE(bytes.find("grpc.health.v1.Health"), std::string::npos);
}

struct BadCase {
  std::string name;
  std::function<void(v1::ForwardRequest*)> mutate;
  grpc::StatusCode code;
  std::string message_part;
};

// Sends every case to a hidden-state stage (layers 2:4 of stories260K) in
// the middle of sequence 1's life, then checks that sequence 1 continues
// exactly as on an untouched local stage.
TEST(StageServiceTest, MalformedForwardsGetTheRightCodeAndHarmNoSequence) {
  StageServerOptions options;
  options.service.max_batch_tokens = 16;
  TestWorker w = StartWorker(StoriesModel(), 2, 4, options);
  ASSERT_NE(w.stage, nullptr);
  auto local = LocalStage(StoriesModel(), 2, 4);
  auto first = LocalStage(StoriesModel(), 0, 2);
  const ShardInfo& info = local->info();
  auto stub = RawStub(*w.server);

  const std::vector<int32_t> prompt = TestPrompt(8);
  const std::vector<float> h1 = FirstStageHidden(first.get(), 1, 0, prompt);
  v1::ForwardResponse response;
  ASSERT_TRUE(CallForward(stub.get(), HiddenRequest(info, 1, 0, h1), &response).ok());
  ForwardResult expected;
  ASSERT_TRUE(
      local
          ->Forward(ForwardRequest{std::vector<SeqId>(8, 1), {0, 1, 2, 3, 4, 5, 6, 7}, {}, h1, {}},
                    &expected)
          .ok());
  EXPECT_EQ(Decoded(response.hidden()), expected.hidden);

  const int d = info.n_embd;
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<BadCase> cases = {
      {"byte count",
       [](auto* r) { r->mutable_hidden()->mutable_data()->resize(r->hidden().data().size() - 2); },
       grpc::StatusCode::INVALID_ARGUMENT, "bytes"},
      {"dtype unset", [](auto* r) { r->mutable_hidden()->set_dtype(v1::DTYPE_UNSPECIFIED); },
       grpc::StatusCode::INVALID_ARGUMENT, "hidden.dtype"},
      {"dtype unknown", [](auto* r) { r->mutable_hidden()->set_dtype(static_cast<v1::DType>(42)); },
       grpc::StatusCode::INVALID_ARGUMENT, "hidden.dtype"},
      {"dtype f16 for f32 bytes", [](auto* r) { r->mutable_hidden()->set_dtype(v1::DTYPE_F16); },
       grpc::StatusCode::INVALID_ARGUMENT, "hidden"},
      {"shape",
       [d](auto* r) {
         r->mutable_hidden()->set_shape(0, 8);
         r->mutable_hidden()->set_shape(1, d / 2);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "expected [4, 64]"},
      {"negative dim", [](auto* r) { r->mutable_hidden()->set_shape(0, -4); },
       grpc::StatusCode::INVALID_ARGUMENT, "negative"},
      {"overflowing dims",
       [](auto* r) {
         r->mutable_hidden()->set_shape(0, int64_t{1} << 40);
         r->mutable_hidden()->set_shape(1, int64_t{1} << 40);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "does not match"},
      {"NaN",
       [nan](auto* r) { std::memcpy(r->mutable_hidden()->mutable_data()->data() + 12, &nan, 4); },
       grpc::StatusCode::INVALID_ARGUMENT, "not finite"},
      {"fingerprint", [](auto* r) { r->set_model_fingerprint("bogus"); },
       grpc::StatusCode::FAILED_PRECONDITION, "'bogus'"},
      {"no fingerprint", [](auto* r) { r->clear_model_fingerprint(); },
       grpc::StatusCode::FAILED_PRECONDITION, info.fingerprint},
      {"protocol version", [](auto* r) { r->set_protocol_version(kProtocolVersion + 1); },
       grpc::StatusCode::FAILED_PRECONDITION, "protocol version"},
      {"position >= n_ctx", [&](auto* r) { r->set_positions(3, info.n_ctx); },
       grpc::StatusCode::INVALID_ARGUMENT, "positions[3]"},
      {"negative position", [](auto* r) { r->set_positions(0, -1); },
       grpc::StatusCode::INVALID_ARGUMENT, "positions[0]"},
      {"gap in positions", [](auto* r) { r->set_positions(2, 5); },
       grpc::StatusCode::INVALID_ARGUMENT, "positions[2]"},
      {"start beyond the cache",
       [](auto* r) {
         for (int i = 0; i < 4; ++i) r->set_positions(i, 100 + i);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "sequence 1"},
      {"positions count", [](auto* r) { r->mutable_positions()->RemoveLast(); },
       grpc::StatusCode::INVALID_ARGUMENT, "positions"},
      {"want_logits count", [](auto* r) { r->add_want_logits(true); },
       grpc::StatusCode::INVALID_ARGUMENT, "want_logits"},
      {"token ids to a hidden stage",
       [](auto* r) {
         for (int i = 0; i < 4; ++i) r->add_tokens(5);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "tokens"},
      {"hidden_dtype", [](auto* r) { r->set_hidden_dtype(static_cast<v1::DType>(9)); },
       grpc::StatusCode::INVALID_ARGUMENT, "hidden_dtype"},
      {"two runs of one sequence",
       [](auto* r) {
         r->set_seq_ids(1, 2);
         r->set_seq_ids(2, 1);
         r->set_positions(1, 0);
         r->set_positions(2, 2);
         r->set_positions(3, 3);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "sequence 1"},
      {"empty batch",
       [](auto* r) {
         r->clear_seq_ids();
         r->clear_positions();
         r->clear_hidden();
       },
       grpc::StatusCode::INVALID_ARGUMENT, "empty"},
      {"too many tokens",
       [d](auto* r) {
         for (int i = 4; i < 17; ++i) {
           r->add_seq_ids(1);
           r->add_positions(i);
         }
         r->mutable_hidden()->set_shape(0, 17);
         r->mutable_hidden()->mutable_data()->resize(17 * d * 4);
       },
       grpc::StatusCode::INVALID_ARGUMENT, "limit of 16"},
  };
  // Every case rewrites sequence 1 from position 0 (which would rewind its
  // cache if any part of it were applied).
  const std::vector<float> junk = FirstStageHidden(first.get(), 9, 0, {1, 2, 3, 4});
  for (const BadCase& c : cases) {
    v1::ForwardRequest r = HiddenRequest(info, 1, 0, junk);
    c.mutate(&r);
    const grpc::Status st = CallForward(stub.get(), r, &response);
    EXPECT_EQ(st.error_code(), c.code) << c.name << ": " << st.error_message();
    EXPECT_NE(st.error_message().find(c.message_part), std::string::npos)
        << c.name << ": '" << st.error_message() << "' lacks '" << c.message_part << "'";
  }
  EXPECT_EQ(CallShardInfo(stub.get()).kv().tokens(), 8) << "a rejected batch changed the cache";

  // Sequence 1 decodes on as if nothing happened.
  const std::vector<float> h2 = FirstStageHidden(first.get(), 1, 8, {77});
  ASSERT_TRUE(CallForward(stub.get(), HiddenRequest(info, 1, 8, h2), &response).ok());
  ASSERT_TRUE(local->Forward(ForwardRequest{{1}, {8}, {}, h2, {}}, &expected).ok());
  EXPECT_EQ(Decoded(response.hidden()), expected.hidden);
}

TEST(StageServiceTest, FirstStageRejectsBadTokensAndHiddenStates) {
  TestWorker w = StartWorker(StoriesModel(), 0, 2);
  ASSERT_NE(w.stage, nullptr);
  auto stub = RawStub(*w.server);
  const ShardInfo& info = w.stage->info();
  auto request = [&](std::vector<int32_t> tokens) {
    v1::ForwardRequest r;
    r.set_protocol_version(kProtocolVersion);
    r.set_model_fingerprint(info.fingerprint);
    for (size_t i = 0; i < tokens.size(); ++i) {
      r.add_seq_ids(4);
      r.add_positions(static_cast<int32_t>(i));
      r.add_tokens(tokens[i]);
    }
    return r;
  };
  v1::ForwardResponse response;
  for (int32_t bad : {512, -1, std::numeric_limits<int32_t>::max()}) {
    const grpc::Status st = CallForward(stub.get(), request({1, bad}), &response);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << bad;
    EXPECT_NE(st.error_message().find("tokens[1]"), std::string::npos) << st.error_message();
  }
  v1::ForwardRequest missing = request({1, 2});
  missing.mutable_tokens()->RemoveLast();
  EXPECT_EQ(CallForward(stub.get(), missing, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  v1::ForwardRequest with_hidden = request({1, 2});
  const int64_t shape[] = {2, info.n_embd};
  ASSERT_TRUE(EncodeTensor(std::vector<float>(2 * info.n_embd), shape, v1::DTYPE_F32, "hidden",
                           with_hidden.mutable_hidden())
                  .ok());
  EXPECT_EQ(CallForward(stub.get(), with_hidden, &response).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(CallShardInfo(stub.get()).kv().sequences(), 0);

  // f16 hidden states out of a first stage.
  v1::ForwardRequest ok = request({1, 2, 3});
  ok.set_hidden_dtype(v1::DTYPE_F16);
  ASSERT_TRUE(CallForward(stub.get(), ok, &response).ok());
  EXPECT_EQ(response.hidden().dtype(), v1::DTYPE_F16);
  EXPECT_EQ(response.hidden().data().size(), 3u * info.n_embd * 2);
}

TEST(StageServiceTest, ReleaseFreesKvAndBudgetIsEnforced) {
  // Room for 64 positions of 2 layers x n_embd_kv floats, f32.
  TestWorker w = StartWorker(StoriesModel(), 0, 2, {}, /*kv_budget_bytes=*/64 * 2 * 2 * 64 * 4);
  ASSERT_NE(w.stage, nullptr);
  auto remote = ConnectTo(*w.server);
  ASSERT_NE(remote, nullptr);
  ForwardResult res;
  ASSERT_TRUE(remote->Forward(TokenBatch(10, 0, TestPrompt(5)), &res).ok());
  ASSERT_TRUE(remote->Forward(TokenBatch(11, 0, TestPrompt(7)), &res).ok());
  KvStats kv = remote->kv_stats();
  EXPECT_EQ(kv.sequences, 2);
  EXPECT_EQ(kv.tokens, 12);
  EXPECT_GT(kv.bytes_used, 0);
  EXPECT_EQ(kv.bytes_budget, 64 * 2 * 2 * 64 * 4);

  const absl::Status st = remote->Forward(TokenBatch(12, 0, TestPrompt(200)), &res);
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted) << st;

  const SeqId ids[] = {10, 11, 999};  // unknown ids are fine
  ASSERT_TRUE(remote->Release(ids).ok());
  kv = remote->kv_stats();
  EXPECT_EQ(kv.sequences, 0);
  EXPECT_EQ(kv.tokens, 0);
  EXPECT_EQ(kv.bytes_used, 0);
}

// Fork over gRPC: the fork shares the source's full blocks and continues on
// its own; bad forks are INVALID_ARGUMENT and change nothing; an entry of
// the coordinator's prefix cache is counted apart.
TEST(StageServiceTest, ForkSharesAPrefixAndRefusesBadForks) {
  TestWorker w = StartWorker(StoriesModel(), 0, 2);
  ASSERT_NE(w.stage, nullptr);
  auto remote = ConnectTo(*w.server);
  ASSERT_NE(remote, nullptr);
  ForwardResult res;
  const std::vector<int32_t> prompt = TestPrompt(70);
  ASSERT_TRUE(remote->Forward(TokenBatch(10, 0, prompt), &res).ok());
  ASSERT_TRUE(remote->Fork(20, 10, 66, /*cache_entry=*/false).ok());
  KvStats kv = remote->kv_stats();
  EXPECT_EQ(kv.sequences, 2);
  EXPECT_EQ(kv.tokens, 70 + 66);
  EXPECT_EQ(kv.block_positions, 64);
  EXPECT_EQ(kv.blocks_used, 3) << "2 of the source, a copy of its partial second block";
  // The fork continues where it was cut.
  ASSERT_TRUE(remote->Forward(TokenBatch(20, 66, {prompt[66], prompt[67]}), &res).ok());
  EXPECT_EQ(remote->Forward(TokenBatch(20, 69, {prompt[0]}), &res).code(),
            absl::StatusCode::kInvalidArgument) << "not contiguous with its 68 positions";

  for (auto [dst, src, n, what] : {std::tuple{21, 999, 5, "source sequence 999"},
                                   std::tuple{21, 10, 71, "holds 70"},
                                   std::tuple{21, 10, 0, "holds 70"},
                                   std::tuple{20, 10, 5, "already exists"}}) {
    const absl::Status st = remote->Fork(dst, src, n, false);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << st;
    EXPECT_NE(st.message().find(what), std::string::npos) << st;
  }
  EXPECT_EQ(remote->kv_stats().blocks_used, 3);

  ASSERT_TRUE(remote->Fork(30, 10, 64, /*cache_entry=*/true).ok());
  const SeqId requests[] = {10, 20};
  ASSERT_TRUE(remote->Release(requests).ok());
  kv = remote->kv_stats();
  EXPECT_EQ(kv.sequences, 0);
  EXPECT_EQ(kv.cache_sequences, 1);
  EXPECT_EQ(kv.blocks_used, 1);
  EXPECT_EQ(kv.blocks_cache_only, 1);
  ASSERT_TRUE(remote->Release(30).ok());
  EXPECT_EQ(remote->kv_stats().blocks_used, 0);
}

}  // namespace
}  // namespace shardlm::testing
