#!/usr/bin/env bash
# Prefix reuse across requests, with and without the prefix cache
# (`shardlm serve --prefix-cache on|off`), 2 workers of 1 thread each:
#  1. a 10-turn chat whose history grows to ~1.5k tokens: time to first token
#     per turn, and of a prompt as long as the last turn's that shares
#     nothing;
#  2. (cache on) a 600-token prompt, then it with its answer and 20 more
#     tokens, then a prompt as long sharing nothing: the >= 5x check;
#  3. 16 users sharing a 500-token system prompt, all at once (the system
#     prompt served once before): prompt tokens computed, generated tokens/s.
#
#   bench/prefix_cache.sh [MODEL.gguf]   (default: TinyLlama-shaped Q4_0 made by shardlm-mkmodel)
#   CACHE_MODES=on bench/prefix_cache.sh  runs one side only
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
MODEL="${1:-/tmp/tl-q4_0.gguf}"
SHARED="$(cd ../shared && pwd)"
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j2 --target shardlm shardlm-worker shardlm-prefix-bench shardlm-mkmodel >/dev/null
if [ ! -f "$MODEL" ]; then
  "$BUILD_DIR/bin/shardlm-mkmodel" --preset tinyllama-1.1b --type q4_0 \
      --vocab-from "$SHARED/tokenizer/ggml-vocab-llama-spm.gguf" -o "$MODEL" >&2
fi

serve() {  # serve on|off -> sets ADDR, SERVE_PID, METRICS
  LOG=$(mktemp)
  METRICS=127.0.0.1:$((20000 + RANDOM % 20000))
  "$BUILD_DIR/bin/shardlm" serve --model "$MODEL" --workers 2 --threads 1 --max-active 16 \
      --listen 127.0.0.1:0 --metrics-listen "$METRICS" --prefix-cache "$1" >"$LOG.out" 2>"$LOG" &
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
metric() { curl -s "http://$METRICS/metrics" | awk -v n="$1" '$1 == n {print $2}'; }
computed() { echo "$(metric shardlm_prompt_tokens_total) - $(metric shardlm_prefix_cache_hit_tokens_total)" | bc; }

echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) vCPUs"
echo "Model: $(basename "$MODEL"); 2 workers x 1 thread (shardlm serve)"
for cache in ${CACHE_MODES:-on off}; do
  serve $cache
  echo
  echo "### --prefix-cache $cache: 10-turn chat (200-token first prompt, +16 answer +130 user tokens a turn)"
  "$BUILD_DIR/bin/shardlm-prefix-bench" --server "$ADDR" --mode chat --turns 10 \
      --first-tokens 200 --user-tokens 130 --answer-tokens 16
  if [ $cache = on ]; then
    echo
    echo "### --prefix-cache on: a 600-token prompt extended (+16 answer +20 user tokens) vs unshared"
    "$BUILD_DIR/bin/shardlm-prefix-bench" --server "$ADDR" --mode extend --first-tokens 600 \
        --answer-tokens 16 --user-tokens 20
  fi
  before=$(computed)
  echo
  echo "### --prefix-cache $cache: 16 users sharing a 500-token system prompt (+20 own tokens, 16 answer tokens)"
  "$BUILD_DIR/bin/shardlm-prefix-bench" --server "$ADDR" --mode users --users 16 \
      --system-tokens 500 --question-tokens 20 --answer-tokens 16
  echo "prompt tokens computed (system prompt warm-up included): $(echo "$(computed) - $before" | bc)"
  stop
done
