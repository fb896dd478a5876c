#!/usr/bin/env bash
# Starts `shardlm serve` (2 workers, gRPC + OpenAI-compatible HTTP on
# 127.0.0.1, an API key, the zephyr chat template) with stories260K — or
# SHARDLM_E2E_MODEL_NAME (in TEST_DATA_DIR/models) / SHARDLM_E2E_WORKERS /
# SHARDLM_E2E_TEMPLATE — and runs
# Node test files against it:
#   run_e2e.sh BIN_DIR TEST_DATA_DIR TEST.mjs...
# SHARDLM_TEST_DATA overrides TEST_DATA_DIR. The tests get SHARDLM_HTTP,
# SHARDLM_GRPC, SHARDLM_API_KEY, SHARDLM_E2E_MODEL, SHARDLM_TEST_DATA and
# SHARDLM_BIN (BIN_DIR, for shardlm-tokenize and shardlm-inspect). Installs
# the npm packages (npm ci) when node_modules is missing. Exits 77 (skip)
# without node/npm.
set -euo pipefail
bin=$(cd "$1" && pwd)
data=${SHARDLM_TEST_DATA:-$2}
shift 2
here=$(cd "$(dirname "$0")" && pwd)
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "node and npm are needed for this test" >&2
  exit 77
fi
if [ ! -d "$here/node_modules" ]; then
  (cd "$here" && timeout 300 npm ci --no-audit --no-fund --loglevel=error)
fi

tmp=$(mktemp -d)
export SHARDLM_API_KEY="sk-shardlm-test-$$"
# The model, worker count and chat template may be overridden (the family
# models run with their own templates: SHARDLM_E2E_TEMPLATE="").
export SHARDLM_E2E_MODEL="$data/models/${SHARDLM_E2E_MODEL_NAME:-stories260K}.gguf"
export SHARDLM_TEST_DATA="$data"
export SHARDLM_BIN="$bin"
template="${SHARDLM_E2E_TEMPLATE-zephyr}"
template_flag=()
if [ -n "$template" ]; then template_flag=(--chat-template "$template"); fi
"$bin/shardlm" serve --model "$SHARDLM_E2E_MODEL" --workers "${SHARDLM_E2E_WORKERS:-2}" --threads 1 \
  --listen 127.0.0.1:0 --http-listen 127.0.0.1:0 --api-key "$SHARDLM_API_KEY" \
  "${template_flag[@]}" >"$tmp/out" 2>"$tmp/err" &
pid=$!
cleanup() {
  kill -TERM "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT

for _ in $(seq 1 600); do
  grep -q '^SERVING ' "$tmp/out" && break
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "shardlm serve exited early:" >&2
    cat "$tmp/err" >&2
    exit 1
  fi
  sleep 0.1
done
if ! grep -q '^SERVING ' "$tmp/out"; then
  echo "shardlm serve did not come up within 60 s:" >&2
  cat "$tmp/err" >&2
  exit 1
fi
SHARDLM_HTTP=$(sed -n 's/^HTTP //p' "$tmp/out")
SHARDLM_GRPC=$(sed -n 's/^SERVING //p' "$tmp/out")
export SHARDLM_HTTP SHARDLM_GRPC
echo "shardlm serve: HTTP $SHARDLM_HTTP, gRPC $SHARDLM_GRPC" >&2

cd "$here"
status=0
timeout 240 node --test "$@" || status=$?
if [ "$status" != 0 ]; then
  echo "--- shardlm serve log ---" >&2
  tail -50 "$tmp/err" >&2
fi
exit "$status"
