#!/usr/bin/env bash
# Multi-host test without Kubernetes: every worker, the coordinator and the
# client run in network namespaces of their own ("hosts") and talk over veth
# links with addresses this test assigns (10.213.K.0/30, only inside its
# namespaces). Greedy output through the coordinator must equal a
# single-process `shardlm generate --temp 0` run, token for token:
#   1. stories260K (5 layers) on 3 workers (0:2, 2:4, 4:5), direct links;
#   2. nano-q4_0 (4 layers) on 2 workers (0:2, 2:4) behind delaying TCP relays
#      (delay_relay.py, 1 ms one way: this kernel has no netem);
#   3. a rolling update without dropping the stream: stories260K as 2 ranges x
#      2 replicas (0:2, 2:5, 0:2, 2:5; 5 ms relays, so 400 tokens take 10 s or more).
#      Mid-stream, workers 0 and 1 get SIGTERM and are restarted; once they
#      are back, workers 2 and 3 too. Whichever copies the sequence was on,
#      it fails over at least once, and its greedy output must still equal
#      the single process;
#   4. the same with one copy per range (0:2, 2:5): worker 1 restarts
#      mid-stream; the stream waits for it (up to --failover-timeout-ms),
#      replays its tokens there and goes on, output unchanged.
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
netns_make_hosts 4

prompt="Once upon a time"
n_tokens=48
passed=0
failed=0

# Token lines of a --json generation without the logprobs: {"id":N,"piece":"..."}.
tokens() { grep '^{"id":' "$1" | sed 's/,"logprob":[^}]*}/}/'; }
stat() { grep -o "\"$2\":[^,}]*" "$1" | tail -1 | cut -d: -f2; }

# compare NAME REF GOT: counts a pass or a failure.
compare() {
  local name="$1" ref="$2" got="$3"
  if [ "$(tokens "$ref" | wc -l)" -lt 1 ] || ! diff <(tokens "$ref") <(tokens "$got") >"$NETNS_DIR/$name.diff"; then
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
}

# reference NAME MODEL N [FLAGS...]: the single-process greedy run.
reference() {
  local name="$1" model="$2" n="$3"
  shift 3
  timeout 120 "$bin/shardlm" generate --model "$model" --prompt "$prompt" -n "$n" --temp 0 \
    --json --threads 1 "$@" >"$NETNS_DIR/$name.ref.json"
}

# remote NAME N [FLAGS...]: the same through the coordinator, from the client host.
remote() {
  local name="$1" n="$2"
  shift 2
  timeout 120 ip netns exec "$NETNS_CLIENT" "$bin/shardlm" generate --server "$NETNS_SERVER" \
    --prompt "$prompt" -n "$n" --temp 0 --json "$@" >"$NETNS_DIR/$name.got.json" \
    2>"$NETNS_DIR/$name.client.err"
}

start() {
  local name="$1"
  shift
  if ! netns_start_pipeline "$bin" "$@"; then
    echo "FAIL $name: the pipeline did not start"
    failed=$((failed + 1))
    netns_stop_all
    return 1
  fi
}

# run_case NAME MODEL DELAY_MS RANGE...
run_case() {
  local name="$1" model="$2" delay="$3"
  shift 3
  local links="direct links"
  [ -n "$delay" ] && links="relays with $delay ms one-way delay"
  echo "== $name: $(basename "$model") on $# workers [$*], $links"
  reference "$name" "$model" "$n_tokens"
  start "$name" "$model" "$delay" 1 "$@" || return 0
  if ! remote "$name" "$n_tokens"; then
    echo "FAIL $name: generate --server failed:"
    cat "$NETNS_DIR/$name.client.err" "$NETNS_DIR/coordinator.err"
    failed=$((failed + 1))
  else
    compare "$name" "$NETNS_DIR/$name.ref.json" "$NETNS_DIR/$name.got.json"
  fi
  netns_stop_all
}

# rolling_update NAME MODEL "GROUP GROUP..." RANGE...: cases 3 and 4 above.
# Each GROUP ("0,1") is a set of workers restarted one after the other;
# the next group waits until the coordinator has had time to take them back.
rolling_update() {
  local name="$1" model="$2" groups="$3" n=400 client i group
  shift 3
  local ranges=("$@")
  echo "== $name: $(basename "$model") on $# workers [${ranges[*]}], relays with 5 ms one-way" \
    "delay, restarting workers ${groups// / then }"
  reference "$name" "$model" "$n" --ignore-eos
  start "$name" "$model" 5 1 "${ranges[@]}" || return 0
  remote "$name" "$n" --ignore-eos &
  client=$!
  sleep 1
  for group in $groups; do
    for i in ${group//,/ }; do
      netns_restart_worker "$i" "$bin" "$model" "${ranges[$i]}" 1 || true
    done
    echo "   restarted workers $group ($(grep -c '^{"id":' "$NETNS_DIR/$name.got.json") tokens streamed so far)"
    sleep 2.5  # the coordinator probes every second: let it take them back
  done
  if ! wait "$client"; then
    echo "FAIL $name: the stream did not survive the restarts:"
    tail -3 "$NETNS_DIR/$name.got.json"
    cat "$NETNS_DIR/$name.client.err"
    grep -v ' I ' "$NETNS_DIR/coordinator.err" | tail -5
    failed=$((failed + 1))
  else
    echo "   coordinator's warnings (first 4):"
    grep -E '^[WE] ' "$NETNS_DIR/coordinator.err" | head -4 | cut -c1-160 | sed 's/^/     /'
    if ! grep -Eq 'replaying|failed' "$NETNS_DIR/coordinator.err"; then
      echo "FAIL $name: the coordinator never saw a worker go (nothing was tested)"
      failed=$((failed + 1))
      netns_stop_all
      return 0
    fi
    compare "$name" "$NETNS_DIR/$name.ref.json" "$NETNS_DIR/$name.got.json"
  fi
  netns_stop_all
}

run_case stories260K-3-workers "$data/models/stories260K.gguf" "" 0:2 2:4 4:5
run_case nano-q4_0-2-workers-1ms "$data/models/nano-q4_0.gguf" 1 0:2 2:4
rolling_update stories260K-rolling-update-replicas "$data/models/stories260K.gguf" "0,1 2,3" \
  0:2 2:5 0:2 2:5
rolling_update stories260K-restart-single-copy "$data/models/stories260K.gguf" "1" 0:2 2:5

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
