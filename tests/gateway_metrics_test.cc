// The coordinator's /metrics as Kubernetes inference gateways and vLLM
// dashboards read it (coordinator/gateway_metrics.h): RemoteStage learns the
// workers' KV use from their Forward / Release replies; with requests held
// mid-flight the page shows them waiting and running and the KV in use; after
// they end, the latency histograms count exactly their tokens and requests
// and the per-stage histograms carry a `stage` label; `shardlm serve
// --metrics-listen` serves the same names over HTTP, on its metrics port and
// on the OpenAI API's port.
#include "coordinator/gateway_metrics.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <signal.h>

#include <condition_variable>
#include <map>
#include <mutex>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/base/subprocess.h"
#include "common/model/gguf.h"
#include "coordinator/coordinator_server.h"
#include "coordinator/engine.h"
#include "shardlm/v1/shardlm.grpc.pb.h"
#include "tests/greedy_request.h"
#include "tests/fake_stage.h"
#include "tests/rpc_test_util.h"
#include "tests/stream_wait.h"
#include "tests/test_data.h"

namespace shardlm::testing {
namespace {

// A Prometheus text page, parsed strictly enough for what gateways need:
// every sample's family declared once by a TYPE line, each family's lines
// together, every value a number.
struct Page {
  struct Sample {
    std::string name, labels;
    double value;
  };
  std::vector<Sample> samples;
  std::map<std::string, std::string> types;
  std::string error;  // the first violation, empty if none

  // The value of the first sample named `name` whose labels contain every
  // fragment; -1 if there is none.
  double Get(const std::string& name, std::vector<std::string> fragments = {}) const {
    for (const Sample& s : samples) {
      bool match = s.name == name;
      for (const std::string& f : fragments) match = match && absl::StrContains(s.labels, f);
      if (match) return s.value;
    }
    return -1;
  }
  int Count(const std::string& name) const {
    int n = 0;
    for (const Sample& s : samples) n += s.name == name;
    return n;
  }
};

Page Parse(const std::string& text) {
  Page page;
  std::set<std::string> closed;  // families whose lines have ended
  std::string current;
  auto fail = [&](const std::string& why) {
    if (page.error.empty()) page.error = why;
  };
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipEmpty())) {
    if (absl::StartsWith(line, "# TYPE ")) {
      std::vector<std::string> parts = absl::StrSplit(line.substr(7), ' ');
      if (parts.size() != 2) fail(absl::StrCat("bad TYPE line: ", line));
      if (page.types.count(parts[0]) > 0) fail(absl::StrCat("second TYPE of ", parts[0]));
      page.types[parts[0]] = parts.back();
      continue;
    }
    if (absl::StartsWith(line, "#")) continue;
    const size_t brace = line.find('{');
    const size_t space = line.rfind(' ');
    Page::Sample s;
    s.name = std::string(line.substr(0, std::min(brace, space)));
    if (brace != absl::string_view::npos) s.labels = std::string(line.substr(brace, space - brace));
    char* end = nullptr;
    const std::string value(line.substr(space + 1));
    s.value = std::strtod(value.c_str(), &end);
    if (end == value.c_str() || *end != '\0') fail(absl::StrCat("bad value: ", line));
    std::string family = s.name;
    for (const char* suffix : {"_bucket", "_sum", "_count"}) {
      const std::string base = s.name.substr(0, s.name.size() - std::strlen(suffix));
      if (absl::EndsWith(s.name, suffix) && page.types.count(base) > 0 &&
          page.types[base] == "histogram") {
        family = base;
      }
    }
    if (page.types.count(family) == 0) fail(absl::StrCat("no TYPE for ", s.name));
    if (family != current) {
      if (closed.count(family) > 0) fail(absl::StrCat("lines of ", family, " are not together"));
      if (!current.empty()) closed.insert(current);
      current = family;
    }
    page.samples.push_back(std::move(s));
  }
  return page;
}

// A stage whose Forward calls wait until the test opens it (bounded: after
// a minute it opens by itself, so a failing test never hangs). It has no
// Fork (Stage's default refuses it): the engine's prefix-cache lookups are
// counted but its entries are never made, so the KV returns to 0 when the
// requests end.
class GatedStage : public Stage {
 public:
  explicit GatedStage(std::shared_ptr<Stage> inner) : inner_(std::move(inner)) {}
  const ShardInfo& info() const override { return inner_->info(); }
  absl::Status Forward(const ForwardRequest& request, ForwardResult* result) override {
    {
      std::unique_lock<std::mutex> lock(mu_);
      ++arrived_;
      cv_.notify_all();
      cv_.wait_for(lock, std::chrono::seconds(60), [&] { return open_; });
    }
    return inner_->Forward(request, result);
  }
  absl::Status Release(SeqId seq) override { return inner_->Release(seq); }
  absl::Status Release(absl::Span<const SeqId> seqs) override { return inner_->Release(seqs); }
  KvStats kv_stats() const override { return inner_->kv_stats(); }
  KvStats known_kv_stats() const override { return inner_->known_kv_stats(); }
  std::string name() const override { return inner_->name(); }
  absl::Status Ping() override { return inner_->Ping(); }

  bool WaitForCall() {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::seconds(60), [&] { return arrived_ > 0; });
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }

 private:
  std::shared_ptr<Stage> inner_;
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;
  bool open_ = false;
};

// stories260K's f32 KV is 256 bytes per token and layer: room for ~1000
// tokens per stage, and a use the ratio shows.
constexpr int64_t kBudget = 1 << 20;

TEST(KvCacheUsageTest, PrefixCacheOnlyBlocksAreFreeAndTheFullestStageDecides) {
  KvStats cached;  // 10 of 20 blocks allocated, 6 of them only by cache entries
  cached.blocks_budget = 20;
  cached.blocks_used = 10;
  cached.blocks_cache_only = 6;
  cached.bytes_budget = 2000;
  cached.bytes_used = 1000;
  KvStats bytes_only;  // a stage that reports no blocks: bytes decide
  bytes_only.bytes_budget = 1000;
  bytes_only.bytes_used = 250;
  absl::StatusOr<std::unique_ptr<Pipeline>> p = Pipeline::Create(
      std::vector<std::shared_ptr<Stage>>{std::make_shared<FakeStage>(0, 2, 4, "a", cached),
                                          std::make_shared<FakeStage>(2, 4, 4, "b", bytes_only)});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_DOUBLE_EQ((*p)->KvCacheUsage(), 0.25);  // max(4/20, 250/1000)
  (*p)->SetHealthy(1, 0, false);                  // a stage that is down holds nothing
  EXPECT_DOUBLE_EQ((*p)->KvCacheUsage(), 0.2);
  MetricsPage page;
  (*p)->RenderMetrics(&page);
  EXPECT_TRUE(absl::StrContains(page.text(), "shardlm_kv_cache_usage_ratio 0.2")) << page.text();
}

TEST(GatewayMetricsTest, RemoteStageLearnsKvUseFromForwardAndReleaseReplies) {
  TestWorker w = StartWorker(StoriesModel(), 0, 5, {}, kBudget);
  ASSERT_NE(w.stage, nullptr);
  std::unique_ptr<RemoteStage> remote = ConnectTo(*w.server);
  ASSERT_NE(remote, nullptr);
  EXPECT_EQ(remote->known_kv_stats().sequences, 0);
  EXPECT_EQ(remote->known_kv_stats().bytes_budget, kBudget);
  ForwardResult out;
  ASSERT_TRUE(remote->Forward(TokenBatch(7, 0, TestPrompt(20)), &out).ok());
  // known_kv_stats makes no call: this came with the Forward reply.
  const KvStats after_forward = remote->known_kv_stats();
  EXPECT_EQ(after_forward.sequences, 1);
  EXPECT_EQ(after_forward.tokens, 20);
  EXPECT_GT(after_forward.bytes_used, 0);
  EXPECT_EQ(after_forward.bytes_used, w.stage->kv_stats().bytes_used);
  ASSERT_TRUE(remote->Release(7).ok());
  const KvStats after_release = remote->known_kv_stats();
  EXPECT_EQ(after_release.sequences, 0);
  EXPECT_EQ(after_release.tokens, 0);
  EXPECT_EQ(after_release.bytes_used, w.stage->kv_stats().bytes_used);
}

TEST(GatewayMetricsTest, PageShowsWaitingRunningKvThenExactLatencyCounts) {
  const std::string model = StoriesModel();
  TestWorker w0 = StartWorker(model, 0, 3, {}, kBudget);
  TestWorker w1 = StartWorker(model, 3, 5, {}, kBudget);
  ASSERT_NE(w0.stage, nullptr);
  ASSERT_NE(w1.stage, nullptr);
  std::shared_ptr<Stage> first = ConnectTo(*w0.server);
  std::shared_ptr<Stage> second = ConnectTo(*w1.server);
  ASSERT_NE(first, nullptr);
  ASSERT_NE(second, nullptr);
  auto last = std::make_shared<GatedStage>(second);
  auto pipeline = Pipeline::Create(std::vector<std::shared_ptr<Stage>>{first, last});
  ASSERT_TRUE(pipeline.ok()) << pipeline.status();
  auto file = GgufFile::Open(model);
  ASSERT_TRUE(file.ok()) << file.status();
  auto tokenizer = Tokenizer::FromGguf(**file);
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
  EngineOptions eo;
  eo.max_active = 1;  // one runs, the others wait
  eo.micro_batches = 1;
  Engine engine(pipeline->get(), tokenizer->get(), eo);

  constexpr int kRequests = 3, kTokens = 12;
  std::vector<std::shared_ptr<TokenStream>> done;
  for (int i = 0; i < kRequests; ++i) {
    GenerationRequest r;
    r.prompt = TestPrompt(8 + i);
    r.params = SamplingParams::Greedy();
    r.params.max_tokens = kTokens;
    r.params.ignore_eos = true;
    done.push_back(std::make_shared<TokenStream>());
    ASSERT_TRUE(engine.Submit(std::move(r), done.back()).ok());
  }
  // The first request's prompt has passed the first stage and waits at the
  // last: it runs, the other two wait, the first stage holds its KV.
  ASSERT_TRUE(last->WaitForCall());
  const std::string held_text = RenderCoordinatorMetrics(engine, **pipeline, "stories260K");
  const KvStats held_kv = w0.stage->kv_stats();  // nothing moves until the gate opens
  EXPECT_GT(held_kv.bytes_used, 0);
  last->Open();
  const Page held = Parse(held_text);
  EXPECT_EQ(held.error, "") << held_text;
  const std::string model_label = "model_name=\"stories260K\"";
  EXPECT_EQ(held.Get("vllm:num_requests_running", {model_label}), 1);
  EXPECT_EQ(held.Get("vllm:num_requests_waiting", {model_label}), 2);
  EXPECT_EQ(held.Get("shardlm_active_sequences"), 1);
  EXPECT_EQ(held.Get("shardlm_queue_depth"), 2);
  const double kv = held.Get("vllm:kv_cache_usage_perc", {model_label});
  EXPECT_GT(kv, 0) << held_text;
  EXPECT_LE(kv, 1);
  EXPECT_EQ(held.Get("vllm:gpu_cache_usage_perc", {model_label}), kv);
  EXPECT_EQ(held.Get("shardlm_kv_cache_usage_ratio"), kv);
  const std::string stage0 = absl::StrCat("stage=\"", first->name(), "\"");
  EXPECT_EQ(held.Get("shardlm_stage_kv_bytes", {stage0}), held_kv.bytes_used);
  EXPECT_EQ(held.Get("shardlm_stage_kv_budget_bytes", {stage0}), kBudget);
  // Utilisation counts blocks held by requests (this one's), over the
  // budget in blocks.
  ASSERT_GT(held_kv.blocks_budget, 0);
  EXPECT_DOUBLE_EQ(held.Get("shardlm_stage_kv_usage_ratio", {stage0}),
                   static_cast<double>(held_kv.blocks_used - held_kv.blocks_cache_only) /
                       held_kv.blocks_budget);
  EXPECT_EQ(held.Get("vllm:time_to_first_token_seconds_count", {model_label}), 0);

  int generated = 0;
  for (auto& d : done) {
    std::vector<int32_t> ids;
    StreamEnd end;
    ASSERT_TRUE(WaitForEnd(*d, absl::Seconds(120), &ids, &end));
    EXPECT_EQ(end.reason, FinishReason::kLength) << end.error;
    generated += static_cast<int>(ids.size());
  }
  ASSERT_EQ(generated, kRequests * kTokens);
  // The KV is released after the requests end, asynchronously: poll
  // (bounded) until the Release replies have brought the page down to 0.
  Page page;
  std::string text;
  for (int i = 0; i < 200; ++i) {
    text = RenderCoordinatorMetrics(engine, **pipeline, "stories260K");
    page = Parse(text);
    if (page.Get("shardlm_stage_kv_bytes", {"layers=\"3:5\""}) == 0 &&
        page.Get("shardlm_stage_kv_bytes", {"layers=\"0:3\""}) == 0) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  EXPECT_EQ(page.error, "") << text;
  EXPECT_EQ(page.Get("vllm:kv_cache_usage_perc", {model_label}), 0) << text;
  EXPECT_EQ(page.Get("vllm:num_requests_running", {model_label}), 0);
  EXPECT_EQ(page.Get("vllm:num_requests_waiting", {model_label}), 0);
  // One first token per request, one gap per later token.
  EXPECT_EQ(page.Get("vllm:time_to_first_token_seconds_count", {model_label}), kRequests);
  EXPECT_EQ(page.Get("vllm:inter_token_latency_seconds_count", {model_label}),
            kRequests * (kTokens - 1));
  EXPECT_EQ(page.Get("vllm:time_per_output_token_seconds_count", {model_label}),
            kRequests * (kTokens - 1));
  EXPECT_EQ(page.Get("vllm:time_to_first_token_seconds_bucket", {model_label, "le=\"+Inf\""}),
            kRequests);
  EXPECT_EQ(page.Get("vllm:e2e_request_latency_seconds_count", {model_label}), kRequests);
  EXPECT_EQ(page.Get("vllm:generation_tokens_total", {model_label}), kRequests * kTokens);
  EXPECT_EQ(page.Get("vllm:prompt_tokens_total", {model_label}), 8 + 9 + 10);
  EXPECT_EQ(page.Get("vllm:request_success_total", {model_label, "finished_reason=\"length\""}),
            kRequests);
  EXPECT_EQ(page.Get("vllm:request_success_total", {model_label, "finished_reason=\"abort\""}), 0);
  EXPECT_EQ(page.Get("shardlm_time_to_first_token_seconds_count"), kRequests);
  // The prefix cache (on by default) looked every prompt up, in tokens.
  EXPECT_EQ(page.Get("vllm:prefix_cache_queries", {model_label}), 8 + 9 + 10);
  EXPECT_EQ(page.Get("shardlm_prefix_cache_query_tokens_total"), 8 + 9 + 10);
  EXPECT_EQ(page.Get("vllm:prefix_cache_hits", {model_label}),
            page.Get("shardlm_prefix_cache_hit_tokens_total"));
  // Per stage: every batch went through both stages, each call timed three ways.
  const std::string stage1 = absl::StrCat("stage=\"", last->name(), "\"");
  const double calls = page.Get("shardlm_stage_forward_seconds_count", {stage0});
  EXPECT_GE(calls, kTokens);  // at least one call per decode step
  for (const std::string& stage : {stage0, stage1}) {
    for (const char* family :
         {"shardlm_stage_forward_seconds_count", "shardlm_stage_compute_seconds_count",
          "shardlm_stage_hop_seconds_count"}) {
      EXPECT_EQ(page.Get(family, {stage}), calls) << family << " " << stage;
    }
    EXPECT_GT(page.Get("shardlm_stage_compute_seconds_sum", {stage}), 0) << stage;
  }
  EXPECT_EQ(page.Count("shardlm_stage_hop_seconds_bucket"),
            2 * (Histogram::LatencySeconds().size() + 1));  // its bounds and +Inf, per stage
}

std::string Scrape(const std::string& address) {
  httplib::Client client("http://" + address);
  client.set_read_timeout(10);
  auto res = client.Get("/metrics");
  EXPECT_TRUE(res) << "no answer from " << address;
  if (!res) return "";
  EXPECT_EQ(res->status, 200);
  return res->body;
}

TEST(GatewayMetricsE2eTest, ServeMetricsListenServesTheGatewayNames) {
  const std::string model = StoriesModel();
  auto serve =
      Subprocess::Start({SHARDLM_BIN, "serve", "--model", model, "--workers", "2", "--threads", "1",
                         "--kv-budget", "1M", "--listen", "127.0.0.1:0", "--metrics-listen",
                         "127.0.0.1:0", "--http-listen", "127.0.0.1:0"});
  ASSERT_TRUE(serve.ok()) << serve.status();
  auto http = (*serve)->WaitForLine("HTTP ", absl::Seconds(60));
  ASSERT_TRUE(http.ok()) << http.status();
  auto metrics = (*serve)->WaitForLine("METRICS ", absl::Seconds(60));
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  auto address = (*serve)->WaitForLine("SERVING ", absl::Seconds(60));
  ASSERT_TRUE(address.ok()) << address.status();

  constexpr int kRequests = 2, kTokens = 10;
  auto stub =
      v1::ShardLM::NewStub(grpc::CreateChannel(*address, grpc::InsecureChannelCredentials()));
  for (int i = 0; i < kRequests; ++i) {
    v1::GenerateRequest req = GreedyRequest(kTokens);
    for (int32_t t : TestPrompt(6)) req.add_prompt_tokens(t);
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    auto reader = stub->Generate(&ctx, req);
    v1::GenerateResponse r;
    while (reader->Read(&r)) {
    }
    ASSERT_TRUE(reader->Finish().ok());
  }
  const std::string text = Scrape(*metrics);
  const Page page = Parse(text);
  EXPECT_EQ(page.error, "") << text;
  const std::string model_label = "model_name=\"stories260K\"";
  EXPECT_EQ(page.Get("vllm:num_requests_waiting", {model_label}), 0) << text;
  EXPECT_EQ(page.Get("vllm:num_requests_running", {model_label}), 0);
  const double kv = page.Get("vllm:kv_cache_usage_perc", {model_label});
  EXPECT_GE(kv, 0);
  EXPECT_LE(kv, 1);
  EXPECT_EQ(page.Get("vllm:time_to_first_token_seconds_count", {model_label}), kRequests);
  EXPECT_EQ(page.Get("vllm:inter_token_latency_seconds_count", {model_label}),
            kRequests * (kTokens - 1));
  EXPECT_EQ(page.Get("vllm:generation_tokens_total", {model_label}), kRequests * kTokens);
  // Two workers: their own stage label, budget and timings.
  EXPECT_EQ(page.Count("shardlm_stage_kv_budget_bytes"), 2);
  EXPECT_EQ(page.Get("shardlm_stage_kv_budget_bytes", {"layers=\"0:"}), 1 << 20);
  for (const char* family :
       {"shardlm_stage_compute_seconds_count", "shardlm_stage_hop_seconds_count"}) {
    EXPECT_EQ(page.Count(family), 2) << family;
    EXPECT_GE(page.Get(family, {"stage=\"worker 127.0.0.1:"}), kTokens) << family;
  }
  // The HTTP API's port serves the same page (gateways scrape the serving
  // port), without an API key like /health.
  const Page on_api_port = Parse(Scrape(*http));
  EXPECT_EQ(on_api_port.error, "");
  EXPECT_EQ(on_api_port.Get("vllm:generation_tokens_total", {model_label}), kRequests * kTokens);
  EXPECT_EQ(on_api_port.Get("vllm:num_requests_running", {model_label}), 0);
  (*serve)->Signal(SIGTERM);
  EXPECT_EQ((*serve)->Wait(absl::Seconds(30)), 0);
}

// The API port's /metrics: open without the key the completions need (the
// endpoint picker scrapes with no credentials), absent when metrics are off.
TEST(GatewayMetricsE2eTest, ApiPortMetricsNeedNoKeyAndAreAbsentWhenMetricsAreOff) {
  TestWorker w = StartWorker(StoriesModel(), 0, 5, {}, kBudget);
  ASSERT_NE(w.stage, nullptr);
  for (const bool metrics_on : {true, false}) {
    CoordinatorOptions o;
    o.model_path = StoriesModel();
    o.workers = {w.server->address()};
    o.listen = "127.0.0.1:0";
    o.http_listen = "127.0.0.1:0";
    o.api_keys = {"sekret"};
    if (metrics_on) o.metrics_listen = "127.0.0.1:0";
    auto server = CoordinatorServer::Start(o);
    ASSERT_TRUE(server.ok()) << server.status();
    httplib::Client client("http://" + (*server)->http_address());
    client.set_read_timeout(10);
    auto completion =
        client.Post("/v1/completions", R"({"prompt":"Once","max_tokens":2})", "application/json");
    ASSERT_TRUE(completion);
    EXPECT_EQ(completion->status, 401);
    auto res = client.Get("/metrics");
    ASSERT_TRUE(res);
    if (metrics_on) {
      EXPECT_EQ(res->status, 200);
      EXPECT_TRUE(
          absl::StartsWith(res->get_header_value("Content-Type"), "text/plain; version=0.0.4"));
      const Page page = Parse(res->body);
      EXPECT_EQ(page.error, "");
      EXPECT_EQ(page.Get("vllm:num_requests_waiting", {"model_name=\"stories260K\""}), 0);
      EXPECT_EQ(page.Count("shardlm_stage_kv_budget_bytes"), 1);
    } else {
      EXPECT_EQ(res->status, 404);
    }
    (*server)->Shutdown();
  }
}

}  // namespace
}  // namespace shardlm::testing
