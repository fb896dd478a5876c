#!/usr/bin/env bash
# The embedded default model end to end, with no test data and from a moved
# binary: shardlm and shardlm-worker are copied to a fresh folder, then
#   1. `shardlm generate` with no --model (in process) and
#   2. `shardlm serve` with no --model (2 worker processes) + `generate --server`
# each give llama2.c's greedy text for stories260K; the model was written once
# into SHARDLM_CACHE_DIR and equals the repository's file; an unusable cache
# folder is a clear error.
# Usage: embedded_model_e2e.sh BIN_DIR SOURCE_DIR
set -euo pipefail
bin_src="$1"; src="$2"
expected_file="$src/tests/data/stories260K.expected_greedy.txt"
tmp=$(mktemp -d)
serve_pid=""
cleanup() {
  if [ -n "$serve_pid" ]; then
    kill -TERM "$serve_pid" 2>/dev/null || true
    wait "$serve_pid" 2>/dev/null || true
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

mkdir -p "$tmp/bin"
cp "$bin_src/shardlm" "$bin_src/shardlm-worker" "$tmp/bin/"
export SHARDLM_CACHE_DIR="$tmp/cache"
shardlm="$tmp/bin/shardlm"
# The printer ends the text with a newline.
expected="$(cat "$expected_file")"

# grep reads all of --help (not -q): with pipefail, a grep that exits at the
# first match can kill the writer with SIGPIPE and fail the pipeline.
"$shardlm" generate --help | grep 'default: the embedded stories260K' >/dev/null ||
  fail "generate --help does not name the default model"
"$shardlm" serve --help | grep 'default: the embedded stories260K' >/dev/null ||
  fail "serve --help does not name the default model"

# 1. In process: BOS alone, 200 greedy tokens.
got=$(timeout 60 "$shardlm" generate --prompt "" -n 200 --temp 0 2>"$tmp/generate.err") ||
  { cat "$tmp/generate.err"; fail "shardlm generate exited with $?"; }
[ "$got" = "$expected" ] || { diff <(echo "$expected") <(echo "$got") || true; fail "in-process text differs"; }
models=("$SHARDLM_CACHE_DIR"/*)
[ "${#models[@]}" = 1 ] || fail "expected one file in the cache, found: ${models[*]}"
cmp "${models[0]}" "$src/common/model/embedded/stories260K.gguf" ||
  fail "the cached model differs from common/model/embedded/stories260K.gguf"
echo "in process: the expected text; cache file ${models[0]##*/}"

# 2. Two worker processes behind a coordinator, on loopback.
"$shardlm" serve --workers 2 --listen 127.0.0.1:0 >"$tmp/serve.out" 2>"$tmp/serve.err" &
serve_pid=$!
addr=""
for _ in $(seq 1 600); do  # 60 s at most
  addr=$(sed -n 's/^SERVING //p' "$tmp/serve.out")
  [ -n "$addr" ] && break
  kill -0 "$serve_pid" 2>/dev/null || { cat "$tmp/serve.err"; fail "shardlm serve exited"; }
  sleep 0.1
done
[ -n "$addr" ] || { cat "$tmp/serve.err"; fail "shardlm serve did not come up in 60 s"; }
workers=$(grep -c 'shardlm serve: worker [01] (layers' "$tmp/serve.err" || true)
[ "$workers" = 2 ] || { cat "$tmp/serve.err"; fail "expected 2 workers, saw $workers"; }
grep -q "serving $SHARDLM_CACHE_DIR/stories260K-" "$tmp/serve.err" ||
  { cat "$tmp/serve.err"; fail "serve does not serve the cached embedded model"; }
got=$(timeout 60 "$shardlm" generate --server "$addr" --prompt "" -n 200 --temp 0 2>"$tmp/remote.err") ||
  { cat "$tmp/remote.err"; fail "shardlm generate --server exited with $?"; }
[ "$got" = "$expected" ] || { diff <(echo "$expected") <(echo "$got") || true; fail "text through 2 workers differs"; }
echo "2 workers: the expected text"
kill -TERM "$serve_pid"
wait "$serve_pid" || fail "shardlm serve exited with $? after SIGTERM"
serve_pid=""

# 3. A cache folder that cannot be made: exit 1 and a message naming the way out.
blocker="$tmp/not-a-folder"
touch "$blocker"
if SHARDLM_CACHE_DIR="$blocker/cache" "$shardlm" generate --prompt "" -n 1 >/dev/null 2>"$tmp/bad.err"; then
  fail "generate succeeded with an unusable cache folder"
fi
grep -q 'SHARDLM_CACHE_DIR' "$tmp/bad.err" || { cat "$tmp/bad.err"; fail "the error does not name SHARDLM_CACHE_DIR"; }
echo "unusable cache folder: $(cat "$tmp/bad.err")"
echo "embedded model e2e OK"
