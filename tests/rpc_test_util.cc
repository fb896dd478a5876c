#include "tests/rpc_test_util.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "tests/test_data.h"

namespace shardlm::testing {

std::string StoriesModel() { return TestDataPath("models/stories260K.gguf"); }
std::string NanoModel() { return TestDataPath("models/nano-q4_0.gguf"); }

std::shared_ptr<LlamaStage> LocalStage(const std::string& model, int first, int last,
                                       int64_t kv_budget_bytes) {
  StageOptions o;
  o.first_layer = first;
  o.last_layer = last;
  o.kv_type = KvType::kF32;
  o.kv_budget_bytes = kv_budget_bytes;
  o.n_threads = 2;
  auto stage = LlamaStage::Open(model, o);
  EXPECT_TRUE(stage.ok()) << stage.status();
  return stage.ok() ? std::shared_ptr<LlamaStage>(std::move(*stage)) : nullptr;
}

TestWorker StartWorker(const std::string& model, int first, int last, StageServerOptions options,
                       int64_t kv_budget_bytes) {
  TestWorker w;
  options.listen_address = "127.0.0.1:0";
  auto server = StageServer::Start(options);
  EXPECT_TRUE(server.ok()) << server.status();
  if (!server.ok()) return w;
  w.server = std::move(*server);
  w.stage = LocalStage(model, first, last, kv_budget_bytes);
  if (w.stage != nullptr) {
    EXPECT_TRUE(WarmUpStage(w.stage.get()).ok());
    w.server->SetStage(w.stage, StageDetails{w.stage->config().name, w.stage->weight_bytes()});
  }
  return w;
}

RemoteStageOptions FastConnectOptions() {
  RemoteStageOptions o;
  o.call_timeout = absl::Seconds(20);
  o.connect_timeout = absl::Seconds(10);
  o.retry_interval = absl::Milliseconds(50);
  o.on_wait = [](const ConnectWait&) {};
  return o;
}

std::unique_ptr<RemoteStage> ConnectTo(const StageServer& server, RemoteStageOptions options) {
  auto remote = RemoteStage::Connect(server.address(), options);
  EXPECT_TRUE(remote.ok()) << remote.status();
  return remote.ok() ? std::move(*remote) : nullptr;
}

std::unique_ptr<v1::Stage::Stub> RawStub(const StageServer& server) {
  return v1::Stage::NewStub(CreateClientChannel(server.address()));
}

std::vector<int32_t> GreedyTokens(Pipeline* pipeline, SeqId seq, const std::vector<int32_t>& prompt,
                                  int n) {
  std::vector<int32_t> out;
  ForwardRequest r = TokenBatch(seq, 0, prompt);
  ForwardResult res;
  int pos = static_cast<int>(prompt.size());
  const int n_vocab = pipeline->model().n_vocab;
  for (int step = 0; step < n; ++step) {
    const absl::Status st = pipeline->Forward(r, &res);
    EXPECT_TRUE(st.ok()) << st;
    if (!st.ok() || res.logits.size() != static_cast<size_t>(n_vocab)) return out;
    const int32_t next = static_cast<int32_t>(
        std::max_element(res.logits.begin(), res.logits.end()) - res.logits.begin());
    out.push_back(next);
    r = TokenBatch(seq, pos++, {next});
  }
  return out;
}

std::vector<int32_t> TestPrompt(int n) {
  std::vector<int32_t> p = {1};
  for (int i = 1; i < n; ++i) p.push_back(3 + (i * 131 + 17) % 509);
  return p;
}

ForwardRequest TokenBatch(SeqId seq, int start, const std::vector<int32_t>& tokens) {
  ForwardRequest r;
  for (size_t i = 0; i < tokens.size(); ++i) {
    r.seq_ids.push_back(seq);
    r.positions.push_back(start + static_cast<int32_t>(i));
    r.tokens.push_back(tokens[i]);
  }
  return r;
}

}  // namespace shardlm::testing
