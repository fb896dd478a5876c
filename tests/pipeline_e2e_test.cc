// The distributed pipeline with real shardlm-worker processes on loopback:
// greedy generations through 1-4 workers at several split points equal the
// single-process output token for token; finished and cancelled streams
// free their KV on every worker; bad topologies are refused with messages
// that name the problem.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>

#include <cctype>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/base/subprocess.h"
#include "common/rpc/grpc_settings.h"
#include "common/tokenizer/tokenizer.h"
#include "coordinator/coordinator_server.h"
#include "shardlm/v1/shardlm.grpc.pb.h"
#include "shardlm/v1/stage.grpc.pb.h"
#include "tests/golden.h"
#include "tests/greedy_request.h"
#include "tests/test_data.h"

namespace shardlm::testing {
namespace {

using Split = std::vector<std::pair<int, int>>;

// Worker processes for one pipeline; killed (by pid) when the test ends.
struct Workers {
  std::vector<std::unique_ptr<Subprocess>> procs;
  std::vector<std::string> addresses;
};

Workers StartWorkers(const std::string& model, const Split& split) {
  Workers w;
  for (auto [a, b] : split) {
    auto p = Subprocess::Start({SHARDLM_WORKER_BIN, "--insecure", "--model", model, "--layers",
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

// A coordinator of `model` over the workers `w`, on a free loopback port,
// waiting at most `worker_wait` for them.
CoordinatorOptions CoordinatorFor(const std::string& model, const Workers& w,
                                  absl::Duration worker_wait) {
  CoordinatorOptions o;
  o.model_path = model;
  o.workers = w.addresses;
  o.listen = "127.0.0.1:0";
  o.worker_wait = worker_wait;
  return o;
}

std::unique_ptr<CoordinatorServer> StartCoordinator(const std::string& model, const Workers& w) {
  auto server = CoordinatorServer::Start(CoordinatorFor(model, w, absl::Seconds(30)));
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? std::move(*server) : nullptr;
}

std::unique_ptr<v1::ShardLM::Stub> Client(const std::string& address) {
  return v1::ShardLM::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
}

// Greedy tokens from one in-process stage holding every layer.
std::vector<int32_t> GreedyInProcess(const std::string& model, const std::vector<int32_t>& prompt,
                                     int n) {
  auto stage = OpenStage(model, KvType::kF32);
  const int v = stage->info().n_vocab;
  std::vector<float> l = BatchLogits(stage.get(), 1, prompt);
  std::vector<int32_t> out = {Argmax(&l[(prompt.size() - 1) * v], v)};
  while (static_cast<int>(out.size()) < n) {
    ForwardRequest r{
        {1}, {static_cast<int32_t>(prompt.size() + out.size() - 1)}, {out.back()}, {}, {}};
    ForwardResult res;
    EXPECT_TRUE(stage->Forward(r, &res).ok());
    out.push_back(Argmax(res.logits.data(), v));
  }
  return out;
}

int64_t KvSequences(const std::string& worker) {
  auto stub = v1::Stage::NewStub(grpc::CreateChannel(worker, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  v1::ShardInfo info;
  grpc::Status st = stub->GetShardInfo(&ctx, v1::GetShardInfoRequest(), &info);
  EXPECT_TRUE(st.ok()) << st.error_message();
  return info.kv().sequences();
}

// Polls until every worker holds no KV (releases are asynchronous to the client).
void ExpectNoKvEventually(const Workers& w) {
  for (const std::string& a : w.addresses) {
    int64_t n = -1;
    for (int i = 0; i < 100 && n != 0; ++i) {
      n = KvSequences(a);
      if (n != 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_EQ(n, 0) << "worker " << a << " still holds KV";
  }
}

struct Case {
  std::string model;
  std::string golden;
  Split split;
};

class PipelineE2eTest : public ::testing::TestWithParam<Case> {};

TEST_P(PipelineE2eTest, GreedyEqualsSingleProcess) {
  const Case& c = GetParam();
  const std::string model = TestDataPath("models/" + c.model);
  Golden g = LoadGolden(c.golden);
  Workers w = StartWorkers(model, c.split);
  ASSERT_EQ(w.addresses.size(), c.split.size());
  auto server = StartCoordinator(model, w);
  ASSERT_NE(server, nullptr);
  auto stub = Client(server->address());
  const int n = 24;
  EXPECT_EQ(GreedyOverGrpc(stub.get(), g.prompt_tokens, n),
            GreedyInProcess(model, g.prompt_tokens, n));
  ExpectNoKvEventually(w);  // a finished stream frees its KV everywhere
}

INSTANTIATE_TEST_SUITE_P(
    Splits, PipelineE2eTest,
    ::testing::Values(Case{"stories260K.gguf", "stories260K.story", {{0, 5}}},
                      Case{"stories260K.gguf", "stories260K.story", {{0, 2}, {2, 5}}},
                      Case{"stories260K.gguf", "stories260K.lily", {{0, 1}, {1, 4}, {4, 5}}},
                      Case{
                          "stories260K.gguf", "stories260K.once", {{0, 1}, {1, 2}, {2, 4}, {4, 5}}},
                      Case{"nano-q4_k_m.gguf", "nano-q4_k_m.story", {{0, 3}, {3, 4}}},
                      Case{"nano-q4_0.gguf", "nano-q4_0.lily", {{0, 1}, {1, 2}, {2, 3}, {3, 4}}}),
    // e.g. "stories260K_lily_0to1_1to4_4to5": golden prompt and the split.
    [](const ::testing::TestParamInfo<Case>& info) {
      std::string name = info.param.golden;
      for (const auto& [first, last] : info.param.split) {
        name += "_" + std::to_string(first) + "to" + std::to_string(last);
      }
      for (char& c : name) {
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      }
      return name;
    });

TEST(PipelineE2eFaultTest, CancelledStreamFreesKvOnEveryWorker) {
  const std::string model = TestDataPath("models/stories260K.gguf");
  Workers w = StartWorkers(model, {{0, 2}, {2, 5}});
  auto server = StartCoordinator(model, w);
  ASSERT_NE(server, nullptr);
  auto stub = Client(server->address());
  v1::GenerateRequest req = GreedyRequest(100000);
  req.set_prompt("Once upon a time");
  grpc::ClientContext ctx;
  auto reader = stub->Generate(&ctx, req);
  v1::GenerateResponse r;
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(reader->Read(&r));
  int64_t held = 0;
  for (const std::string& a : w.addresses) held += KvSequences(a);
  EXPECT_EQ(held, 2);  // the running sequence, on both workers
  ctx.TryCancel();
  while (reader->Read(&r)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  ExpectNoKvEventually(w);
}

// Each bad topology is refused with a message naming the problem.
void ExpectRefused(const std::string& coordinator_model, const Workers& w,
                   const std::string& needle) {
  auto server = CoordinatorServer::Start(CoordinatorFor(coordinator_model, w, absl::Seconds(5)));
  ASSERT_FALSE(server.ok());
  EXPECT_NE(std::string(server.status().message()).find(needle), std::string::npos)
      << server.status();
}

TEST(PipelineE2eFaultTest, BadTopologiesAreRefusedClearly) {
  const std::string stories = TestDataPath("models/stories260K.gguf");
  const std::string nano = TestDataPath("models/nano-q4_0.gguf");
  ExpectRefused(stories, StartWorkers(stories, {{0, 2}, {3, 5}}),
                "layers 2:3 are served by no stage");
  ExpectRefused(stories, StartWorkers(stories, {{0, 3}, {2, 5}}), "layers 2:3 are served twice");
  ExpectRefused(stories, StartWorkers(stories, {{0, 2}, {2, 4}}),
                "layers 4:5 are served by no stage");
  ExpectRefused(stories, StartWorkers(nano, {{0, 4}}), "serves a different model");
  // Nothing listens on port 1.
  Workers down;
  down.addresses = {"127.0.0.1:1"};
  ExpectRefused(stories, down, "127.0.0.1:1");
}

}  // namespace
}  // namespace shardlm::testing

namespace shardlm::testing {
namespace {

// Pulls one sample's value out of a Prometheus page ("name{labels} value").
double Sample(const std::string& page, const std::string& prefix) {
  const size_t at = page.find("\n" + prefix);
  if (at == std::string::npos) return -1;
  const size_t begin = at + 1 + prefix.size();
  return std::strtod(page.substr(begin, page.find('\n', begin) - begin).c_str(), nullptr);
}

TEST(PipelineE2eMetricsTest, CoordinatorAndWorkersExposePrometheusMetrics) {
  const std::string model = TestDataPath("models/stories260K.gguf");
  Workers w;
  auto p = Subprocess::Start({SHARDLM_WORKER_BIN, "--insecure", "--model", model, "--layers", "0:5",
                              "--listen", "127.0.0.1:0", "--threads", "1", "--metrics-listen",
                              "127.0.0.1:0"});
  ASSERT_TRUE(p.ok()) << p.status();
  w.addresses.push_back(*(*p)->WaitForLine("LISTENING ", absl::Seconds(30)));
  const std::string worker_metrics = *(*p)->WaitForLine("METRICS ", absl::Seconds(30));
  w.procs.push_back(std::move(*p));
  CoordinatorOptions o;
  o.model_path = model;
  o.workers = w.addresses;
  o.listen = "127.0.0.1:0";
  o.metrics_listen = "127.0.0.1:0";
  auto server = CoordinatorServer::Start(o);
  ASSERT_TRUE(server.ok()) << server.status();
  auto stub = Client((*server)->address());
  ASSERT_EQ(GreedyOverGrpc(stub.get(), {1, 403}, 10).size(), 10u);

  auto scrape = [](const std::string& address) {
    httplib::Client client("http://" + address);
    auto res = client.Get("/metrics");
    EXPECT_TRUE(res) << "no answer from " << address;
    return res ? res->body : std::string();
  };
  const std::string coord = scrape((*server)->metrics_address());
  EXPECT_EQ(Sample(coord, "shardlm_requests_total "), 1);
  EXPECT_EQ(Sample(coord, "shardlm_generated_tokens_total "), 10);
  EXPECT_EQ(Sample(coord, "shardlm_requests_finished_total{reason=\"length\"} "), 1);
  EXPECT_EQ(Sample(coord, "shardlm_time_to_first_token_seconds_count "), 1);
  EXPECT_EQ(Sample(coord, "shardlm_inter_token_seconds_count "), 9);
  EXPECT_NE(coord.find("shardlm_stage_hop_seconds_bucket{stage="), std::string::npos);
  EXPECT_NE(coord.find("shardlm_queue_depth 0"), std::string::npos);
  const std::string worker = scrape(worker_metrics);
  EXPECT_GE(Sample(worker, "shardlm_worker_tokens_total{layers=\"0:5\"} "), 11);
  EXPECT_NE(worker.find("shardlm_worker_forward_seconds_count{layers=\"0:5\"}"), std::string::npos);
  EXPECT_NE(worker.find("shardlm_worker_kv_bytes{layers=\"0:5\"}"), std::string::npos);
}

}  // namespace
}  // namespace shardlm::testing
