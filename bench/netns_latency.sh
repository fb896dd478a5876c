#!/usr/bin/env bash
# Decode speed of an N-worker pipeline against the latency between hosts,
# per topology. Each worker, the coordinator and the client run in network
# namespaces of their own (tests/netns/netns_lib.sh); a delaying TCP relay on
# each coordinator-worker link adds the one-way latency (this kernel has no
# netem). With --topology chain the workers reach each other through those
# same relays (netns_workers_reach_each_other), so every worker-to-worker hop
# pays the delay too.
#
#   bench/netns_latency.sh BIN_DIR [MODEL.gguf] [OUT.md]
#
# MODEL defaults to a TinyLlama-shaped Q4_0 at /tmp/tl-q4_0.gguf, made with
# shardlm-mkmodel if missing (~20 s). Prints a Markdown table (and writes it
# to OUT.md if given): decode tokens/s and ms/token for direct links (relay
# topology only: direct worker addresses are not reachable from other
# workers), the relay alone, and each delay, per topology. Per token, relay
# crosses 2N one-way hops (coordinator -> worker i -> coordinator, for each
# of N workers): 2N x delay added; chain crosses N + 1 (coordinator -> worker
# 0 -> ... -> worker N-1 -> coordinator): (N + 1) x delay.
#
# One pipeline per row runs side by side on the same hosts (other ports), all
# idle but the one measured, and the rows are measured in turn, REPS rounds:
# other work on a shared machine then disturbs every row alike. The table
# gives the best and the median run of each row; ms/token and the added time
# use the median. Needs root. Env: THREADS (per worker, default 1), TOKENS
# (default 64), DELAYS (default "0 1 2 5"), REPS (default 5), WORKERS
# (default 2), TOPOLOGIES (default "relay"; e.g. "relay chain"), EXTRA_FLAGS
# (more coordinator flags for every row). A topology written T+spec is T
# with speculative decoding (SPEC_FLAGS, default "--spec-ngram 4"): e.g.
# TOPOLOGIES="relay chain chain+spec"; its passes per token are 1 / the
# accepted length, so its network cost per token is (N+1) x delay / that.
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
reps="${REPS:-5}"
read -r -a delays <<<"${DELAYS:-0 1 2 5}"
read -r -a topologies <<<"${TOPOLOGIES:-relay}"
n_workers="${WORKERS:-2}"
prompt="Once upon a time"

trap netns_cleanup EXIT
trap 'exit 143' INT TERM HUP
if ! netns_available; then
  echo "netns_latency: $NETNS_WHY" >&2
  exit 1
fi
if [ ! -f "$model" ]; then
  echo "making $model (TinyLlama 1.1B shape, Q4_0) ..." >&2
  start=$(date +%s)
  "$bin/shardlm-mkmodel" -q --preset tinyllama-1.1b --type q4_0 -o "$model"
  echo "made in $(($(date +%s) - start)) s" >&2
fi
n_layer=$("$bin/shardlm-inspect" "$model" | awk '$3 == "llama.block_count" {print $4}')
if [ "$n_workers" -lt 1 ] || [ "$n_workers" -gt "$n_layer" ]; then
  echo "WORKERS must be 1..$n_layer" >&2
  exit 2
fi
# Layer ranges of about equal size.
ranges=()
for ((i = 0; i < n_workers; ++i)); do
  ranges+=("$((i * n_layer / n_workers)):$(((i + 1) * n_layer / n_workers))")
done
NETNS_DIR="$(mktemp -d)"
netns_make_hosts "$n_workers"
netns_workers_reach_each_other

stat() { grep -o "\"$2\":[^,}]*" "$1" | tail -1 | cut -d: -f2; }
# generate OUT N CMD...: CMD (a shardlm generate) greedy, exactly N tokens.
generate() {
  local file="$1" n="$2"
  shift 2
  timeout 600 "$@" --prompt "$prompt" -n "$n" --temp 0 --ignore-eos --json >"$file"
}

# Row r: slot r; per topology, delay "" (direct, relay topology only), then
# the relays.
rows=()
row_topology=()
for topology in "${topologies[@]}"; do
  [ "$topology" = relay ] && { rows+=(""); row_topology+=("$topology"); }
  for d in "${delays[@]}"; do
    rows+=("$d")
    row_topology+=("$topology")
  done
done
servers=()
for ((r = 0; r < ${#rows[@]}; ++r)); do
  row_flags="--topology ${row_topology[$r]%+spec} ${EXTRA_FLAGS:-}"
  [[ "${row_topology[$r]}" == *+spec ]] && row_flags+=" ${SPEC_FLAGS:---spec-ngram 4}"
  NETNS_SLOT=$r NETNS_COORD_FLAGS="$row_flags" \
    netns_start_pipeline "$bin" "$model" "${rows[$r]}" "$threads" "${ranges[@]}"
  servers+=("$NETNS_SERVER")
  generate "$NETNS_DIR/warm.json" 8 ip netns exec "$NETNS_CLIENT" "$bin/shardlm" generate --server "$NETNS_SERVER"
done
for ((i = 0; i < n_workers; ++i)); do
  echo "worker $i: $(grep -o 'RSS [0-9.]* MiB' "$NETNS_DIR/worker$i.err" | tail -1) at ready" >&2
done
declare -A runs
for ((rep = 0; rep < reps; ++rep)); do
  for ((r = 0; r < ${#rows[@]}; ++r)); do
    generate "$NETNS_DIR/run.json" "$tokens" ip netns exec "$NETNS_CLIENT" "$bin/shardlm" generate --server "${servers[$r]}"
    runs[$r]+="$(stat "$NETNS_DIR/run.json" generation_tokens_per_s) "
  done
  echo "round $((rep + 1))/$reps done" >&2
done
generate "$NETNS_DIR/local.json" "$tokens" "$bin/shardlm" generate --model "$model" --threads "$threads"
local_tps=$(stat "$NETNS_DIR/local.json" generation_tokens_per_s)

table="| topology | link between hosts | one-way delay | decode tokens/s: median (best) | ms/token (median) | added ms/token vs direct relay (expected: relay 2N x delay, chain (N+1) x delay) |
|---|---|---|---|---|---|"
base_ms=""
for ((r = 0; r < ${#rows[@]}; ++r)); do
  topology="${row_topology[$r]}"
  echo "row $r ($topology, ${rows[$r]:-direct}): ${runs[$r]}tokens/s" >&2
  median=$(tr ' ' '\n' <<<"${runs[$r]}" | grep . | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')
  best=$(tr ' ' '\n' <<<"${runs[$r]}" | grep . | sort -g | tail -1)
  ms=$(awk -v t="$median" 'BEGIN { printf "%.1f", 1000 / t }')
  [ -z "$base_ms" ] && base_ms=$ms
  added=$(awk -v a="$ms" -v b="$base_ms" 'BEGIN { printf "%+.1f", a - b }')
  delay="${rows[$r]}"
  hops=$((2 * n_workers))
  [ "${topology%+spec}" = chain ] && hops=$((n_workers + 1))
  if [ -z "$delay" ]; then
    table+=$'\n'"| $topology | veth, direct | 0 | $median ($best) | $ms | (baseline) |"
  elif [ "$delay" = 0 ]; then
    table+=$'\n'"| $topology | veth + relay | 0 | $median ($best) | $ms | $added (0: the relay alone) |"
  else
    table+=$'\n'"| $topology | veth + relay | $delay ms | $median ($best) | $ms | $added ($hops x $delay = $((hops * delay))) |"
  fi
done
table+=$'\n\n'"$(basename "$model"): $n_workers workers (layers ${ranges[*]}), $threads thread(s) per worker, $tokens greedy tokens, $reps rounds${EXTRA_FLAGS:+, coordinator flags: $EXTRA_FLAGS}; single process ($threads thread(s)): $local_tps tokens/s; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs."
echo "$table"
[ -n "$out" ] && echo "$table" >"$out"
exit 0
