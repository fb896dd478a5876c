#!/usr/bin/env bash
# Constrained sampling's cost against a decode step, in one run (the machine
# is shared: only ratios taken in the same run mean anything):
#   1. the decode step of a TinyLlama-1.1B-shaped Q4_0 model (shardlm-speed,
#      tg, 2 threads, best of 3);
#   2. grammar_mask_bench on the Llama 3 and Qwen2 family vocabularies
#      (128,256 and 151,936 tokens): µs per step of mask + accept, cold
#      (caches emptied every step) and warm (as a request runs);
# then a table of both with mask / step in percent.
#   bench/grammar_mask_bench.sh BIN_DIR [TINYLLAMA_Q4_0.gguf]
# The model is made with shardlm-mkmodel when the file is missing.
set -euo pipefail
bin=${1:?usage: grammar_mask_bench.sh BIN_DIR [TINYLLAMA_Q4_0.gguf]}
model=${2:-/tmp/tl-q4_0.gguf}
here=$(cd "$(dirname "$0")" && pwd)
data=${SHARDLM_TEST_DATA:-$here/../../shared}
if [ ! -f "$model" ]; then
  "$bin/shardlm-mkmodel" --preset tinyllama-1.1b --type q4_0 \
    --vocab-from "$data/models/mini-shape-q4_0.gguf" -o "$model"
fi
grep -m1 'model name' /proc/cpuinfo
speed=$("$bin/shardlm-speed" --model "$model" --threads 2 --pp 16 --tg 64 --runs 3)
masks=$("$bin/grammar_mask_bench" --model "$data/models/llama3-nano-q4_k_m.gguf" \
  --model "$data/models/qwen2-nano-q4_0.gguf" --steps 300)
SPEED="$speed" MASKS="$masks" python3 - <<'PY'
import json, os
speed = json.loads(os.environ["SPEED"])
step_us = 1e6 / speed["tg"]["tokens_per_s_best"]
print(f"decode step (TinyLlama-shape Q4_0, 2 threads, tg 64 best of 3): {step_us / 1000:.1f} ms")
print("| vocabulary | trie build | grammar | cold mean µs | warm mean µs | warm p50 µs | warm p99 µs | warm mean / step |")
print("|---|---|---|---|---|---|---|---|")
for line in os.environ["MASKS"].splitlines():
    m = json.loads(line)
    print(f"| {m['model']} ({m['n_vocab']}) | {m['trie_build_ms']:.0f} ms | {m['grammar']} | "
          f"{m['cold_us']['mean']:.0f} | {m['warm_us']['mean']:.0f} | {m['warm_us']['p50']:.1f} | "
          f"{m['warm_us']['p99']:.0f} | {100 * m['warm_us']['mean'] / step_us:.2f}% |")
PY
