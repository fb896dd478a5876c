// Tokenizer throughput, single thread, on ~1 MB of generated English story
// text (built in memory, deterministic). Reports bytes/second; the target is
// >= 5 MB/s with the Llama 2 (32000) vocabulary, and for the byte-level BPE
// vocabularies (Llama 3, Qwen2) within 2x of llama.cpp on the same text.
//
//   build/bin/tokenize_bench [--benchmark_filter=...]
//   build/bin/tokenize_bench --write_text=FILE   # the text, for llama.cpp
//     (bench/llama_cpp_tokenize.c times llama_tokenize on it)
// The vocabularies come from $SHARDLM_TEST_DATA (default ../shared).
#include <benchmark/benchmark.h>

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <iterator>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "common/model/gguf.h"
#include "common/tokenizer/stream_detokenizer.h"
#include "common/tokenizer/tokenizer.h"

namespace shardlm {
namespace {

std::string DataPath(const std::string& relative) {
  const char* env = std::getenv("SHARDLM_TEST_DATA");
  const std::string dir = env != nullptr && *env != '\0' ? env : SHARDLM_DEFAULT_TEST_DATA;
  return dir + "/" + relative;
}

const Tokenizer* LoadOrNull(const std::string& relative) {
  auto gguf = GgufFile::Open(DataPath(relative));
  if (!gguf.ok()) {
    std::fprintf(stderr, "%s\n", gguf.status().ToString().c_str());
    return nullptr;
  }
  auto tokenizer = Tokenizer::FromGguf(**gguf);
  if (!tokenizer.ok()) {
    std::fprintf(stderr, "%s\n", tokenizer.status().ToString().c_str());
    return nullptr;
  }
  return tokenizer->release();
}

// Loaded once per process (the benchmark functions run several times).
const Tokenizer* Get(const std::string& relative) {
  static auto* cache = new std::map<std::string, const Tokenizer*>();
  auto [it, fresh] = cache->emplace(relative, nullptr);
  if (fresh) it->second = LoadOrNull(relative);
  return it->second;
}

// Sentences assembled from word lists with a fixed seed: varied enough that
// the text is not one repeated string, with punctuation, quotes, numbers,
// newlines and a few non-ASCII words.
std::string StoryText(size_t bytes) {
  static const char* kNames[] = {"Lily",        "Tom",           "Ben",     "Sue",
                                 "the old man", "a little girl", "the dog", "Mia",
                                 "Grandpa",     "the teacher",   "Zoë",     "José"};
  static const char* kVerbs[] = {"saw",      "found",      "wanted", "liked", "painted", "carried",
                                 "followed", "remembered", "shared", "lost",  "built",   "fixed"};
  static const char* kAdjs[] = {"big",    "red",    "shiny",     "tiny",  "happy",   "strange",
                                "wooden", "broken", "beautiful", "quiet", "sparkly", "enormous"};
  static const char* kNouns[] = {"ball",  "tree",   "house",  "boat", "kite",       "cake",
                                 "river", "garden", "castle", "bird", "lighthouse", "café"};
  static const char* kTails[] = {" in the park",    " near the river", " after school",
                                 " on a sunny day", " with a friend",  "",
                                 " at 7 o'clock",   " for 3 hours",    " by the sea"};
  std::mt19937 rng(42);
  auto pick = [&](const auto& list) { return list[rng() % std::size(list)]; };
  std::string text;
  text.reserve(bytes + 256);
  while (text.size() < bytes) {
    std::string s = std::string(pick(kNames)) + " " + pick(kVerbs) + " a " + pick(kAdjs) + " " +
                    pick(kNouns) + pick(kTails);
    s[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
    switch (rng() % 6) {
      case 0:
        text += "\"" + s + "!\" she said. ";
        break;
      case 1:
        text += s + ", and it was fun. ";
        break;
      case 2:
        text += s + ".\n";
        break;
      default:
        text += s + ". ";
        break;
    }
  }
  return text;
}

const std::string& Text() {
  static const std::string* text = new std::string(StoryText(1 << 20));
  return *text;
}

void BM_Encode(benchmark::State& state, const char* model) {
  const Tokenizer* t = Get(model);
  if (t == nullptr) {
    state.SkipWithError("cannot load the vocabulary (set SHARDLM_TEST_DATA)");
    return;
  }
  const std::string& text = Text();
  size_t n_tokens = 0;
  for (auto _ : state) {
    std::vector<int32_t> ids = t->Encode(text, /*add_bos=*/true, /*parse_special=*/false);
    n_tokens = ids.size();
    benchmark::DoNotOptimize(ids.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * text.size());
  state.counters["tokens"] = static_cast<double>(n_tokens);
  state.counters["bytes_per_token"] = static_cast<double>(text.size()) / n_tokens;
}

void BM_StreamDecode(benchmark::State& state) {
  const Tokenizer* t = Get("tokenizer/ggml-vocab-llama-spm.gguf");
  if (t == nullptr) {
    state.SkipWithError("cannot load the vocabulary (set SHARDLM_TEST_DATA)");
    return;
  }
  const std::vector<int32_t> ids = t->Encode(Text(), true, false);
  for (auto _ : state) {
    StreamDetokenizer stream(*t, {.strip_leading_space = true});
    size_t bytes = 0;
    for (int32_t id : ids) bytes += stream.Push(id).size();
    bytes += stream.Flush().size();
    benchmark::DoNotOptimize(bytes);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * Text().size());
}

BENCHMARK_CAPTURE(BM_Encode, llama2_32000, "tokenizer/ggml-vocab-llama-spm.gguf")
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, stories260K_512, "models/stories260K.gguf")
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, llama3_bpe_128256, "tokenizer/ggml-vocab-llama-bpe.gguf")
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Encode, qwen2_bpe_151936, "tokenizer/ggml-vocab-qwen2.gguf")
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_StreamDecode)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace shardlm

int main(int argc, char** argv) {
  // --write_text=FILE: write the benchmark text and exit.
  constexpr std::string_view kWriteText = "--write_text=";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg.substr(0, kWriteText.size()) != kWriteText) continue;
    const std::string path(arg.substr(kWriteText.size()));
    std::FILE* f = std::fopen(path.c_str(), "wb");
    const std::string& text = shardlm::Text();
    if (f == nullptr || std::fwrite(text.data(), 1, text.size(), f) != text.size()) {
      std::fprintf(stderr, "cannot write %s\n", path.c_str());
      return 1;
    }
    std::fclose(f);
    std::printf("%zu bytes -> %s\n", text.size(), path.c_str());
    return 0;
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
