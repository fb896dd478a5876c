// RemoteStage over loopback gRPC against in-process LlamaStages: equal bit
// for bit with f32 hidden states, close with f16, pipelines of 2 and 3
// workers (also of the Llama 3 / Qwen2 / Qwen3 test models) decode the same
// greedy tokens as one local stage, long batches are chunked under the
// message limit, Connect waits for a loading worker, errors name the worker.
// Also measures the round trip of a decode step.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <thread>

#include "absl/time/clock.h"
#include "tests/rpc_test_util.h"
#include "tests/test_data.h"

namespace shardlm::testing {
namespace {

// Two sequences in one batch: a prefill of 6 and (after the first call) a
// decode of 1 next to a prefill chunk of 3.
std::vector<ForwardRequest> MixedBatches(const ShardInfo& first_stage_info) {
  ForwardRequest a = TokenBatch(1, 0, TestPrompt(6));
  ForwardRequest b = TokenBatch(2, 0, {1, 40, 50});
  a.seq_ids.insert(a.seq_ids.end(), b.seq_ids.begin(), b.seq_ids.end());
  a.positions.insert(a.positions.end(), b.positions.begin(), b.positions.end());
  a.tokens.insert(a.tokens.end(), b.tokens.begin(), b.tokens.end());
  ForwardRequest c = TokenBatch(1, 6, {99});
  ForwardRequest d = TokenBatch(2, 3, {7, 8, 9});
  c.seq_ids.insert(c.seq_ids.end(), d.seq_ids.begin(), d.seq_ids.end());
  c.positions.insert(c.positions.end(), d.positions.begin(), d.positions.end());
  c.tokens.insert(c.tokens.end(), d.tokens.begin(), d.tokens.end());
  c.want_logits = {1, 0, 1, 1};
  return {a, c};
}

// Runs the batches through local [0, split) then through `local_rest` and
// `remote_rest` (both [split, n_layer)), comparing outputs.
void CompareRemoteWithLocal(v1::DType dtype, float tolerance) {
  const int split = 2;
  auto first = LocalStage(StoriesModel(), 0, split);
  auto local_rest = LocalStage(StoriesModel(), split, 5);
  TestWorker w = StartWorker(StoriesModel(), split, 5);
  RemoteStageOptions options = FastConnectOptions();
  options.hidden_dtype = dtype;
  auto remote = ConnectTo(*w.server, options);
  ASSERT_NE(remote, nullptr);
  EXPECT_EQ(remote->info().fingerprint, local_rest->info().fingerprint);
  EXPECT_EQ(remote->name(), "worker " + w.server->address() + " (layers 2:5)");

  for (const ForwardRequest& batch : MixedBatches(first->info())) {
    ForwardResult mid, want, got;
    ASSERT_TRUE(first->Forward(batch, &mid).ok());
    ForwardRequest hop = batch;
    hop.tokens.clear();
    hop.hidden = mid.hidden;
    ASSERT_TRUE(local_rest->Forward(hop, &want).ok());
    const absl::Status st = remote->Forward(hop, &got);
    ASSERT_TRUE(st.ok()) << st;
    EXPECT_EQ(got.logit_rows, want.logit_rows);
    ASSERT_EQ(got.logits.size(), want.logits.size());
    if (tolerance == 0) {
      EXPECT_EQ(got.logits, want.logits);
    } else {
      float worst = 0;
      for (size_t i = 0; i < want.logits.size(); ++i) {
        worst = std::max(worst, std::fabs(got.logits[i] - want.logits[i]));
      }
      EXPECT_LE(worst, tolerance);
    }
  }
}

TEST(RemoteStageTest, F32HiddenStatesEqualLocalBitForBit) {
  CompareRemoteWithLocal(v1::DTYPE_F32, 0);
}

// f16 rounds the hidden states (relative 2^-11) on the way in; logits of
// stories260K move by a few 1e-3 at most.
TEST(RemoteStageTest, F16HiddenStatesWithinTolerance) {
  CompareRemoteWithLocal(v1::DTYPE_F16, 2e-2f);
}

TEST(RemoteStageTest, FirstStageHiddenOutputEqualsLocal) {
  auto local = LocalStage(NanoModel(), 0, 3);
  TestWorker w = StartWorker(NanoModel(), 0, 3);
  auto remote = ConnectTo(*w.server);
  ASSERT_NE(remote, nullptr);
  for (const ForwardRequest& batch : MixedBatches(local->info())) {
    ForwardResult want, got;
    ASSERT_TRUE(local->Forward(batch, &want).ok());
    ASSERT_TRUE(remote->Forward(batch, &got).ok());
    EXPECT_EQ(got.hidden, want.hidden);
    EXPECT_TRUE(got.logits.empty());
  }
}

// Greedy tokens of a pipeline of remote workers at `splits` equal those of
// one in-process stage of the whole model.
void ExpectPipelineMatchesLocal(const std::string& model, const std::vector<int>& splits) {
  auto whole = LocalStage(model, 0, -1);
  ASSERT_NE(whole, nullptr);
  const int n_layer = whole->info().n_layer;
  auto local = Pipeline::Create({whole});
  ASSERT_TRUE(local.ok());
  const std::vector<int32_t> prompt = TestPrompt(12);
  const std::vector<int32_t> want = GreedyTokens(local->get(), 1, prompt, 16);

  std::vector<TestWorker> workers;
  std::vector<std::shared_ptr<Stage>> stages;
  std::vector<int> bounds = {0};
  bounds.insert(bounds.end(), splits.begin(), splits.end());
  bounds.push_back(n_layer);
  for (size_t i = 0; i + 1 < bounds.size(); ++i) {
    workers.push_back(StartWorker(model, bounds[i], bounds[i + 1]));
    stages.push_back(ConnectTo(*workers.back().server));
    ASSERT_NE(stages.back(), nullptr);
  }
  auto remote = Pipeline::Create(stages);
  ASSERT_TRUE(remote.ok()) << remote.status();
  EXPECT_EQ(GreedyTokens(remote->get(), 1, prompt, 16), want);
  ASSERT_TRUE((*remote)->Release({SeqId{1}}).ok());
  for (const auto& s : stages) EXPECT_EQ(s->kv_stats().sequences, 0);
}

TEST(RemoteStageTest, PipelineOfTwoWorkersEqualsInProcess) {
  for (int split : {1, 3, 4}) {
    SCOPED_TRACE(split);
    ExpectPipelineMatchesLocal(StoriesModel(), {split});
  }
  ExpectPipelineMatchesLocal(NanoModel(), {2});
}

TEST(RemoteStageTest, PipelineOfThreeWorkersEqualsInProcess) {
  ExpectPipelineMatchesLocal(StoriesModel(), {1, 2});  // two one-layer stages
  ExpectPipelineMatchesLocal(StoriesModel(), {2, 4});
  ExpectPipelineMatchesLocal(NanoModel(), {1, 3});
}

// The Llama 3 / Qwen2 / Qwen3 test models: the last worker binds the tied
// classifier (token_embd) and sends 128256 / 151936 logits a row.
TEST(RemoteStageTest, FamilyModelPipelinesEqualInProcess) {
  for (const char* model : {"llama3-nano-q4_k_m", "qwen2-nano-q4_0", "qwen3-nano-q4_k_m"}) {
    SCOPED_TRACE(model);
    ExpectPipelineMatchesLocal(TestDataPath(std::string("models/") + model + ".gguf"), {1, 3});
  }
}

void ExpectClose(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  float worst = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    worst = std::max(worst, std::fabs(got[i] - want[i]) / std::max(1.0f, std::fabs(want[i])));
  }
  EXPECT_LE(worst, 1e-4f);
}

// A 300-token prefill (300 KiB of f32 hidden states for nano's n_embd 256,
// and 300 x 2 KiB of logits) through a worker whose limit is 64 KiB.
TEST(RemoteStageTest, LongBatchesAreChunkedUnderTheMessageLimit) {
  constexpr int kLimit = 64 << 10;
  StageServerOptions server_options;
  server_options.max_message_bytes = kLimit;
  auto first = LocalStage(NanoModel(), 0, 2);
  auto local_rest = LocalStage(NanoModel(), 2, 4);
  TestWorker w = StartWorker(NanoModel(), 2, 4, server_options);

  ForwardRequest batch = TokenBatch(5, 0, TestPrompt(300));
  ForwardRequest tail = TokenBatch(6, 0, TestPrompt(20));  // a second sequence after it
  batch.seq_ids.insert(batch.seq_ids.end(), tail.seq_ids.begin(), tail.seq_ids.end());
  batch.positions.insert(batch.positions.end(), tail.positions.begin(), tail.positions.end());
  batch.tokens.insert(batch.tokens.end(), tail.tokens.begin(), tail.tokens.end());
  ForwardResult mid;
  ASSERT_TRUE(first->Forward(batch, &mid).ok());
  ForwardRequest hop = batch;
  hop.tokens.clear();
  hop.hidden = mid.hidden;

  // Without chunking the worker refuses the message.
  RemoteStageOptions unchunked = FastConnectOptions();
  auto big = ConnectTo(*w.server, unchunked);
  ASSERT_NE(big, nullptr);
  ForwardResult got;
  EXPECT_EQ(big->Forward(hop, &got).code(), absl::StatusCode::kResourceExhausted);

  RemoteStageOptions chunked = FastConnectOptions();
  chunked.max_message_bytes = kLimit;
  auto remote = ConnectTo(*w.server, chunked);
  ASSERT_NE(remote, nullptr);
  // Default logits (last token of each sequence) and all logits. Chunks
  // run as smaller batches, so compare within float rounding.
  for (bool all_logits : {false, true}) {
    SCOPED_TRACE(all_logits);
    hop.want_logits.assign(all_logits ? hop.n_tokens() : 0, 1);
    ForwardResult want;
    ASSERT_TRUE(local_rest->Forward(hop, &want).ok());
    const absl::Status st = remote->Forward(hop, &got);
    ASSERT_TRUE(st.ok()) << st;
    EXPECT_EQ(got.logit_rows, want.logit_rows);
    ExpectClose(got.logits, want.logits);
  }
  // Chunks of at most 7 tokens by count.
  chunked.max_tokens_per_call = 7;
  auto small = ConnectTo(*w.server, chunked);
  hop.want_logits.clear();
  ForwardResult want;
  ASSERT_TRUE(local_rest->Forward(hop, &want).ok());
  ASSERT_TRUE(small->Forward(hop, &got).ok());
  EXPECT_EQ(got.logit_rows, want.logit_rows);
  ExpectClose(got.logits, want.logits);
}

TEST(RemoteStageTest, ConnectWaitsForALoadingWorker) {
  auto server = StageServer::Start(StageServerOptions{});
  ASSERT_TRUE(server.ok());
  std::atomic<int> loading_waits{0};
  RemoteStageOptions options = FastConnectOptions();
  options.on_wait = [&](const ConnectWait& w) {
    if (w.loading) ++loading_waits;
  };
  absl::StatusOr<std::unique_ptr<RemoteStage>> remote;
  std::thread connect([&] { remote = RemoteStage::Connect((*server)->address(), options); });
  while (loading_waits < 3) absl::SleepFor(absl::Milliseconds(10));
  auto stage = LocalStage(StoriesModel(), 0, 5);
  (*server)->SetStage(stage, StageDetails{"stories", stage->weight_bytes()});
  connect.join();
  ASSERT_TRUE(remote.ok()) << remote.status();
  EXPECT_EQ((*remote)->info().n_layer, 5);
  EXPECT_EQ((*remote)->shard_info().model_name(), "stories");
}

TEST(RemoteStageTest, ConnectGivesUpOnAnAbsentWorkerNamingIt) {
  // A port that was free a moment ago: bind, note it, stop.
  std::string address;
  {
    auto probe = StageServer::Start(StageServerOptions{});
    ASSERT_TRUE(probe.ok());
    address = (*probe)->address();
  }
  RemoteStageOptions options = FastConnectOptions();
  options.connect_timeout = absl::Milliseconds(1500);
  int waits = 0;
  options.on_wait = [&](const ConnectWait& w) {
    ++waits;
    EXPECT_FALSE(w.loading);
  };
  const absl::Time start = absl::Now();
  auto remote = RemoteStage::Connect(address, options);
  EXPECT_EQ(remote.status().code(), absl::StatusCode::kDeadlineExceeded) << remote.status();
  EXPECT_NE(remote.status().message().find(address), absl::string_view::npos);
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_GE(waits, 1);
}

TEST(RemoteStageTest, ErrorsKeepTheirCodeAndNameTheWorker) {
  TestWorker w = StartWorker(StoriesModel(), 0, 2);
  auto remote = ConnectTo(*w.server);
  ASSERT_NE(remote, nullptr);
  ForwardResult res;
  absl::Status st = remote->Forward(TokenBatch(1, 0, {1, 600}), &res);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  const std::string who = "worker " + w.server->address() + " (layers 0:2)";
  EXPECT_NE(st.message().find(who + ": INVALID_ARGUMENT: tokens[1]"), absl::string_view::npos)
      << st;

  ASSERT_TRUE(remote->Forward(TokenBatch(1, 0, {1, 6}), &res).ok());
  const KvStats before = remote->kv_stats();
  EXPECT_EQ(before.sequences, 1);
  w.server->Shutdown(absl::Seconds(1));
  st = remote->Forward(TokenBatch(1, 2, {7}), &res);
  EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable) << st;
  EXPECT_NE(st.message().find(who), absl::string_view::npos) << st;
  EXPECT_EQ(remote->kv_stats().sequences, 1) << "the last known stats";
}

// A stage of width 2048 that answers at once: the RPC's own cost.
class EchoStage : public Stage {
 public:
  EchoStage() {
    info_.first_layer = 1;
    info_.last_layer = 2;
    info_.n_layer = 3;
    info_.n_embd = 2048;
    info_.n_vocab = 32000;
    info_.n_ctx = 2048;
    info_.fingerprint = "echo";
  }
  const ShardInfo& info() const override { return info_; }
  absl::Status Forward(const ForwardRequest& r, ForwardResult* out) override {
    out->hidden = r.hidden;
    return absl::OkStatus();
  }
  absl::Status Release(SeqId) override { return absl::OkStatus(); }
  KvStats kv_stats() const override { return {}; }

 private:
  ShardInfo info_;
};

// Forward takes `delay`, then echoes.
class SlowEchoStage : public EchoStage {
 public:
  explicit SlowEchoStage(absl::Duration delay) : delay_(delay) {}
  absl::Status Forward(const ForwardRequest& r, ForwardResult* out) override {
    absl::SleepFor(delay_);
    return EchoStage::Forward(r, out);
  }

 private:
  absl::Duration delay_;
};

// Shutdown lets a running call finish within the grace period, refuses new
// ones, and does not wait for idle connected clients.
TEST(RemoteStageTest, ShutdownDrainsRunningCallsAndIsPrompt) {
  auto server = StageServer::Start(StageServerOptions{});
  ASSERT_TRUE(server.ok());
  (*server)->SetStage(std::make_shared<SlowEchoStage>(absl::Milliseconds(400)), StageDetails{});
  auto idle = ConnectTo(**server);  // connected, no call in flight
  auto busy = ConnectTo(**server);
  ASSERT_NE(busy, nullptr);
  ForwardRequest r{{1}, {0}, {}, std::vector<float>(2048, 0.25f), {}};
  absl::Status running;
  std::thread call([&] {
    ForwardResult res;
    running = busy->Forward(r, &res);
  });
  absl::SleepFor(absl::Milliseconds(100));  // the call is on the compute thread now
  const absl::Time start = absl::Now();
  (*server)->Shutdown(absl::Seconds(5));
  call.join();
  EXPECT_TRUE(running.ok()) << running;
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  ForwardResult res;
  EXPECT_EQ(busy->Forward(r, &res).code(), absl::StatusCode::kUnavailable);
}

// Many one-token round trips on one connection, in both wire types, each
// answer the right one (hop cost is measured by bench/netns_latency.sh).
TEST(RemoteStageTest, RepeatedDecodeRoundTripsEachGetTheirAnswer) {
  auto server = StageServer::Start(StageServerOptions{});
  ASSERT_TRUE(server.ok());
  (*server)->SetStage(std::make_shared<EchoStage>(), StageDetails{"echo", 0});
  for (v1::DType dtype : {v1::DTYPE_F32, v1::DTYPE_F16}) {
    RemoteStageOptions options = FastConnectOptions();
    options.hidden_dtype = dtype;
    auto remote = ConnectTo(**server, options);
    ASSERT_NE(remote, nullptr);
    ForwardResult res;
    for (int i = 0; i < 300; ++i) {
      // Values exact in f16, different every call.
      ForwardRequest r{{1}, {0}, {}, std::vector<float>(2048, 0.25f * (i % 64)), {}};
      ASSERT_TRUE(remote->Forward(r, &res).ok());
      ASSERT_EQ(res.hidden, r.hidden) << "call " << i;
      ASSERT_TRUE(remote->FetchShardInfo(absl::Seconds(5)).ok());
    }
  }
}

}  // namespace
}  // namespace shardlm::testing
