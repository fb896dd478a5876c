#!/usr/bin/env bash
# Pipeline and serving benchmarks on loopback (all processes on this machine):
#  1. decode tokens/s of one stream through 1, 2 and 4 workers of 1 thread
#     each against 1 worker of 1 thread (the pipeline's own overhead:
#     splitting never speeds up one sequence), and each worker's RSS;
#  2. aggregate decode tokens/s and time to first token for 1, 4 and 16
#     concurrent streams through 2 workers (what batching buys).
#
#   bench/pipeline_bench.sh [MODEL.gguf]    (default: TinyLlama-shaped Q4_0 made by shardlm-mkmodel)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
MODEL="${1:-/tmp/shardlm-bench-models/tinyllama-shape-q4_0.gguf}"
SHARED="$(cd ../shared && pwd)"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j2 --target shardlm shardlm-worker shardlm-bench shardlm-mkmodel >/dev/null
if [ ! -f "$MODEL" ]; then
  mkdir -p "$(dirname "$MODEL")"
  "$BUILD_DIR/bin/shardlm-mkmodel" --preset tinyllama-1.1b --type q4_0 \
      --vocab-from "$SHARED/tokenizer/ggml-vocab-llama-spm.gguf" -o "$MODEL" >&2
fi

serve() {  # serve N_WORKERS THREADS_PER_WORKER -> sets ADDR, SERVE_PID, LOG
  LOG=$(mktemp)
  "$BUILD_DIR/bin/shardlm" serve --model "$MODEL" --workers "$1" --threads "$2" \
      --listen 127.0.0.1:0 --max-active 16 >"$LOG.out" 2>"$LOG" &
  SERVE_PID=$!
  ADDR=""
  for _ in $(seq 1 1200); do
    ADDR=$(sed -n 's/^SERVING //p' "$LOG.out"); [ -n "$ADDR" ] && return 0
    kill -0 $SERVE_PID 2>/dev/null || { cat "$LOG" >&2; exit 1; }
    sleep 0.1
  done
  echo "serve did not come up" >&2; exit 1
}
stop() { kill -TERM $SERVE_PID; wait $SERVE_PID || true; }
worker_rss() {  # RSS of every worker of this serve, MiB
  for pid in $(sed -n 's/.*, pid \([0-9]*\)$/\1/p' "$LOG"); do
    awk '/VmRSS/ {printf "%.0f ", $2/1024}' /proc/$pid/status
  done
}
field() { sed -n "s/.*\"$1\":\\([0-9.]*\\).*/\\1/p"; }

echo "## Decode through 1, 2 and 4 workers ($(basename "$MODEL"), one stream, 128 tokens)"
echo
echo "One stream is a chain: one stage computes while the others wait, so every"
echo "row gives each worker 1 thread and compares with 1 worker x 1 thread (the"
echo "pipeline's own overhead). The last row is the same machine as one process"
echo "with both cores."
echo
echo "| workers | threads each | decode tokens/s | vs 1 worker x 1 thread | worker RSS (MiB) |"
echo "|---|---|---|---|---|"
BASE=""
for layout in 1:1 2:1 4:1 1:2; do
  n=${layout%:*}; threads=${layout#*:}
  serve $n $threads
  "$BUILD_DIR/bin/shardlm-bench" --server "$ADDR" -c 1 -n 1 --prompt-tokens 8 --max-tokens 16 >/dev/null 2>&1
  tps=$("$BUILD_DIR/bin/shardlm-bench" --server "$ADDR" -c 1 -n 2 --prompt-tokens 8 --max-tokens 128 --json 2>/dev/null | field tokens_per_s)
  rss=$(worker_rss)
  stop
  [ -z "$BASE" ] && BASE=$tps
  echo "| $n | $threads | $tps | $(python3 -c "print(f'{$tps/$BASE:.2f}x')") | $rss |"
done
echo
echo "## Concurrent streams through 2 workers (1 thread each; prompt 32, 64 tokens each)"
echo
echo "| streams | aggregate tokens/s | vs 1 stream | TTFT p50 (ms) | TTFT p90 (ms) | inter-token p50 (ms) |"
echo "|---|---|---|---|---|---|"
serve 2 1
"$BUILD_DIR/bin/shardlm-bench" --server "$ADDR" -c 1 -n 1 --prompt-tokens 8 --max-tokens 8 >/dev/null 2>&1
BASE=""
for c in 1 4 16; do
  j=$("$BUILD_DIR/bin/shardlm-bench" --server "$ADDR" -c $c -n $((c * 2)) --prompt-tokens 32 --max-tokens 64 --json 2>/dev/null)
  tps=$(echo "$j" | field tokens_per_s)
  ttft50=$(echo "$j" | sed -n 's/.*"ttft_ms":{"p50":\([0-9.]*\),"p90":\([0-9.]*\).*/\1/p')
  ttft90=$(echo "$j" | sed -n 's/.*"ttft_ms":{"p50":\([0-9.]*\),"p90":\([0-9.]*\).*/\2/p')
  itl50=$(echo "$j" | sed -n 's/.*"itl_ms":{"p50":\([0-9.]*\).*/\1/p')
  [ -z "$BASE" ] && BASE=$tps
  echo "| $c | $tps | $(python3 -c "print(f'{$tps/$BASE:.2f}x')") | $ttft50 | $ttft90 | $itl50 |"
done
stop
