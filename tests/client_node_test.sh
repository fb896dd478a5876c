#!/usr/bin/env bash
# Keeps the example client in another language working: starts `shardlm
# serve` (2 workers, stories260K, loopback) and streams a greedy generation
# with scripts/client-node/generate.mjs (@grpc/grpc-js + @grpc/proto-loader,
# nothing but the .proto files); its tokens must equal the single-process
# `shardlm generate --json` output.
#   client_node_test.sh BIN_DIR TEST_DATA_DIR
set -euo pipefail
bin=$1
data=${SHARDLM_TEST_DATA:-$2}
client=$(cd "$(dirname "$0")/../scripts/client-node" && pwd)
if [ ! -d "$client/node_modules" ]; then
  (cd "$client" && timeout 300 npm ci --no-audit --no-fund --loglevel=error)
fi
model="$data/models/stories260K.gguf"
tmp=$(mktemp -d)
extra=()
"$bin/shardlm" serve --help | grep -- '--insecure' >/dev/null && extra+=(--insecure)  # not -q: SIGPIPE under pipefail
"$bin/shardlm" serve --model "$model" --workers 2 --threads 1 --listen 127.0.0.1:0 "${extra[@]}" \
  >"$tmp/out" 2>"$tmp/err" &
pid=$!
trap 'kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
for _ in $(seq 1 600); do
  grep -q '^SERVING ' "$tmp/out" && break
  kill -0 $pid 2>/dev/null || { cat "$tmp/err" >&2; exit 1; }
  sleep 0.1
done
addr=$(sed -n 's/^SERVING //p' "$tmp/out")
[ -n "$addr" ] || { echo "shardlm serve did not come up" >&2; cat "$tmp/err" >&2; exit 1; }

timeout 60 node "$client/generate.mjs" "$addr" "Once upon a time" 40 --json > "$tmp/node.jsonl"
"$bin/shardlm" generate --model "$model" --prompt "Once upon a time" -n 40 --temp 0 --json \
  2>/dev/null > "$tmp/local.jsonl"
ids() { sed -n 's/^{"id":\([0-9]*\),.*/\1/p' "$1" | tr '\n' ' '; }
got=$(ids "$tmp/node.jsonl"); want=$(ids "$tmp/local.jsonl")
grep -q '"summary"' "$tmp/node.jsonl" || { echo "no summary message from the stream" >&2; exit 1; }
if [ -z "$want" ] || [ "$got" != "$want" ]; then
  echo "node client tokens: $got" >&2
  echo "single process:     $want" >&2
  exit 1
fi
echo "node client streamed the same $(echo "$want" | wc -w) tokens as the single-process run"
