#!/usr/bin/env bash
# Multi-host test without Kubernetes: every worker, the coordinator and the
# client run in network namespaces of their own ("hosts") and talk over veth
# links with addresses this test assigns (10.213.K.0/30, only inside its
# namespaces). Greedy output through the coordinator must equal a
# single-process `shardlm generate --temp 0` run, token for token:
#   1. stories260K (5 layers) on 3 workers (0:2, 2:4, 4:5), direct links;
#   2. nano-q4_0 (4 layers) on 2 workers (0:2, 2:4) behind delaying TCP relays
#      (delay_relay.py, 1 ms one way: this kernel has no netem).
# Decode tokens/s of each run is printed for information (bench/netns_latency.sh
# measures it against latency on a TinyLlama-shaped model).
#
#   tests/netns/multihost_test.sh BIN_DIR [TEST_DATA_DIR]
#
# TEST_DATA_DIR defaults to $SHARDLM_TEST_DATA, then to ../shared beside the
# repository (as for the GoogleTest suites); ctest passes only BIN_DIR.
#
# Needs root (CI runs as root); exits 77 (ctest: skipped) with a message only
# when network namespaces cannot be created. Cleans up on exit: stops the
# processes it started, deletes the namespaces it made.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=netns_lib.sh
source "$here/netns_lib.sh"

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 BIN_DIR [TEST_DATA_DIR]" >&2
  exit 2
fi
bin="$(cd "$1" && pwd)"
data="$(cd "${2:-${SHARDLM_TEST_DATA:-$here/../../../shared}}" && pwd)"
for b in shardlm shardlm-worker shardlm-coordinator; do
  [ -x "$bin/$b" ] || { echo "FAIL: $bin/$b not built" >&2; exit 1; }
done
command -v python3 >/dev/null || { echo "FAIL: python3 is required (delay relay)" >&2; exit 1; }

trap netns_cleanup EXIT
trap 'exit 143' INT TERM HUP
if ! netns_available; then
  echo "SKIP: multi-host test needs network namespaces: $NETNS_WHY"
  exit 77
fi
NETNS_DIR="$(mktemp -d)"
netns_make_hosts 3

prompt="Once upon a time"
n_tokens=48
passed=0
failed=0

# Token lines of a --json generation without the logprobs: {"id":N,"piece":"..."}.
tokens() { grep '^{"id":' "$1" | sed 's/,"logprob":[^}]*}/}/'; }
stat() { grep -o "\"$2\":[^,}]*" "$1" | tail -1 | cut -d: -f2; }

# run_case NAME MODEL DELAY_MS RANGE...
run_case() {
  local name="$1" model="$2" delay="$3"
  shift 3
  local ref="$NETNS_DIR/$name.ref.json" got="$NETNS_DIR/$name.got.json"
  local links="direct links"
  [ -n "$delay" ] && links="relays with $delay ms one-way delay"
  echo "== $name: $(basename "$model") on $# workers [$*], $links"
  timeout 120 "$bin/shardlm" generate --model "$model" --prompt "$prompt" -n "$n_tokens" --temp 0 \
    --json --threads 1 >"$ref"
  if ! netns_start_pipeline "$bin" "$model" "$delay" 1 "$@"; then
    echo "FAIL $name: the pipeline did not start"
    failed=$((failed + 1))
    netns_stop_all
    return
  fi
  if ! timeout 120 ip netns exec "$NETNS_CLIENT" "$bin/shardlm" generate --server "$NETNS_SERVER" \
      --prompt "$prompt" -n "$n_tokens" --temp 0 --json >"$got" 2>"$NETNS_DIR/$name.client.err"; then
    echo "FAIL $name: generate --server failed:"
    cat "$NETNS_DIR/$name.client.err" "$NETNS_DIR/coordinator.err"
    failed=$((failed + 1))
  elif [ "$(tokens "$ref" | wc -l)" -lt 1 ] || ! diff <(tokens "$ref") <(tokens "$got") >"$NETNS_DIR/$name.diff"; then
    echo "FAIL $name: multi-host output differs from the single process (< local, > multi-host):"
    head -20 "$NETNS_DIR/$name.diff"
    failed=$((failed + 1))
  elif [ "$(stat "$ref" finish_reason)" != "$(stat "$got" finish_reason)" ]; then
    echo "FAIL $name: finish reason $(stat "$got" finish_reason), locally $(stat "$ref" finish_reason)"
    failed=$((failed + 1))
  else
    echo "ok $name: $(tokens "$got" | wc -l) tokens equal the single process;" \
      "decode $(stat "$got" generation_tokens_per_s) tokens/s (local $(stat "$ref" generation_tokens_per_s))"
    passed=$((passed + 1))
  fi
  netns_stop_all
}

run_case stories260K-3-workers "$data/models/stories260K.gguf" "" 0:2 2:4 4:5
run_case nano-q4_0-2-workers-1ms "$data/models/nano-q4_0.gguf" 1 0:2 2:4

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
