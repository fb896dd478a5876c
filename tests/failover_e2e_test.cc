// Failover with real worker processes: 2 layer ranges x 2 replicas, 8
// concurrent greedy streams; one worker is SIGKILLed (or SIGSTOPped: a hang)
// mid-way and every stream still completes with the tokens of an undisturbed
// run. With no replica left, clients get UNAVAILABLE naming the layer range
// within the configured time. Every test runs in both topologies (relay:
// the coordinator passes hidden states; chain: the workers do).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "shardlm/v1/shardlm.grpc.pb.h"
#include "tests/greedy_request.h"
#include "tests/test_data.h"
#include "tests/worker_cluster.h"

namespace shardlm::testing {
namespace {

constexpr int kStreams = 8;
constexpr int kTokens = 48;

std::string Model() { return TestDataPath("models/stories260K.gguf"); }

struct StreamResult {
  std::vector<int32_t> tokens;
  grpc::Status status;
};

// Runs kStreams greedy generations at once; `on_progress` is called from
// stream 0 after each token (to inject a fault mid-way).
std::vector<StreamResult> RunStreams(const std::string& address,
                                     const std::function<void(int)>& on_progress = nullptr) {
  auto stub =
      v1::ShardLM::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  const std::vector<std::string> prompts = {
      "Once upon a time", "Lily saw a big red ball", "The little bird", "Tom and his dog",
      "One day, a girl",  "The sun was hot",         "Mom said",        "A cat sat"};
  std::vector<StreamResult> results(kStreams);
  std::vector<std::thread> threads;
  for (int i = 0; i < kStreams; ++i) {
    threads.emplace_back([&, i] {
      v1::GenerateRequest req = GreedyRequest(kTokens);
      req.set_prompt(prompts[i]);
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
      auto reader = stub->Generate(&ctx, req);
      v1::GenerateResponse r;
      while (reader->Read(&r)) {
        if (r.has_chunk() && r.chunk().token_id() >= 0) {
          results[i].tokens.push_back(r.chunk().token_id());
          if (i == 0 && on_progress) on_progress(static_cast<int>(results[i].tokens.size()));
        }
      }
      results[i].status = reader->Finish();
    });
  }
  for (auto& t : threads) t.join();
  return results;
}

void ExpectSameAsUndisturbed(const std::vector<StreamResult>& got,
                             const std::vector<StreamResult>& want) {
  for (int i = 0; i < kStreams; ++i) {
    EXPECT_TRUE(got[i].status.ok()) << "stream " << i << ": " << got[i].status.error_message();
    EXPECT_EQ(got[i].tokens, want[i].tokens) << "stream " << i;
  }
}

// The topology under test, by name ("relay" or "chain").
std::string TestName(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

class FailoverTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cluster_.ok()) << cluster_.status();
    undisturbed_ = RunStreams(cluster_.address());
    for (const auto& r : undisturbed_) {
      ASSERT_TRUE(r.status.ok()) << r.status.error_message();
      ASSERT_EQ(r.tokens.size(), static_cast<size_t>(kTokens));
    }
  }
  WorkerCluster cluster_{{.model = Model(),
                          .ranges = {{0, 2}, {0, 2}, {2, 5}, {2, 5}},
                          .topology = GetParam()}};
  std::vector<StreamResult> undisturbed_;
};

TEST_P(FailoverTest, KilledWorkerMidStreamLosesNoRequest) {
  std::atomic<bool> done{false};
  auto got = RunStreams(cluster_.address(), [&](int n) {
    if (n == 8 && !done.exchange(true)) cluster_.worker(2).Signal(SIGKILL);
  });
  ExpectSameAsUndisturbed(got, undisturbed_);
  EXPECT_TRUE(done.load());
}

TEST_P(FailoverTest, HungWorkerMidStreamLosesNoRequest) {
  std::atomic<bool> done{false};
  auto got = RunStreams(cluster_.address(), [&](int n) {
    if (n == 8 && !done.exchange(true)) cluster_.worker(1).Signal(SIGSTOP);
  });
  ExpectSameAsUndisturbed(got, undisturbed_);
}

// The same with speculative decoding: a worker dies while verification
// passes carry drafts; replay rebuilds only accepted tokens' KV, and every
// stream's greedy tokens equal those of an undisturbed plain run.
class SpecFailoverTest : public FailoverTest {
 protected:
  WorkerCluster spec_cluster_{
      {.model = Model(),
       .ranges = {{0, 2}, {0, 2}, {2, 5}, {2, 5}},
       .spec_ngram = 4,
       .topology = GetParam()}};
};

TEST_P(SpecFailoverTest, KilledWorkerMidStreamWithSpeculationLosesNoRequest) {
  ASSERT_TRUE(spec_cluster_.ok()) << spec_cluster_.status();
  std::atomic<bool> done{false};
  auto got = RunStreams(spec_cluster_.address(), [&](int n) {
    if (n >= 8 && !done.exchange(true)) spec_cluster_.worker(2).Signal(SIGKILL);
  });
  ExpectSameAsUndisturbed(got, undisturbed_);
  EXPECT_TRUE(done.load());
}

class FailoverNoReplicaTest : public ::testing::TestWithParam<std::string> {};

TEST_P(FailoverNoReplicaTest, UnavailableNamingTheRangeWithinTheConfiguredTime) {
  WorkerCluster c({.model = Model(),
                   .ranges = {{0, 2}, {2, 5}},
                   .failover_timeout = absl::Seconds(2),
                   .topology = GetParam()});
  ASSERT_TRUE(c.ok()) << c.status();
  c.worker(1).Signal(SIGKILL);
  c.worker(1).Wait(absl::Seconds(5));
  const absl::Time start = absl::Now();
  auto got = RunStreams(c.address());
  const absl::Duration took = absl::Now() - start;
  for (const auto& r : got) {
    EXPECT_EQ(r.status.error_code(), grpc::StatusCode::UNAVAILABLE) << r.status.error_message();
    EXPECT_NE(r.status.error_message().find("layers 2:5"), std::string::npos)
        << r.status.error_message();
  }
  // failover timeout 2 s + call timeout 2 s + probes, with margin.
  EXPECT_LT(took, absl::Seconds(10));
}

// GetModelInfo reports each replica's health as the engine's probes see
// it: a SIGKILLed worker shows up unhealthy within a few probe intervals,
// the others stay healthy.
class FailoverHealthTest : public ::testing::TestWithParam<std::string> {};

TEST_P(FailoverHealthTest, ModelInfoShowsAKilledWorkerUnhealthy) {
  WorkerCluster c(
      {.model = Model(), .ranges = {{0, 2}, {0, 2}, {2, 5}}, .topology = GetParam()});
  ASSERT_TRUE(c.ok()) << c.status();
  auto stub =
      v1::ShardLM::NewStub(grpc::CreateChannel(c.address(), grpc::InsecureChannelCredentials()));
  auto info = [&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
    v1::ModelInfo m;
    EXPECT_TRUE(stub->GetModelInfo(&ctx, v1::GetModelInfoRequest(), &m).ok());
    return m;
  };
  // Whether the stage served by worker i is reported healthy.
  auto healthy = [&](const v1::ModelInfo& m, int i) {
    for (const v1::StageStatus& s : m.stages()) {
      if (s.address().find(c.worker_addresses()[i]) != std::string::npos) return s.healthy();
    }
    ADD_FAILURE() << "no stage for worker " << c.worker_addresses()[i];
    return false;
  };
  const v1::ModelInfo before = info();
  ASSERT_EQ(before.stages_size(), 3);
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(healthy(before, i)) << i;

  c.worker(1).Signal(SIGKILL);
  c.worker(1).Wait(absl::Seconds(5));
  const absl::Time deadline = absl::Now() + absl::Seconds(5);
  v1::ModelInfo after = info();
  while (healthy(after, 1) && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
    after = info();
  }
  EXPECT_FALSE(healthy(after, 1)) << "worker 1 still reported healthy 5 s after SIGKILL";
  EXPECT_TRUE(healthy(after, 0));
  EXPECT_TRUE(healthy(after, 2));
}

const auto kTopologies = ::testing::Values(std::string("relay"), std::string("chain"));
INSTANTIATE_TEST_SUITE_P(Topology, FailoverTest, kTopologies, TestName);
INSTANTIATE_TEST_SUITE_P(Topology, SpecFailoverTest, kTopologies, TestName);
INSTANTIATE_TEST_SUITE_P(Topology, FailoverNoReplicaTest, kTopologies, TestName);
INSTANTIATE_TEST_SUITE_P(Topology, FailoverHealthTest, kTopologies, TestName);

}  // namespace
}  // namespace shardlm::testing
