// grammar_mask_bench: what constrained sampling costs per token on a real
// vocabulary. For each model's tokenizer: the trie build (once per server),
// then seeded random walks through a few grammars (JSON object mode, a
// JSON Schema with strings/numbers/arrays/enums, a GBNF grammar), one
// random allowed token per step, timing each step's Mask() + Accept():
//   cold:  mask cache emptied before every step (every mask is a trie walk)
//   warm:  as a sequence runs (masks cached per automaton state)
// Prints one JSON line per (model, grammar). bench/grammar_mask_bench.sh
// puts these next to the decode step time of a TinyLlama-shape Q4_0 model.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/base/cli_args.h"
#include "common/model/gguf.h"
#include "common/tokenizer/tokenizer.h"
#include "coordinator/grammar/gbnf_parser.h"
#include "coordinator/grammar/json_schema_to_grammar.h"
#include "coordinator/grammar/token_constraint.h"
#include "coordinator/grammar/vocab_trie.h"

namespace shardlm {
namespace {

using Clock = std::chrono::steady_clock;
double Us(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

struct Stats {
  double mean = 0, p50 = 0, p99 = 0, max = 0;
};
Stats Summarize(std::vector<double> v) {
  Stats s;
  if (v.empty()) return s;
  std::sort(v.begin(), v.end());
  for (double x : v) s.mean += x;
  s.mean /= v.size();
  s.p50 = v[v.size() / 2];
  s.p99 = v[std::min(v.size() - 1, v.size() * 99 / 100)];
  s.max = v.back();
  return s;
}

// Steps through `grammar` choosing random allowed tokens; restarts when the
// output is complete. Returns per-step times (µs) of Mask() + Accept().
std::vector<double> Walk(const GrammarPtr& grammar, const std::shared_ptr<const VocabTrie>& vocab,
                         int steps, bool cold, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<double> times;
  auto c = std::make_unique<TokenConstraint>(grammar, vocab);
  std::vector<int32_t> ids;
  for (int i = 0; i < steps; ++i) {
    if (c->IsComplete()) c = std::make_unique<TokenConstraint>(grammar, vocab);
    if (cold) {
      // A fresh constraint at the same point: empty caches (mask and automaton).
      c->ResetCaches();
    }
    const auto t0 = Clock::now();
    const TokenMask& m = c->Mask();
    const auto t1 = Clock::now();
    ids.clear();
    for (int32_t t = 0; t < m.size(); ++t) {
      if (m.Test(t)) ids.push_back(t);
    }
    if (ids.empty()) break;
    // Prefer short tokens half the time so walks get through structure.
    int32_t pick = ids[rng() % ids.size()];
    if (rng() % 2 == 0) {
      for (int tries = 0; tries < 8 && vocab->piece(pick).size() > 2; ++tries) {
        pick = ids[rng() % ids.size()];
      }
    }
    const auto t2 = Clock::now();
    if (!c->Accept(pick).ok()) break;
    const auto t3 = Clock::now();
    times.push_back(Us(t1 - t0) + Us(t3 - t2));
  }
  return times;
}

int Main(int argc, char** argv) {
  std::vector<std::string> models;
  int steps = 300;
  int seed = 1;
  CliArgs args("grammar_mask_bench --model FILE.gguf [--model ...] [--steps N] [--seed S]",
               "Per model vocabulary: the trie build time, then per grammar the mean/p50/p99/max "
               "microseconds of one step's token mask + accept, cold (caches emptied each step) "
               "and warm (as a sequence runs). One JSON line each.");
  args.AddStringList("--model", &models, "a GGUF whose vocabulary to use (repeatable)");
  args.AddInt("--steps", &steps, "tokens per walk");
  args.AddInt("--seed", &seed, "seed of the random walks");
  if (std::optional<int> exit = args.ParseForMain(argc, argv, "grammar_mask_bench")) return *exit;
  const std::vector<std::pair<std::string, std::string>> grammars = {
      {"json_object", ""},
      {"schema", R"({"type":"object","properties":{
          "name":{"type":"string","maxLength":40},"age":{"type":"integer"},
          "email":{"type":"string","format":"email"},
          "tags":{"type":"array","items":{"type":"string","maxLength":16},"maxItems":4},
          "role":{"enum":["admin","user","guest"]},"score":{"type":"number"},
          "born":{"type":"string","format":"date"}},
          "required":["name","age","email","tags","role","score","born"],
          "additionalProperties":false})"},
      {"gbnf", R"(root ::= "Answer: " ( [A-Za-z]+ " " )+ [0-9]{1,4} "\n")"},
  };
  for (const std::string& model : models) {
    auto gguf = GgufFile::Open(model);
    if (!gguf.ok()) {
      std::fprintf(stderr, "%s\n", std::string(gguf.status().message()).c_str());
      return 1;
    }
    auto tok = Tokenizer::FromGguf(**gguf);
    if (!tok.ok()) {
      std::fprintf(stderr, "%s\n", std::string(tok.status().message()).c_str());
      return 1;
    }
    const auto t0 = Clock::now();
    auto vocab = VocabTrie::Build(**tok);
    const double build_ms = Us(Clock::now() - t0) / 1000;
    for (const auto& [name, source] : grammars) {
      GrammarPtr g;
      if (name == "json_object") {
        g = JsonObjectGrammar();
      } else if (name == "schema") {
        g = *CompileJsonSchema(nlohmann::ordered_json::parse(source));
      } else {
        g = *ParseGbnf(source);
      }
      const Stats cold = Summarize(Walk(g, vocab, steps, /*cold=*/true, static_cast<uint32_t>(seed)));
      const Stats warm = Summarize(Walk(g, vocab, steps, /*cold=*/false, static_cast<uint32_t>(seed)));
      std::printf(
          "{\"model\":\"%s\",\"n_vocab\":%d,\"trie_nodes\":%zu,\"trie_build_ms\":%.1f,"
          "\"grammar\":\"%s\",\"steps\":%d,"
          "\"cold_us\":{\"mean\":%.1f,\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f},"
          "\"warm_us\":{\"mean\":%.1f,\"p50\":%.1f,\"p99\":%.1f,\"max\":%.1f}}\n",
          model.substr(model.find_last_of('/') + 1).c_str(), (*tok)->n_vocab(),
          vocab->nodes().size(), build_ms, name.c_str(), steps, cold.mean, cold.p50, cold.p99,
          cold.max, warm.mean, warm.p50, warm.p99, warm.max);
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace
}  // namespace shardlm

int main(int argc, char** argv) { return shardlm::Main(argc, argv); }
