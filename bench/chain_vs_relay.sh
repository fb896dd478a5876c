#!/usr/bin/env bash
# --topology relay vs chain on loopback: one greedy stream of 200 tokens
# from BOS (prompt = BOS only) through `shardlm serve --workers N`, tokens/s
# of each, and whether both produced the same tokens. Rounds alternate the
# topologies (the machine is shared and noisy); the median round counts.
#
#   bench/chain_vs_relay.sh [MODEL.gguf] [WORKERS] [ROUNDS]
#   EXTRA_FLAGS="--spec-ngram 4" bench/chain_vs_relay.sh   (extra serve flags)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${BUILD_DIR:-build}"
MODEL="${1:-$(cd ../shared && pwd)/models/stories260K.gguf}"
WORKERS="${2:-4}"
ROUNDS="${3:-5}"
TOKENS=200
cmake --build "$BUILD_DIR" -j2 --target shardlm shardlm-worker shardlm-bench >/dev/null

# shellcheck source=bench/serve_lib.sh
source bench/serve_lib.sh
serve() {  # serve TOPOLOGY -> ADDR, SERVE_PID
  # shellcheck disable=SC2086
  serve_start "$BUILD_DIR/bin" --model "$MODEL" --workers "$WORKERS" --threads 1 --topology "$1" \
    ${EXTRA_FLAGS:-}
}
field() { sed -n "s/.*\"$1\":\\([0-9.]*\\).*/\\1/p"; }
# A digest of the token ids of one greedy generation from BOS (empty prompt).
tokens() { "$BUILD_DIR/bin/shardlm" generate --server "$ADDR" --prompt "" --temp 0 -n $TOKENS \
             --ignore-eos --json 2>/dev/null | sed -n 's/^{"id":\([0-9]*\),.*/\1/p' |
             md5sum | cut -c1-12; }

declare -A TPS SAME
for _ in $(seq 1 "$ROUNDS"); do
  for topo in relay chain; do
    serve $topo
    "$BUILD_DIR/bin/shardlm-bench" --server "$ADDR" -c 1 -n 1 --prompt-tokens 1 --max-tokens 16 >/dev/null 2>&1
    t=$("$BUILD_DIR/bin/shardlm-bench" --server "$ADDR" -c 1 -n 3 --prompt-tokens 1 \
          --max-tokens $TOKENS --json 2>/dev/null | field tokens_per_s)
    TPS[$topo]="${TPS[$topo]:-} $t"
    SAME[$topo]=$(tokens)
    serve_stop
  done
done
median() { tr ' ' '\n' | sed '/^$/d' | sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
relay=$(echo "${TPS[relay]}" | median)
chain=$(echo "${TPS[chain]}" | median)
same=no; [ "${SAME[relay]}" = "${SAME[chain]}" ] && same=yes
echo "| workers | relay tokens/s | chain tokens/s | chain / relay | same $TOKENS tokens | rounds (relay; chain) |"
echo "|---|---|---|---|---|---|"
printf "| %s | %s | %s | %.2fx | %s | %s; %s |\n" "$WORKERS" "$relay" "$chain" \
  "$(echo "$chain / $relay" | bc -l)" "$same" "${TPS[relay]# }" "${TPS[chain]# }"
