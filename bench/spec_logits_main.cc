// shardlm-spec-logits: how far a verification pass's logits are from plain
// decoding's. A greedy sequence of N tokens from BOS is computed twice on a
// whole-model in-process stage: one position per Forward (plain decoding),
// and in runs of K+1 positions per Forward (a speculative step whose drafts
// were all accepted: its KV is computed batched too). Prints, over the
// positions, the largest and the median |difference| of any logit, and the
// plain run's smallest top-1 / top-2 logit margin: a flip needs a margin
// below the difference (bench/spec_numerics.py finds the flips).
//   shardlm-spec-logits MODEL.gguf [N] [K] [KV_TYPE] [REJECTED]
// Environment: PROMPT_IDS=1,403,... prefills these ids in one batch first
// (default: BOS alone); SINGLES=1 follows each run with REJECTED one-position
// calls over the rewound drafts; THREADS=n (default 1).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "worker/kv_cache.h"
#include "worker/llama_stage.h"

namespace {

using namespace shardlm;

// Logits of positions [from, to) of `tokens` on sequence `seq`, one Forward.
std::vector<float> Run(Stage& stage, SeqId seq, const std::vector<int32_t>& tokens, int from,
                       int to) {
  ForwardRequest req;
  for (int i = from; i < to; ++i) {
    req.seq_ids.push_back(seq);
    req.positions.push_back(i);
    req.tokens.push_back(tokens[i]);
    req.want_logits.push_back(1);
  }
  ForwardResult res;
  if (absl::Status st = stage.Forward(req, &res); !st.ok()) {
    std::fprintf(stderr, "forward: %s\n", std::string(st.message()).c_str());
    std::exit(1);
  }
  return res.logits;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help") {
    std::fprintf(
        stderr, "usage: shardlm-spec-logits MODEL.gguf [N=200] [K=4] [KV_TYPE=f32] [REJECTED=0]\n");
    return argc < 2 ? 2 : 0;
  }
  const int n = argc > 2 ? std::atoi(argv[2]) : 200;
  const int k = argc > 3 ? std::atoi(argv[3]) : 4;
  StageOptions so;
  so.n_threads = getenv("THREADS") ? std::atoi(getenv("THREADS")) : 1;
  auto kv = ParseKvType(argc > 4 ? argv[4] : "f32");
  if (!kv.ok()) {
    std::fprintf(stderr, "%s\n", std::string(kv.status().message()).c_str());
    return 2;
  }
  so.kv_type = *kv;
  auto stage = LlamaStage::Open(argv[1], so);
  if (!stage.ok()) {
    std::fprintf(stderr, "%s\n", std::string(stage.status().message()).c_str());
    return 1;
  }
  Stage& s = **stage;
  const int n_vocab = s.info().n_vocab;
  // Plain greedy decoding from BOS, one position per call.
  std::vector<int32_t> tokens = {1};
  std::vector<float> plain;
  if (const char* ids = getenv("PROMPT_IDS")) {  // e.g. 1,403,407,261,378
    tokens.clear();
    for (const char* c = ids; *c != 0;) {
      tokens.push_back(std::atoi(c));
      while (*c != 0 && *c++ != ',') {
      }
    }
  }
  const int np = static_cast<int>(tokens.size());
  for (int i = np - 1; i < n; ++i) {
    std::vector<float> row =
        np > 1 && i == np - 1 ? Run(s, 1, tokens, 0, np) : Run(s, 1, tokens, i, i + 1);
    if (np > 1 && i == np - 1) row.erase(row.begin(), row.end() - n_vocab);
    tokens.push_back(static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin()));
    plain.insert(plain.end(), row.begin(), row.end());
  }
  // The same tokens in runs of k + 1 (position 0 alone, as a spec run starts
  // after its one-token prompt).
  // With REJECTED > 0, each run also carries that many wrong drafts after
  // its k + 1 - REJECTED right tokens, which the next run overwrites (the
  // stage rewinds its KV), as after a partly rejected draft.
  const int rejected = argc > 5 ? std::atoi(argv[5]) : 0;
  std::vector<float> spec = Run(s, 2, tokens, 0, np);
  spec.erase(spec.begin(), spec.end() - n_vocab);
  const int step = std::max(1, k + 1 - rejected);
  for (int i = np; i < n; i += step) {
    const int end = std::min(n, i + step);
    std::vector<int32_t> run(tokens.begin(), tokens.begin() + end);
    for (int r = 0; r < rejected; ++r) run.push_back((tokens[end - 1] + 7 * r + 3) % n_vocab);
    std::vector<float> rows = Run(s, 2, run, i, static_cast<int>(run.size()));
    spec.insert(spec.end(), rows.begin(), rows.begin() + static_cast<size_t>(end - i) * n_vocab);
    if (getenv("SINGLES") != nullptr) {  // then one position per call over the stale drafts
      for (int j = end; j < std::min(n, end + rejected); ++j) {
        rows = Run(s, 2, tokens, j, j + 1);
        spec.insert(spec.end(), rows.begin(), rows.end());
      }
      i += rejected;
    }
  }
  std::vector<double> diffs;
  double min_margin = 1e30;
  int flips = 0;
  for (int p = 0; p < n - np + 1; ++p) {
    const float* a = &plain[static_cast<size_t>(p) * n_vocab];
    const float* b = &spec[static_cast<size_t>(p) * n_vocab];
    double d = 0;
    for (int v = 0; v < n_vocab; ++v) d = std::max(d, double{std::fabs(a[v] - b[v])});
    diffs.push_back(d);
    std::vector<float> sorted(a, a + n_vocab);
    std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<float>());
    min_margin = std::min(min_margin, double{sorted[0] - sorted[1]});
    flips += std::max_element(a, a + n_vocab) - a != std::max_element(b, b + n_vocab) - b;
  }
  std::sort(diffs.begin(), diffs.end());
  std::printf(
      "%s: %d positions, runs of %d: max |logit diff| %.3g, median %.3g; plain min top-1 - top-2 "
      "margin %.3g; argmax differs at %d positions\n",
      argv[1], n, k + 1, diffs.back(), diffs[diffs.size() / 2], min_margin, flips);
  return 0;
}
