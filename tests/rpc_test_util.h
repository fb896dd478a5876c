// Helpers for the loopback gRPC tests: in-process workers (a StageServer on
// 127.0.0.1:0 around a LlamaStage), RemoteStage connections to them, and
// greedy decoding through any pipeline.
#ifndef SHARDLM_TESTS_RPC_TEST_UTIL_H_
#define SHARDLM_TESTS_RPC_TEST_UTIL_H_

#include <memory>
#include <string>
#include <vector>

#include "coordinator/pipeline.h"
#include "coordinator/remote_stage.h"
#include "worker/llama_stage.h"
#include "worker/stage_server.h"

namespace shardlm::testing {

std::string StoriesModel();  // stories260K.gguf: 5 layers, n_embd 64, vocab 512
std::string NanoModel();     // nano-q4_0.gguf (chunking-invariant sums): 4 layers, n_embd 256, vocab 512

// A local stage of layers [first, last) with an f32 KV cache (so remote and
// local runs are comparable bit for bit).
std::shared_ptr<LlamaStage> LocalStage(const std::string& model, int first, int last,
                                       int64_t kv_budget_bytes = 0);

// A serving worker: StageServer on 127.0.0.1:0 with a LlamaStage plugged in.
struct TestWorker {
  std::unique_ptr<StageServer> server;
  std::shared_ptr<LlamaStage> stage;
};
TestWorker StartWorker(const std::string& model, int first, int last,
                       StageServerOptions options = {}, int64_t kv_budget_bytes = 0);

// Connect options for tests: short timeouts, quiet.
RemoteStageOptions FastConnectOptions();
std::unique_ptr<RemoteStage> ConnectTo(const StageServer& server,
                                       RemoteStageOptions options = FastConnectOptions());

// A direct client of the Stage service (for calls RemoteStage never makes).
std::unique_ptr<v1::Stage::Stub> RawStub(const StageServer& server);

// Greedy decoding: prefill `prompt` as sequence `seq`, then `n` tokens.
std::vector<int32_t> GreedyTokens(Pipeline* pipeline, SeqId seq, const std::vector<int32_t>& prompt,
                                  int n);

// A prompt of `n` valid token ids (BOS first) for a 512-token vocabulary.
std::vector<int32_t> TestPrompt(int n);

// A batch of token ids for one sequence at positions [start, start + n).
ForwardRequest TokenBatch(SeqId seq, int start, const std::vector<int32_t>& tokens);

}  // namespace shardlm::testing

#endif  // SHARDLM_TESTS_RPC_TEST_UTIL_H_
