// The chain topology (--topology chain) with real shardlm-worker processes
// on loopback, stories260K:
// - 2 and 4 workers: 200 greedy steps from BOS give logits bit-identical to
//   relay mode over the same workers (so the same tokens), and the
//   coordinator over gRPC streams the same 200 tokens in both topologies;
// - a killed middle or last worker is the range Forward reports as failed
//   (what the engine's failover acts on), with a stage-failure code;
// - a stopped (hung) worker is named by the stage before it within the
//   chained step's deadline;
// - next-hop addresses are checked before a worker connects anywhere.
// Only processes started here are signalled (by pid).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/base/subprocess.h"
#include "common/model/gguf.h"
#include "common/rpc/grpc_settings.h"
#include "common/tokenizer/tokenizer.h"
#include "coordinator/chain.h"
#include "coordinator/coordinator_server.h"
#include "coordinator/pipeline.h"
#include "coordinator/remote_stage.h"
#include "shardlm/v1/shardlm.grpc.pb.h"
#include "shardlm/v1/stage.grpc.pb.h"
#include "tests/golden.h"
#include "tests/greedy_request.h"
#include "tests/test_data.h"
#include "worker/peer_pool.h"

namespace shardlm::testing {
namespace {

using Split = std::vector<std::pair<int, int>>;
constexpr int kTokens = 200;

std::string Model() { return TestDataPath("models/stories260K.gguf"); }

int32_t Bos() {
  auto file = GgufFile::Open(Model());
  EXPECT_TRUE(file.ok()) << file.status();
  auto tok = Tokenizer::FromGguf(**file);
  EXPECT_TRUE(tok.ok()) << tok.status();
  const std::vector<int32_t> ids = (*tok)->Encode("", /*add_bos=*/true, false);
  EXPECT_EQ(ids.size(), 1u);
  return ids.empty() ? 1 : ids[0];
}

struct Workers {
  std::vector<std::unique_ptr<Subprocess>> procs;
  std::vector<std::string> addresses;
  Workers() = default;
  Workers(Workers&&) = default;
  ~Workers() {
    for (auto& p : procs) p->Signal(SIGCONT);  // a stopped one must be able to die
  }
};

Workers StartWorkers(const Split& split) {
  Workers w;
  for (auto [a, b] : split) {
    auto p = Subprocess::Start({SHARDLM_WORKER_BIN, "--insecure", "--model", Model(), "--layers",
                                absl::StrCat(a, ":", b), "--listen", "127.0.0.1:0", "--threads",
                                "1", "--kv-type", "f32"});
    EXPECT_TRUE(p.ok()) << p.status();
    if (!p.ok()) return w;
    auto address = (*p)->WaitForLine("LISTENING ", absl::Seconds(30));
    EXPECT_TRUE(address.ok()) << address.status();
    w.addresses.push_back(address.value_or(""));
    w.procs.push_back(std::move(*p));
  }
  return w;
}

std::vector<std::shared_ptr<Stage>> Connect(const Workers& w, absl::Duration call_timeout) {
  std::vector<std::shared_ptr<Stage>> stages;
  for (const std::string& a : w.addresses) {
    RemoteStageOptions o;
    o.call_timeout = call_timeout;
    o.connect_timeout = absl::Seconds(30);
    o.on_wait = [](const ConnectWait&) {};
    auto s = RemoteStage::Connect(a, o);
    EXPECT_TRUE(s.ok()) << s.status();
    if (!s.ok()) return {};
    stages.push_back(std::move(*s));
  }
  return stages;
}

std::unique_ptr<Pipeline> MakePipeline(std::vector<std::shared_ptr<Stage>> stages, bool chained) {
  auto p = Pipeline::Create(std::move(stages));
  EXPECT_TRUE(p.ok()) << p.status();
  if (!p.ok()) return nullptr;
  if (chained) {
    auto chain = Chain::Create(**p);
    EXPECT_TRUE(chain.ok()) << chain.status();
    if (!chain.ok()) return nullptr;
    (*p)->set_step_path(std::move(*chain));
  }
  return std::move(*p);
}

ForwardRequest OneToken(SeqId seq, int32_t pos, int32_t token) {
  ForwardRequest r;
  r.seq_ids = {seq};
  r.positions = {pos};
  r.tokens = {token};
  return r;
}

class ChainLogitsTest : public ::testing::TestWithParam<Split> {};

TEST_P(ChainLogitsTest, BitIdenticalToRelayFor200GreedyStepsFromBos) {
  Workers w = StartWorkers(GetParam());
  ASSERT_EQ(w.addresses.size(), GetParam().size());
  std::vector<std::shared_ptr<Stage>> stages = Connect(w, absl::Seconds(30));
  ASSERT_EQ(stages.size(), GetParam().size());
  auto relay = MakePipeline(stages, false);
  auto chain = MakePipeline(stages, true);
  ASSERT_TRUE(relay && chain);
  ASSERT_TRUE(chain->chained());
  const int v = relay->model().n_vocab;
  // Two sequences on the same workers: 1 through relay, 2 through chain.
  int32_t token = Bos();
  std::vector<int32_t> tokens;
  for (int pos = 0; pos < kTokens; ++pos) {
    ForwardResult a, b;
    ASSERT_TRUE(relay->Forward(OneToken(1, pos, token), &a).ok()) << pos;
    StageFailure failure;
    absl::Status st = chain->Forward(OneToken(2, pos, token), &b, {}, &failure);
    ASSERT_TRUE(st.ok()) << "step " << pos << ": " << st << " (range " << failure.range << ")";
    ASSERT_EQ(a.logits.size(), static_cast<size_t>(v));
    ASSERT_EQ(b.logits.size(), a.logits.size());
    ASSERT_EQ(std::memcmp(a.logits.data(), b.logits.data(), a.logits.size() * sizeof(float)), 0)
        << "logits differ at step " << pos;
    ASSERT_EQ(b.logit_rows, a.logit_rows);
    token = Argmax(b.logits.data(), v);
    tokens.push_back(token);
  }
  EXPECT_EQ(tokens.size(), static_cast<size_t>(kTokens));
  EXPECT_TRUE(relay->Release(std::vector<SeqId>{1, 2}).ok());
}

INSTANTIATE_TEST_SUITE_P(Workers, ChainLogitsTest,
                         ::testing::Values(Split{{0, 2}, {2, 5}},
                                           Split{{0, 1}, {1, 2}, {2, 4}, {4, 5}}),
                         [](const ::testing::TestParamInfo<Split>& info) {
                           return absl::StrCat(info.param.size(), "workers");
                         });

TEST(ChainCoordinatorTest, FourWorkersStreamTheSame200TokensAsRelay) {
  Workers w = StartWorkers({{0, 1}, {1, 2}, {2, 4}, {4, 5}});
  ASSERT_EQ(w.addresses.size(), 4u);
  std::vector<int32_t> got[2];
  const char* topologies[] = {"relay", "chain"};
  for (int i = 0; i < 2; ++i) {
    CoordinatorOptions o;
    o.model_path = Model();
    o.workers = w.addresses;
    o.listen = "127.0.0.1:0";
    o.worker_wait = absl::Seconds(30);
    o.topology = topologies[i];
    auto server = CoordinatorServer::Start(o);
    ASSERT_TRUE(server.ok()) << server.status();
    auto stub = v1::ShardLM::NewStub(
        grpc::CreateChannel((*server)->address(), grpc::InsecureChannelCredentials()));
    got[i] = GreedyOverGrpc(stub.get(), {Bos()}, kTokens);
  }
  EXPECT_EQ(got[0].size(), static_cast<size_t>(kTokens));
  EXPECT_EQ(got[1], got[0]);
}

TEST(ChainCoordinatorTest, BadTopologyIsRefusedNamingTheChoices) {
  CoordinatorOptions o;
  o.model_path = Model();
  o.workers = {"127.0.0.1:1"};
  o.topology = "ring";
  auto server = CoordinatorServer::Start(o);
  ASSERT_FALSE(server.ok());
  EXPECT_EQ(server.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(server.status().message().find("relay"), std::string::npos) << server.status();
  EXPECT_NE(server.status().message().find("chain"), std::string::npos) << server.status();
}

TEST(ChainCoordinatorTest, InProcessStagesAreRefused) {
  std::vector<std::shared_ptr<Stage>> stages;
  stages.push_back(OpenStage(Model(), KvType::kF32));
  auto p = Pipeline::Create(std::move(stages));
  ASSERT_TRUE(p.ok()) << p.status();
  auto chain = Chain::Create(**p);
  ASSERT_FALSE(chain.ok());
  EXPECT_EQ(chain.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(chain.status().message().find("--topology relay"), std::string::npos)
      << chain.status();
}

// SIGSTOP takes effect asynchronously: a thread already on a CPU runs on
// until it next enters the kernel, and on a loaded machine a hop could still
// get through. Waits (bounded) until every thread of `pid` is stopped.
bool WaitUntilStopped(pid_t pid) {
  for (int i = 0; i < 500; ++i) {
    bool all = true;
    std::error_code ec;
    for (const auto& task : std::filesystem::directory_iterator(
             absl::StrCat("/proc/", pid, "/task"), ec)) {
      std::ifstream stat(task.path() / "stat");
      std::string line;
      std::getline(stat, line);
      const size_t close = line.rfind(')');
      if (close == std::string::npos || close + 2 >= line.size() || line[close + 2] != 'T') {
        all = false;
        break;
      }
    }
    if (all && !ec) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// Three workers in chain mode with one good step done; `fault` is then
// applied to worker `victim` and the next step must fail naming its range.
struct FaultCase {
  int victim;
  int signal;
};

class ChainFaultTest : public ::testing::TestWithParam<FaultCase> {};

TEST_P(ChainFaultTest, FailedStageIsTheReportedRange) {
  const FaultCase c = GetParam();
  const absl::Duration timeout = absl::Seconds(2);
  Workers w = StartWorkers({{0, 2}, {2, 4}, {4, 5}});
  ASSERT_EQ(w.addresses.size(), 3u);
  auto chain = MakePipeline(Connect(w, timeout), true);
  ASSERT_NE(chain, nullptr);
  ForwardResult out;
  ASSERT_TRUE(chain->Forward(OneToken(7, 0, Bos()), &out).ok());
  w.procs[c.victim]->Signal(c.signal);
  if (c.signal == SIGKILL) w.procs[c.victim]->Wait(absl::Seconds(5));
  if (c.signal == SIGSTOP) {
    ASSERT_TRUE(WaitUntilStopped(w.procs[c.victim]->pid()));
  }
  const absl::Time start = absl::Now();
  StageFailure failure;
  absl::Status st = chain->Forward(OneToken(7, 1, out.logits.empty() ? 1 : 2), &out, {}, &failure);
  const absl::Duration took = absl::Now() - start;
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(failure.range, c.victim) << st;
  EXPECT_EQ(failure.replica, 0);
  EXPECT_NE(st.message().find(w.addresses[c.victim]), std::string::npos) << st;
  if (c.signal == SIGSTOP) {
    // Named by the stage before it, within the step's deadline (+ the
    // coordinator's grace for that report), not after some longer timeout.
    EXPECT_EQ(st.code(), absl::StatusCode::kDeadlineExceeded) << st;
    if (c.victim > 0) {
      EXPECT_NE(st.message().find("reached from"), std::string::npos) << st;
    }
    EXPECT_LT(took, timeout + absl::Seconds(2)) << st;
    w.procs[c.victim]->Signal(SIGCONT);
  } else {
    EXPECT_EQ(st.code(), absl::StatusCode::kUnavailable) << st;
    EXPECT_LT(took, timeout + absl::Seconds(2)) << st;
  }
}

INSTANTIATE_TEST_SUITE_P(Faults, ChainFaultTest,
                         ::testing::Values(FaultCase{1, SIGKILL}, FaultCase{2, SIGKILL},
                                           FaultCase{1, SIGSTOP}, FaultCase{2, SIGSTOP}),
                         [](const ::testing::TestParamInfo<FaultCase>& info) {
                           return absl::StrCat(info.param.signal == SIGKILL ? "Killed" : "Hung",
                                               "Worker", info.param.victim);
                         });

TEST(ChainRouteTest, NextHopAddressesAreCheckedBeforeConnecting) {
  for (const char* ok : {"127.0.0.1:5001", "worker-1.shardlm.svc.cluster.local:5001",
                         "[::1]:5001", "[fe80::1]:65535"}) {
    EXPECT_TRUE(CheckPeerAddress(ok).ok()) << ok;
  }
  for (const char* bad :
       {"", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "unix:/tmp/sock", "unix:///tmp/x:1",
        "dns:///host:1", "host:12ab", "ho st:1", "[::1:1", "host/path:1", ":5001"}) {
    absl::Status st = CheckPeerAddress(bad);
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(st.message().find("HOST:PORT"), std::string::npos) << st;
  }
}

TEST(ChainRouteTest, PeerPoolIsCappedAndClosesIdlePeers) {
  PeerPoolOptions o;
  o.max_peers = 2;
  o.idle_timeout = absl::Milliseconds(200);
  PeerPool pool(o);
  // Channels connect lazily: nothing needs to listen on these ports.
  auto a = pool.Get("127.0.0.1:1");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(pool.Get("127.0.0.1:2").ok());
  auto again = pool.Get("127.0.0.1:1");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->get(), a->get());  // pooled, not reconnected
  ASSERT_TRUE(pool.Get("127.0.0.1:3").ok());
  EXPECT_EQ(pool.size(), 2);  // the least recently used (:2) went
  absl::SleepFor(absl::Milliseconds(400));
  ASSERT_TRUE(pool.Get("127.0.0.1:4").ok());
  EXPECT_EQ(pool.size(), 1);  // :1 and :3 were idle
  EXPECT_EQ(pool.Get("unix:/tmp/x").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(pool.size(), 1);
}

// A hop's completion callback must never drop a channel's last reference
// (see PeerPool): a peer evicted while a call holds it stays in the pool
// until that call is done and is dropped by a later Get.
TEST(ChainRouteTest, PeerPoolDropsEvictedChannelsItselfOnceNoCallHoldsThem) {
  PeerPoolOptions o;
  o.max_peers = 1;
  PeerPool pool(o);
  auto in_flight = pool.Get("127.0.0.1:1");  // as a hop's call holds it
  ASSERT_TRUE(in_flight.ok()) << in_flight.status();
  std::weak_ptr<v1::Stage::Stub> held = *in_flight;
  auto idle = pool.Get("127.0.0.1:2");  // evicts :1
  ASSERT_TRUE(idle.ok()) << idle.status();
  EXPECT_EQ(pool.size(), 1);
  in_flight->reset();  // the call ends (on a gRPC thread in the worker)
  EXPECT_FALSE(held.expired()) << "the call's end dropped the channel's last reference";
  std::weak_ptr<v1::Stage::Stub> unheld = *idle;
  idle->reset();
  ASSERT_TRUE(pool.Get("127.0.0.1:3").ok());  // evicts :2, which no call holds
  EXPECT_TRUE(held.expired()) << "a retired channel no call holds outlived the next Get";
  EXPECT_TRUE(unheld.expired());
}

// A one-token chained step (sequence `seq`, position 0, token `token`)
// for a stage with model `fingerprint`; the caller sets route and ids.
v1::ChainForwardRequest OneTokenStep(const std::string& fingerprint, int64_t seq, int32_t token) {
  v1::ChainForwardRequest req;
  req.mutable_forward()->set_protocol_version(kProtocolVersion);
  req.mutable_forward()->set_model_fingerprint(fingerprint);
  req.mutable_forward()->add_seq_ids(seq);
  req.mutable_forward()->add_positions(0);
  req.mutable_forward()->add_tokens(token);
  return req;
}

// ChainForward of `req` (10 s deadline).
grpc::Status SendStep(v1::Stage::Stub* stub, const v1::ChainForwardRequest& req) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::ChainForwardAck ack;
  return stub->ChainForward(&ctx, req, &ack);
}

TEST(ChainRouteTest, WorkerRefusesABadRouteWithInvalidArgument) {
  Workers w = StartWorkers({{0, 2}});
  ASSERT_EQ(w.addresses.size(), 1u);
  auto stages = Connect(w, absl::Seconds(10));
  ASSERT_EQ(stages.size(), 1u);
  auto stub =
      v1::Stage::NewStub(grpc::CreateChannel(w.addresses[0], grpc::InsecureChannelCredentials()));
  const ShardInfo& info = stages[0]->info();
  auto send = [&](std::vector<std::string> route) {
    v1::ChainForwardRequest req = OneTokenStep(info.fingerprint, 9, 1);
    for (auto& a : route) req.add_route(a);
    return SendStep(stub.get(), req);
  };
  // Layers 0:2 of 5: not the last stage, so a route is required.
  grpc::Status st = send({});
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  st = send({"unix:/run/secret.sock"});
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
  EXPECT_NE(st.error_message().find("HOST:PORT"), std::string::npos) << st.error_message();
  st = send(std::vector<std::string>(65, "127.0.0.1:1"));
  EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
}

// The last stage answers on the results stream a request names: that id
// must be open on it (else UNAVAILABLE, which the coordinator treats as a
// lost stream), and one id cannot be opened twice.
TEST(ChainRouteTest, ResultsStreamsAreExclusiveAndRequired) {
  Workers w = StartWorkers({{0, 5}});
  ASSERT_EQ(w.addresses.size(), 1u);
  auto stages = Connect(w, absl::Seconds(10));
  ASSERT_EQ(stages.size(), 1u);
  auto stub =
      v1::Stage::NewStub(grpc::CreateChannel(w.addresses[0], grpc::InsecureChannelCredentials()));
  v1::ResultsRequest open;
  open.set_stream_id(42);
  grpc::ClientContext first_ctx;
  auto first = stub->Results(&first_ctx, open);
  first->WaitForInitialMetadata();  // registered
  grpc::ClientContext second_ctx;
  second_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto second = stub->Results(&second_ctx, open);
  v1::ChainResult unused;
  EXPECT_FALSE(second->Read(&unused));
  EXPECT_EQ(second->Finish().error_code(), grpc::StatusCode::ALREADY_EXISTS);

  auto step = [&](uint64_t stream) {
    v1::ChainForwardRequest req = OneTokenStep(stages[0]->info().fingerprint, 3, Bos());
    req.set_step_id(77);
    req.set_results_stream(stream);
    return SendStep(stub.get(), req);
  };
  grpc::Status st = step(43);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNAVAILABLE) << st.error_message();
  st = step(42);
  EXPECT_TRUE(st.ok()) << st.error_message();
  v1::ChainResult result;
  ASSERT_TRUE(first->Read(&result));
  EXPECT_EQ(result.step_id(), 77u);
  EXPECT_EQ(result.response().logits().shape(1), stages[0]->info().n_vocab);
  first_ctx.TryCancel();
  first->Finish();
}

}  // namespace
}  // namespace shardlm::testing
