#include "tests/golden.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <system_error>

#include "tests/test_data.h"

namespace shardlm::testing {

namespace {

// The folders of golden JSON files, relative to golden/: llama.cpp's goldens
// for the Llama-2-style models, families/ for Llama 3 / Qwen2 / Qwen3, and
// kv-q8_0/ (llama.cpp with -fa -ctk q8_0 -ctv q8_0).
constexpr const char* kGoldenFolders[] = {"", "families/", "kv-q8_0/"};

}  // namespace

std::vector<std::string> GoldenNames() {
  std::vector<std::string> names;
  for (const char* folder : kGoldenFolders) {
    std::error_code ec;
    std::filesystem::directory_iterator dir(TestDataPath("golden/") + folder, ec);
    if (ec) {
      // No test data (a bare clone): this runs at static initialization, also
      // when the build lists the tests, so it must not throw. One name that
      // fails when run keeps the suite from silently having no tests.
      return {"missing_test_data"};
    }
    for (const auto& e : dir) {
      const std::string file = e.path().filename().string();
      if (e.is_regular_file() && file.size() > 5 && file.ends_with(".json")) {
        names.push_back(folder + file.substr(0, file.size() - 5));
      }
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

Golden LoadGolden(const std::string& name) {
  Golden g;
  g.name = name;
  // Binary files sit beside their JSON.
  const std::string dir = "golden/" + name.substr(0, name.rfind('/') + 1);
  const auto j = nlohmann::json::parse(ReadFileOrDie(TestDataPath("golden/" + name + ".json")));
  g.model_path = TestDataPath("models/" + j.at("model_file").get<std::string>());
  g.prompt = j.at("prompt").get<std::string>();
  g.kv_cache = j.at("settings").at("kv_cache").get<std::string>();
  g.prompt_tokens = j.at("prompt_tokens").get<std::vector<int32_t>>();
  g.greedy_tokens = j.at("greedy_tokens").get<std::vector<int32_t>>();
  g.greedy_margins = j.at("greedy_margins").get<std::vector<double>>();
  g.last_logits = ReadFloats(TestDataPath(dir + j.at("logits_bin").at("file").get<std::string>()));
  g.n_vocab = static_cast<int>(g.last_logits.size());
  // Every prompt position: nano / stories260K, and the families' `once`
  // (null for their other prompts).
  if (j.contains("prompt_logits_bin") && !j.at("prompt_logits_bin").is_null()) {
    g.prompt_logits =
        ReadFloats(TestDataPath(dir + j.at("prompt_logits_bin").at("file").get<std::string>()));
  }
  return g;
}

std::unique_ptr<LlamaStage> OpenStage(const std::string& model_path, KvType kv, int first,
                                      int last) {
  StageOptions o;
  o.kv_type = kv;
  o.first_layer = first;
  o.last_layer = last;
  auto stage = LlamaStage::Open(model_path, o);
  EXPECT_TRUE(stage.ok()) << stage.status();
  return stage.ok() ? std::move(*stage) : nullptr;
}

std::vector<float> ChunkedLogits(Stage* stage, SeqId seq, const std::vector<int32_t>& tokens,
                                 int chunk) {
  const int n_vocab = stage->info().n_vocab;
  std::vector<float> out(tokens.size() * n_vocab);
  for (size_t begin = 0; begin < tokens.size(); begin += chunk) {
    const size_t end = std::min(tokens.size(), begin + chunk);
    ForwardRequest r;
    for (size_t i = begin; i < end; ++i) {
      r.seq_ids.push_back(seq);
      r.positions.push_back(static_cast<int32_t>(i));
      r.tokens.push_back(tokens[i]);
      r.want_logits.push_back(1);
    }
    ForwardResult res;
    absl::Status st = stage->Forward(r, &res);
    EXPECT_TRUE(st.ok()) << st;
    if (!st.ok()) return {};
    std::copy(res.logits.begin(), res.logits.end(), out.begin() + begin * n_vocab);
  }
  return out;
}

std::vector<float> BatchLogits(Stage* stage, SeqId seq, const std::vector<int32_t>& tokens) {
  return ChunkedLogits(stage, seq, tokens, static_cast<int>(tokens.size()));
}

int Argmax(const float* row, int n) {
  return static_cast<int>(std::max_element(row, row + n) - row);
}

float MaxAbsDiff(const float* a, const float* b, int n) {
  float m = 0;
  for (int i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

}  // namespace shardlm::testing
