// shardlm-bench: a gRPC load generator for a shardlm coordinator. C client
// threads each keep one Generate stream open at a time until N requests are
// done; prints aggregate decode throughput and latency percentiles (time to
// first token, inter-token latency, request latency), with a progress line.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "common/base/cli_args.h"
#include "common/rpc/credentials.h"
#include "common/rpc/grpc_settings.h"
#include "shardlm/v1/shardlm.grpc.pb.h"

namespace {

struct Sample {
  double ttft_ms = 0;
  double total_ms = 0;
  int tokens = 0;
  std::vector<double> itl_ms;  // gaps between consecutive tokens
  bool ok = false;
  absl::Time end;  // when its stream closed
};

double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p / 100.0 * v.size()))];
}

}  // namespace

int main(int argc, char** argv) {
  using namespace shardlm;
  std::string server = "127.0.0.1:50051";
  int concurrency = 4, requests = 16, prompt_tokens = 32, max_tokens = 64;
  bool json = false;
  TlsClientFlags tls;
  tls.insecure = true;  // plaintext unless a --tls-* file is given
  std::string auth_token;
  CliArgs args(
      "shardlm-bench --server HOST:PORT [-c 4] [-n 16] [--prompt-tokens 32] [--max-tokens 64]",
      "Drives a coordinator with C concurrent greedy Generate streams until N requests\n"
      "are done; prints throughput and latency percentiles.");
  args.AddString("--server", &server, "coordinator address");
  args.AddInt("-c,--concurrency", &concurrency, "streams open at once");
  args.AddInt("-n,--requests", &requests, "requests in total");
  args.AddInt("--prompt-tokens", &prompt_tokens,
              "prompt length in tokens (BOS + pseudo-random ids)");
  args.AddInt("--max-tokens", &max_tokens, "tokens generated per request");
  args.AddBool("--json", &json, "print the summary as JSON");
  args.AddString("--tls-ca", &tls.ca_file, "TLS, trusting this CA (PEM) for the coordinator");
  args.AddString("--tls-cert", &tls.cert_file, "client certificate (PEM)");
  args.AddString("--tls-key", &tls.key_file, "private key of --tls-cert");
  args.AddString("--auth-token", &auth_token, "bearer token sent as 'authorization: Bearer TOKEN'");
  if (std::optional<int> exit = args.ParseForMain(argc, argv, "shardlm-bench")) return *exit;
  auto credentials = MakeChannelCredentials(tls);
  if (!credentials.ok()) return ExitWithError("shardlm-bench", credentials.status(), 2);
  auto channel = CreateClientChannel(server, *credentials, "");
  auto stub = v1::ShardLM::NewStub(channel);
  v1::ModelInfo info;
  {
    grpc::ClientContext ctx;
    AddBearerToken(&ctx, auth_token);
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    grpc::Status st = stub->GetModelInfo(&ctx, v1::GetModelInfoRequest(), &info);
    if (!st.ok()) {
      std::fprintf(stderr, "shardlm-bench: %s: %s\n", server.c_str(), st.error_message().c_str());
      return 1;
    }
  }
  std::atomic<int> next{0}, done{0}, failed{0};
  std::atomic<int64_t> tokens{0};
  std::vector<Sample> samples(requests);
  const absl::Time start = absl::Now();
  std::vector<std::thread> clients;
  for (int c = 0; c < concurrency; ++c) {
    clients.emplace_back([&] {
      for (int i = next++; i < requests; i = next++) {
        v1::GenerateRequest req;
        uint32_t s = 0x9e3779b9u + 7919u * i;
        req.add_prompt_tokens(info.bos_token_id());
        while (req.prompt_tokens_size() < prompt_tokens) {
          s ^= s << 13, s ^= s >> 17, s ^= s << 5;
          req.add_prompt_tokens(3 + static_cast<int32_t>(s % (info.n_vocab() - 3)));
        }
        req.mutable_sampling()->set_temperature(0);
        req.mutable_sampling()->set_max_tokens(max_tokens);
        req.mutable_sampling()->set_ignore_eos(true);
        grpc::ClientContext ctx;
        AddBearerToken(&ctx, auth_token);
        ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(10));
        Sample& sample = samples[i];
        const absl::Time t0 = absl::Now();
        absl::Time last = t0;
        auto reader = stub->Generate(&ctx, req);
        v1::GenerateResponse r;
        while (reader->Read(&r)) {
          if (!r.has_chunk() || r.chunk().token_id() < 0) continue;
          const absl::Time now = absl::Now();
          if (sample.tokens == 0) {
            sample.ttft_ms = absl::ToDoubleMilliseconds(now - t0);
          } else {
            sample.itl_ms.push_back(absl::ToDoubleMilliseconds(now - last));
          }
          last = now;
          ++sample.tokens;
          ++tokens;
        }
        sample.end = absl::Now();
        sample.total_ms = absl::ToDoubleMilliseconds(sample.end - t0);
        sample.ok = reader->Finish().ok();
        if (!sample.ok) ++failed;
        ++done;
      }
    });
  }
  // Progress line while the clients run.
  while (done.load() < requests) {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const double secs = absl::ToDoubleSeconds(absl::Now() - start);
    std::fprintf(stderr, "\r%d/%d requests, %lld tokens, %.1f tokens/s   ", done.load(), requests,
                 static_cast<long long>(tokens.load()), tokens.load() / secs);
  }
  for (auto& t : clients) t.join();
  // Up to the last stream's end, not the progress loop's wake-up (which
  // added up to half a second).
  absl::Time end = start;
  for (const Sample& s : samples) end = std::max(end, s.end);
  const double wall = absl::ToDoubleSeconds(end - start);
  std::fprintf(stderr, "\n");
  std::vector<double> ttft, itl, total;
  for (const Sample& s : samples) {
    if (!s.ok) continue;
    ttft.push_back(s.ttft_ms);
    total.push_back(s.total_ms);
    itl.insert(itl.end(), s.itl_ms.begin(), s.itl_ms.end());
  }
  const double tps = tokens.load() / wall;
  if (json) {
    std::printf(
        "{\"concurrency\":%d,\"requests\":%d,\"failed\":%d,\"prompt_tokens\":%d,\"max_tokens\":%d,"
        "\"wall_s\":%.3f,\"generated_tokens\":%lld,\"tokens_per_s\":%.2f,"
        "\"ttft_ms\":{\"p50\":%.2f,\"p90\":%.2f,\"p99\":%.2f},"
        "\"itl_ms\":{\"p50\":%.2f,\"p90\":%.2f,\"p99\":%.2f},"
        "\"request_ms\":{\"p50\":%.2f,\"p90\":%.2f,\"p99\":%.2f}}\n",
        concurrency, requests, failed.load(), prompt_tokens, max_tokens, wall,
        static_cast<long long>(tokens.load()), tps, Percentile(ttft, 50), Percentile(ttft, 90),
        Percentile(ttft, 99), Percentile(itl, 50), Percentile(itl, 90), Percentile(itl, 99),
        Percentile(total, 50), Percentile(total, 90), Percentile(total, 99));
  } else {
    std::printf("%d requests (%d failed), concurrency %d, %.2f s: %.1f generated tokens/s\n",
                requests, failed.load(), concurrency, wall, tps);
    std::printf("time to first token  p50 %.1f ms  p90 %.1f ms  p99 %.1f ms\n",
                Percentile(ttft, 50), Percentile(ttft, 90), Percentile(ttft, 99));
    std::printf("inter-token latency  p50 %.1f ms  p90 %.1f ms  p99 %.1f ms\n", Percentile(itl, 50),
                Percentile(itl, 90), Percentile(itl, 99));
    std::printf("request latency      p50 %.0f ms  p90 %.0f ms  p99 %.0f ms\n",
                Percentile(total, 50), Percentile(total, 90), Percentile(total, 99));
  }
  return failed.load() == 0 ? 0 : 1;
}
