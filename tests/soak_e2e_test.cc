// Bounded soak: SHARDLM_SOAK_REQUESTS (default 300) requests arriving over
// SHARDLM_SOAK_SECONDS (default 300) at a cluster of 2 layer ranges x 2
// replicas, a fifth of them cancelled by their client at a random token, and
// one worker SIGKILLed and restarted on its address in the middle. Checks:
// no request lost (every one not cancelled completes, greedy ones with the
// tokens of an undisturbed run), the restarted worker is used again, every
// worker's KV use is back to zero at the end, and worker RSS is stable.
// Prints the figures (requests, tokens/s, RSS over time).
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "shardlm/v1/shardlm.grpc.pb.h"
#include "shardlm/v1/stage.grpc.pb.h"
#include "tests/test_data.h"
#include "tests/worker_cluster.h"

namespace shardlm::testing {
namespace {

constexpr int kMaxTokens = 64;
constexpr int kRestarted = 2;  // a replica of layers 2:5

int EnvInt(const char* name, int fallback) {
  const char* v = std::getenv(name);
  int out = 0;
  return v != nullptr && absl::SimpleAtoi(v, &out) && out > 0 ? out : fallback;
}

const std::vector<std::string>& Prompts() {
  static const auto* prompts = new std::vector<std::string>{
      "Once upon a time", "Lily saw a big red ball", "The little bird", "Tom and his dog",
      "One day, a girl",  "The sun was hot",          "Mom said",        "A cat sat"};
  return *prompts;
}

struct Plan {
  int prompt = 0;
  int max_tokens = kMaxTokens;
  bool greedy = true;
  int cancel_after = -1;  // cancel once this many tokens arrived; -1: never
};

struct Outcome {
  std::vector<int32_t> tokens;
  grpc::Status status;
  bool cancelled_by_client = false;
};

Outcome RunRequest(v1::ShardLM::Stub* stub, const Plan& plan, uint64_t seed) {
  v1::GenerateRequest req;
  req.set_prompt(Prompts()[plan.prompt]);
  auto* s = req.mutable_sampling();
  s->set_max_tokens(plan.max_tokens);
  s->set_ignore_eos(true);
  if (plan.greedy) {
    s->set_temperature(0);
  } else {
    s->set_temperature(0.9f);
    s->set_seed(seed);
  }
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(120));
  Outcome out;
  auto reader = stub->Generate(&ctx, req);
  v1::GenerateResponse r;
  while (reader->Read(&r)) {
    if (!r.has_chunk() || r.chunk().token_id() < 0) continue;
    out.tokens.push_back(r.chunk().token_id());
    if (static_cast<int>(out.tokens.size()) == plan.cancel_after) {
      out.cancelled_by_client = true;
      ctx.TryCancel();
    }
  }
  out.status = reader->Finish();
  return out;
}

// Shard statistics of a worker, or nullopt while it is down.
std::optional<v1::ShardInfo> Info(const std::string& address) {
  auto stub = v1::Stage::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  v1::ShardInfo info;
  if (!stub->GetShardInfo(&ctx, v1::GetShardInfoRequest(), &info).ok()) return std::nullopt;
  return info;
}

double RssMiB(pid_t pid) {
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;
  }
  return 0;
}

TEST(SoakE2eTest, NoRequestLostUnderCancellationsAndAWorkerRestart) {
  const int n_requests = EnvInt("SHARDLM_SOAK_REQUESTS", 300);
  const absl::Duration span = absl::Seconds(EnvInt("SHARDLM_SOAK_SECONDS", 300));
  WorkerCluster cluster({.model = TestDataPath("models/stories260K.gguf"),
                         .ranges = {{0, 2}, {0, 2}, {2, 5}, {2, 5}}});
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  auto stub = v1::ShardLM::NewStub(
      grpc::CreateChannel(cluster.address(), grpc::InsecureChannelCredentials()));

  // Undisturbed greedy continuations, the yardstick for every greedy request.
  std::vector<std::vector<int32_t>> reference;
  for (int p = 0; p < static_cast<int>(Prompts().size()); ++p) {
    Outcome o = RunRequest(stub.get(), {.prompt = p}, 0);
    ASSERT_TRUE(o.status.ok()) << o.status.error_message();
    ASSERT_EQ(o.tokens.size(), static_cast<size_t>(kMaxTokens));
    reference.push_back(o.tokens);
  }

  std::mt19937 rng(20261125);
  std::vector<Plan> plans(n_requests);
  for (Plan& p : plans) {
    p.prompt = std::uniform_int_distribution<int>(0, Prompts().size() - 1)(rng);
    p.max_tokens = std::uniform_int_distribution<int>(8, kMaxTokens)(rng);
    p.greedy = std::uniform_real_distribution<>()(rng) < 0.75;
    if (std::uniform_real_distribution<>()(rng) < 0.2) {
      p.cancel_after = std::uniform_int_distribution<int>(1, p.max_tokens - 1)(rng);
    }
  }

  // Workers' RSS and the restarted worker's KV use, sampled while requests run.
  const absl::Time start = absl::Now();
  std::atomic<bool> stop_monitor{false}, restarted{false};
  std::atomic<int64_t> restarted_max_sequences{0};
  std::mutex rss_mu;
  std::map<int, std::vector<double>> rss;  // seconds since start -> MiB per worker
  std::thread monitor([&] {
    absl::Time next_rss = start;
    while (!stop_monitor.load()) {
      if (restarted.load()) {
        if (auto info = Info(cluster.worker_addresses()[kRestarted])) {
          restarted_max_sequences = std::max<int64_t>(restarted_max_sequences, info->kv().sequences());
        }
      }
      if (absl::Now() >= next_rss) {
        std::vector<double> row;
        for (size_t w = 0; w < cluster.worker_addresses().size(); ++w) {
          row.push_back(RssMiB(cluster.pid(static_cast<int>(w))));
        }
        std::lock_guard<std::mutex> lock(rss_mu);
        rss[static_cast<int>(absl::ToDoubleSeconds(absl::Now() - start))] = row;
        next_rss += span / 10;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });

  // The fault: SIGKILL at 35% of the span, back on its address at 45%.
  std::thread fault([&] {
    std::this_thread::sleep_until(absl::ToChronoTime(start + span * 0.35));
    cluster.worker(kRestarted).Signal(SIGKILL);
    cluster.worker(kRestarted).Wait(absl::Seconds(10));
    std::this_thread::sleep_until(absl::ToChronoTime(start + span * 0.45));
    absl::Status st = cluster.RestartWorker(kRestarted);
    EXPECT_TRUE(st.ok()) << st;
    restarted = st.ok();
  });

  std::vector<Outcome> outcomes(n_requests);
  std::vector<std::thread> clients;
  for (int i = 0; i < n_requests; ++i) {
    std::this_thread::sleep_until(absl::ToChronoTime(start + span * i / n_requests));
    clients.emplace_back([&, i] { outcomes[i] = RunRequest(stub.get(), plans[i], i); });
  }
  for (auto& t : clients) t.join();
  fault.join();
  const double elapsed_s = absl::ToDoubleSeconds(absl::Now() - start);
  // Keep sampling the restarted worker a little: sequences placed on it near
  // the end may still be releasing.
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  stop_monitor = true;
  monitor.join();

  int completed = 0, cancelled = 0, lost = 0;
  int64_t tokens = 0;
  for (int i = 0; i < n_requests; ++i) {
    const Plan& p = plans[i];
    const Outcome& o = outcomes[i];
    tokens += o.tokens.size();
    if (p.greedy) {
      const std::vector<int32_t> want(reference[p.prompt].begin(),
                                      reference[p.prompt].begin() + o.tokens.size());
      EXPECT_EQ(o.tokens, want) << "request " << i << " (greedy) diverged";
    }
    if (o.cancelled_by_client) {
      ++cancelled;
      EXPECT_EQ(o.status.error_code(), grpc::StatusCode::CANCELLED) << "request " << i;
    } else if (o.status.ok() && static_cast<int>(o.tokens.size()) == p.max_tokens) {
      ++completed;
    } else {
      ++lost;
      ADD_FAILURE() << "request " << i << " lost: " << o.status.error_message() << " after "
                    << o.tokens.size() << " of " << p.max_tokens << " tokens";
    }
  }
  EXPECT_EQ(lost, 0);
  EXPECT_GT(restarted_max_sequences.load(), 0) << "the restarted worker was never used again";

  // KV back to zero everywhere (releases are asynchronous to the client):
  // no request sequence, no block held by one. Only the coordinator's
  // prefix cache may keep blocks, and never more than the blocks in use.
  for (const std::string& address : cluster.worker_addresses()) {
    int64_t held = -1;
    for (int i = 0; i < 100 && held != 0; ++i) {
      auto info = Info(address);
      held = info ? info->kv().sequences() + info->kv().blocks_used() -
                        info->kv().blocks_cache_only()
                  : -1;
      if (info) {
        EXPECT_LE(info->kv().blocks_cache_only(), info->kv().blocks_used());
        EXPECT_GT(info->kv().block_positions(), 0);
      }
      if (held != 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_EQ(held, 0) << "worker " << address << " still holds request KV blocks (or is unreachable)";
  }

  std::printf("[soak] %d requests in %.0f s: %d completed, %d cancelled by the client, %d lost; "
              "%lld tokens streamed (%.1f tokens/s); restarted worker held up to %lld sequences\n",
              n_requests, elapsed_s, completed, cancelled, lost, static_cast<long long>(tokens),
              tokens / elapsed_s, static_cast<long long>(restarted_max_sequences.load()));
  std::printf("[soak] worker RSS (MiB) over time; worker %d was restarted at %.0f s:\n", kRestarted,
              absl::ToDoubleSeconds(span * 0.45));
  for (const auto& [t, row] : rss) {
    std::printf("[soak]   t=%3d s:", t);
    for (double mib : row) std::printf(" %6.1f", mib);
    std::printf("\n");
  }
  // Stable: after warm-up (the sample at a quarter of the span) no worker
  // that ran throughout grows by more than a quarter plus 8 MiB.
  std::vector<double> warm, last;
  for (const auto& [t, row] : rss) {
    if (warm.empty() && t >= absl::ToDoubleSeconds(span) / 4) warm = row;
    last = row;
  }
  ASSERT_FALSE(warm.empty());
  for (size_t w = 0; w < warm.size(); ++w) {
    if (static_cast<int>(w) == kRestarted) continue;
    EXPECT_LT(last[w], warm[w] * 1.25 + 8) << "worker " << w << " RSS grew from " << warm[w]
                                            << " to " << last[w] << " MiB";
  }
}

}  // namespace
}  // namespace shardlm::testing
