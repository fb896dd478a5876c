#!/usr/bin/env bash
# Serving throughput against llama.cpp's own batching: STREAMS concurrent
# greedy streams (default 16, prompts of 32 tokens, 64 tokens each) on one
# machine with THREADS cores (default 2) in total:
#   - llama.cpp: one context holding all streams as sequences, one
#     llama_decode per step for all of them (node-llama-cpp 3.21.1,
#     ../shared/reference/streams.mjs), THREADS threads;
#   - `shardlm serve --workers 1 --threads THREADS` (one worker, all cores) and
#     `--workers 2 --threads THREADS/2` (a two-stage pipeline, continuous
#     batching with micro-batches), driven by shardlm-bench over gRPC on
#     loopback: STREAMS requests, all open at once, ignore_eos.
# Both sides count generated tokens / (start of the streams -> last token).
# The prompts differ in content only (llama.cpp: an English text's tokens;
# shardlm-bench: BOS + pseudo-random ids), not in length. Runs alternate per
# round; the best round of each counts. Prints the CPU, shardlm's kernel set
# and a markdown table with each shardlm layout's ratio to llama.cpp.
#
#   bench/streams_vs_llama_cpp.sh [ROUNDS] [MODEL.gguf]
#       (default: 1 round; the TinyLlama-1.1B-shaped Q4_0 that
#        bench/compare_llama_cpp.sh and bench/pipeline_bench.sh use, made by
#        shardlm-mkmodel when absent)
#   STREAMS=16 PROMPT_TOKENS=32 GEN_TOKENS=64 THREADS=2 BUILD_DIR=build
#
# Needs node-llama-cpp: NODE_PATH pointing at a node_modules that has it, or
# it is installed into /tmp/nlc (npm registry). Binds only 127.0.0.1; stops
# the servers it started (by pid) on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-1}"
MODEL="${2:-/tmp/shardlm-bench-models/tinyllama-shape-q4_0.gguf}"
STREAMS="${STREAMS:-16}"
PROMPT_TOKENS="${PROMPT_TOKENS:-32}"
GEN_TOKENS="${GEN_TOKENS:-64}"
THREADS="${THREADS:-2}"
BUILD_DIR="${BUILD_DIR:-build}"
SHARED="$(cd ../shared && pwd)"
if [ "$THREADS" -lt 2 ] || [ $((THREADS % 2)) != 0 ]; then
  echo "THREADS must be even and >= 2 (the 2-worker layout gives each worker THREADS/2)" >&2
  exit 2
fi
OUT="$(mktemp -d)"
SERVE_PID=""
cleanup() {
  if [ -n "$SERVE_PID" ]; then kill -TERM "$SERVE_PID" 2>/dev/null || true; wait "$SERVE_PID" 2>/dev/null || true; fi
  rm -rf "$OUT"
}
trap cleanup EXIT

cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j2 --target shardlm shardlm-worker shardlm-bench shardlm-mkmodel >/dev/null
if [ -z "${NODE_PATH:-}" ]; then
  if [ ! -d /tmp/nlc/node_modules/node-llama-cpp ]; then
    mkdir -p /tmp/nlc && (cd /tmp/nlc && npm init -y >/dev/null && npm i -E node-llama-cpp@3.21.1 >/dev/null)
  fi
  export NODE_PATH=/tmp/nlc/node_modules
fi
if [ ! -f "$MODEL" ]; then
  mkdir -p "$(dirname "$MODEL")"
  "$BUILD_DIR/bin/shardlm-mkmodel" --preset tinyllama-1.1b --type q4_0 \
      --vocab-from "$SHARED/tokenizer/ggml-vocab-llama-spm.gguf" -o "$MODEL" >&2
fi

CPU_MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo "CPU: $CPU_MODEL ($(nproc) cores visible, load average $(cut -d' ' -f1-3 /proc/loadavg))" >&2

serve() {  # serve WORKERS THREADS_PER_WORKER -> ADDR, SERVE_PID, LOG
  LOG="$OUT/serve-$1x$2.err"
  "$BUILD_DIR/bin/shardlm" serve --model "$MODEL" --workers "$1" --threads "$2" \
      --listen 127.0.0.1:0 --max-active "$STREAMS" >"$LOG.out" 2>"$LOG" &
  SERVE_PID=$!
  ADDR=""
  for _ in $(seq 1 1200); do  # 120 s at most
    ADDR=$(sed -n 's/^SERVING //p' "$LOG.out"); [ -n "$ADDR" ] && return 0
    kill -0 "$SERVE_PID" 2>/dev/null || { cat "$LOG" >&2; echo "shardlm serve exited" >&2; exit 1; }
    sleep 0.1
  done
  echo "shardlm serve did not come up in 120 s" >&2; exit 1
}
stop() { kill -TERM "$SERVE_PID"; wait "$SERVE_PID" || true; SERVE_PID=""; }

for r in $(seq 1 "$ROUNDS"); do
  echo "round $r: llama.cpp, $STREAMS sequences in one context, $THREADS threads" >&2
  node "$SHARED/reference/streams.mjs" "$MODEL" --threads "$THREADS" --streams "$STREAMS" \
      --prompt-tokens "$PROMPT_TOKENS" --gen-tokens "$GEN_TOKENS" > "$OUT/llama-$r.json"
  for layout in "1:$THREADS" "2:$((THREADS / 2))"; do
    w=${layout%:*}; t=${layout#*:}
    echo "round $r: shardlm serve --workers $w --threads $t" >&2
    serve "$w" "$t"
    # Warm-up (untimed): pages the weights in, first batch shapes.
    "$BUILD_DIR/bin/shardlm-bench" --server "$ADDR" -c 1 -n 1 --prompt-tokens 8 --max-tokens 4 >/dev/null 2>&1
    "$BUILD_DIR/bin/shardlm-bench" --server "$ADDR" -c "$STREAMS" -n "$STREAMS" \
        --prompt-tokens "$PROMPT_TOKENS" --max-tokens "$GEN_TOKENS" --json 2>/dev/null \
        > "$OUT/shardlm-$w-$r.json"
    [ "$r" = 1 ] && sed -n 's/.*kernel set \([a-z0-9_]*\).*/\1/p' "$LOG" | head -1 > "$OUT/kernel-set"
    stop
  done
done

CPU_MODEL="$CPU_MODEL" python3 - "$OUT" "$ROUNDS" "$THREADS" "$STREAMS" "$PROMPT_TOKENS" \
    "$GEN_TOKENS" "$(basename "$MODEL")" <<'PY'
import json, os, sys
out, rounds, threads, n, p, g, model = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), *sys.argv[4:]
def load(name):
    return [json.load(open(f"{out}/{name}-{r}.json")) for r in range(1, rounds + 1)]
llama = load("llama")
for x in llama:
    if x.get("stopped_early"):
        sys.exit(f"llama.cpp: streams stopped early: {x['stopped_early']}")
best_llama = max(llama, key=lambda x: x["tokens_per_s"])
kset = open(f"{out}/kernel-set").read().strip() or "?"
print(f"CPU: {os.environ['CPU_MODEL']}; shardlm kernel set: {kset}; model {model}; "
      f"{n} streams x ({p} prompt + {g} generated tokens); {threads} threads in total; "
      f"best of {rounds} round(s)\n")
print("| server | generated tokens/s | vs llama.cpp | TTFT | wall |")
print("|---|---|---|---|---|")
print(f"| llama.cpp, one context, {n} sequences, {threads} threads | {best_llama['tokens_per_s']:.1f} | 1.00x "
      f"| mean {best_llama['ttft_mean_s'] * 1000:.0f} ms, max {best_llama['ttft_max_s'] * 1000:.0f} ms "
      f"| {best_llama['wall_s']:.1f} s |")
for w in (1, 2):
    runs = load(f"shardlm-{w}")
    for x in runs:
        if x["failed"] or x["generated_tokens"] != int(n) * int(g):
            sys.exit(f"shardlm {w} worker(s): {x['failed']} failed, {x['generated_tokens']} tokens")
    b = max(runs, key=lambda x: x["tokens_per_s"])
    print(f"| shardlm serve --workers {w} --threads {threads // w} | {b['tokens_per_s']:.1f} "
          f"| {b['tokens_per_s'] / best_llama['tokens_per_s']:.2f}x "
          f"| p50 {b['ttft_ms']['p50']:.0f} ms, p90 {b['ttft_ms']['p90']:.0f} ms | {b['wall_s']:.1f} s |")
PY
