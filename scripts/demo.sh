#!/usr/bin/env bash
# The main job, end to end on one machine: build shardlm, start a pipeline of
# two worker processes (each holding half of the model's layers) behind a
# coordinator on loopback, and stream a generation through it over gRPC.
#
#   scripts/demo.sh [MODEL.gguf] [PROMPT] [N_TOKENS]
#
# Without MODEL (or with MODEL ""), shardlm's embedded stories260K (common/model/embedded/):
# a bare clone needs nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh --if-missing --build-only
MODEL="${1:-}"
PROMPT="${2:-Once upon a time}"
N="${3:-120}"
BUILD_DIR="${BUILD_DIR:-build}"
echo "== building (Release) in $BUILD_DIR" >&2
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j2 --target shardlm shardlm-worker >/dev/null

echo "== starting 2 workers and a coordinator for ${MODEL:-the embedded stories260K}" >&2
OUT=$(mktemp)
"$BUILD_DIR/bin/shardlm" serve ${MODEL:+--model "$MODEL"} --workers 2 --listen 127.0.0.1:0 >"$OUT" &
SERVE_PID=$!
trap 'kill -TERM $SERVE_PID 2>/dev/null || true; wait $SERVE_PID 2>/dev/null || true; rm -f "$OUT"' EXIT
ADDR=""
for _ in $(seq 1 600); do
  ADDR=$(sed -n 's/^SERVING //p' "$OUT")
  [ -n "$ADDR" ] && break
  kill -0 $SERVE_PID 2>/dev/null || { echo "shardlm serve exited" >&2; exit 1; }
  sleep 0.1
done
[ -n "$ADDR" ] || { echo "shardlm serve did not come up" >&2; exit 1; }

echo "== streaming $N tokens from $ADDR (greedy)" >&2
"$BUILD_DIR/bin/shardlm" generate --server "$ADDR" --prompt "$PROMPT" -n "$N" --temp 0
