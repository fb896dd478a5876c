// Loads llama.cpp's golden outputs from ../shared/golden (format described in
// golden/README.md) and runs a stage the way the goldens were produced.
#ifndef SHARDLM_TESTS_GOLDEN_H_
#define SHARDLM_TESTS_GOLDEN_H_

#include <memory>
#include <string>
#include <vector>

#include "worker/llama_stage.h"

namespace shardlm::testing {

struct Golden {
  std::string name;        // "nano-q4_0.once", "families/qwen2-nano-q4_0.once"
  std::string model_path;  // absolute
  std::string prompt;
  std::string kv_cache;  // "f16", "f32" or "q8_0" (then with flash attention)
  int n_vocab = 0;
  std::vector<int32_t> prompt_tokens;  // with BOS
  std::vector<int32_t> greedy_tokens;
  std::vector<double> greedy_margins;
  std::vector<float> last_logits;    // [n_vocab] at the last prompt position
  std::vector<float> prompt_logits;  // [n_prompt, n_vocab], empty when absent
};

// Every golden/*.json, golden/families/*.json (as "families/NAME") and
// golden/kv-q8_0/*.json (as "kv-q8_0/NAME"), sorted.
std::vector<std::string> GoldenNames();
Golden LoadGolden(const std::string& name);

// A whole-model stage (all layers) with the golden's KV type.
std::unique_ptr<LlamaStage> OpenStage(const std::string& model_path, KvType kv, int first = 0,
                                      int last = -1);

// Logits of every position of `tokens` evaluated as one batch (sequence `seq`
// must be empty on `stage`): [tokens.size(), n_vocab].
std::vector<float> BatchLogits(Stage* stage, SeqId seq, const std::vector<int32_t>& tokens);

// Logits after feeding `tokens` in chunks of `chunk` (1 = token by token):
// the same layout as BatchLogits.
std::vector<float> ChunkedLogits(Stage* stage, SeqId seq, const std::vector<int32_t>& tokens,
                                 int chunk);

int Argmax(const float* row, int n);
float MaxAbsDiff(const float* a, const float* b, int n);

}  // namespace shardlm::testing

#endif  // SHARDLM_TESTS_GOLDEN_H_
