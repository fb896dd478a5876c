#!/usr/bin/env bash
# Decode speed of a 2-worker pipeline against the latency between hosts.
# Each worker, the coordinator and the client run in network namespaces of
# their own (tests/netns/netns_lib.sh); a delaying TCP relay on each
# coordinator-worker link adds the one-way latency (this kernel has no netem).
#
#   bench/netns_latency.sh BIN_DIR [MODEL.gguf] [OUT.md]
#
# MODEL defaults to a TinyLlama-shaped Q4_0 at /tmp/tl-q4_0.gguf, made with
# shardlm-mkmodel if missing (~20 s). Prints a Markdown table (and writes it
# to OUT.md if given): decode tokens/s and ms/token for direct links, the relay
# alone, and 1, 2, 5 ms one way. Every token crosses 2 round trips (coordinator
# -> worker 0 -> coordinator -> worker 1 -> coordinator), so the expected
# extra time per token is 4 x the one-way delay. Needs root. Env: THREADS
# (per worker, default 1), TOKENS (default 64), DELAYS (default "0 1 2 5"),
# REPS (measured runs per row, default 5: the table gives the best and the
# median, as other work on a shared machine makes single runs noisy; the
# best run is the one least disturbed, so ms/token and the added time use it).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=../tests/netns/netns_lib.sh
source "$here/../tests/netns/netns_lib.sh"

[ $# -ge 1 ] || { echo "usage: $0 BIN_DIR [MODEL.gguf] [OUT.md]" >&2; exit 2; }
bin="$(cd "$1" && pwd)"
model="${2:-/tmp/tl-q4_0.gguf}"
out="${3:-}"
threads="${THREADS:-1}"
tokens="${TOKENS:-64}"
delays="${DELAYS:-0 1 2 5}"
reps="${REPS:-5}"
prompt="Once upon a time"

trap netns_cleanup EXIT
trap 'exit 143' INT TERM HUP
if ! netns_available; then
  echo "netns_latency: $NETNS_WHY" >&2
  exit 1
fi
if [ ! -f "$model" ]; then
  echo "making $model (TinyLlama 1.1B shape, Q4_0) ..." >&2
  start=$(date +%s.%N)
  "$bin/shardlm-mkmodel" -q --preset tinyllama-1.1b --type q4_0 -o "$model"
  echo "made in $(echo "$(date +%s.%N) - $start" | bc 2>/dev/null || echo '?') s" >&2
fi
n_layer=$("$bin/shardlm-inspect" "$model" | awk '$3 == "llama.block_count" {print $4}')
half=$((n_layer / 2))
NETNS_DIR="$(mktemp -d)"
netns_make_hosts 2

stat() { grep -o "\"$2\":[^,}]*" "$1" | tail -1 | cut -d: -f2; }
# generate OUT N CMD...: CMD (a shardlm generate) greedy, exactly N tokens.
generate() {
  local file="$1" n="$2"
  shift 2
  timeout 600 "$@" --prompt "$prompt" -n "$n" --temp 0 --ignore-eos --json >"$file"
}

table="| link between hosts | one-way delay | decode tokens/s, best (median) | ms/token, best | added ms/token (expected 4 x delay) |
|---|---|---|---|---|"
generate "$NETNS_DIR/local.json" "$tokens" "$bin/shardlm" generate --model "$model" --threads "$((2 * threads))"
local_tps=$(stat "$NETNS_DIR/local.json" generation_tokens_per_s)
base_ms=""
for delay in "" $delays; do
  netns_start_pipeline "$bin" "$model" "$delay" "$threads" "0:$half" "$half:$n_layer"
  # Warm-up (page cache, connections), then the measured run.
  generate "$NETNS_DIR/warm.json" 8 ip netns exec "$NETNS_CLIENT" "$bin/shardlm" generate --server "$NETNS_SERVER"
  runs=()
  for ((r = 0; r < reps; ++r)); do
    generate "$NETNS_DIR/run.json" "$tokens" ip netns exec "$NETNS_CLIENT" "$bin/shardlm" generate --server "$NETNS_SERVER"
    runs+=("$(stat "$NETNS_DIR/run.json" generation_tokens_per_s)")
  done
  median=$(printf '%s\n' "${runs[@]}" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
  tps=$(printf '%s\n' "${runs[@]}" | sort -g | tail -1)
  echo "runs: ${runs[*]} tokens/s" >&2
  ms=$(awk -v t="$tps" 'BEGIN { printf "%.1f", 1000 / t }')
  [ -z "$base_ms" ] && base_ms=$ms
  added=$(awk -v a="$ms" -v b="$base_ms" 'BEGIN { printf "%+.1f", a - b }')
  for i in 0 1; do
    rss=$(grep -o 'RSS [0-9.]* MiB' "$NETNS_DIR/worker$i.err" | tail -1)
    hwm=$(awk '/VmHWM/ {printf "%.0f MiB", $2 / 1024}' "/proc/${NETNS_WORKER_PIDS[$i]}/status" 2>/dev/null || true)
    echo "worker $i: $rss at ready, peak $hwm" >&2
  done
  if [ -z "$delay" ]; then
    table+=$'\n'"| veth, direct | 0 | $tps ($median) | $ms | (baseline) |"
  elif [ "$delay" = 0 ]; then
    table+=$'\n'"| veth + relay | 0 | $tps ($median) | $ms | $added (relay alone) |"
  else
    table+=$'\n'"| veth + relay | $delay ms | $tps ($median) | $ms | $added ($((4 * delay))) |"
  fi
  echo "$table" | tail -1 >&2
  netns_stop_all
done
table+=$'\n\n'"$(basename "$model"): layers 0:$half and $half:$n_layer, $threads thread(s) per worker, $tokens greedy tokens, $reps runs per row; single process ($((2 * threads)) threads): $local_tps tokens/s; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs."
echo "$table"
[ -n "$out" ] && echo "$table" >"$out"
exit 0
