#!/usr/bin/env bash
# CPU time and context switches per generated token, per process, of
# `shardlm serve --workers N` on loopback: one warm-up generation, then GENS
# greedy generations of 200 tokens from BOS; /proc of the serve process and
# of its workers before and after (utime + stime, and every thread's
# voluntary + involuntary context switches). Wall tokens/s includes the
# `shardlm generate` client's start and the first token.
#
#   bench/cpu_per_token.sh TOPOLOGY [WORKERS] [GENS]     (TOPOLOGY: relay | chain)
#   MODEL=... BUILD_DIR=... EXTRA_FLAGS="--spec-ngram 4" bench/cpu_per_token.sh chain
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 1 ] || [ "$1" = "--help" ] || [ "$1" = "-h" ]; then
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0
fi
TOPOLOGY=$1; WORKERS=${2:-4}; GENS=${3:-3}; TOKENS=200
BIN="${BUILD_DIR:-build}/bin"
MODEL="${MODEL:-$(cd ../shared && pwd)/models/stories260K.gguf}"
TICK_MS=$(echo "1000 / $(getconf CLK_TCK)" | bc -l)
S0=$(mktemp); S1=$(mktemp)
# shellcheck source=bench/serve_lib.sh
source bench/serve_lib.sh
# shellcheck disable=SC2086
serve_start "$BIN" --model "$MODEL" --workers "$WORKERS" --threads 1 --topology "$TOPOLOGY" \
  ${EXTRA_FLAGS:-}
trap 'serve_stop; rm -f "$S0" "$S1"' EXIT
gen() { "$BIN/shardlm" generate --server "$ADDR" --prompt "" --temp 0 -n $TOKENS --ignore-eos \
          --json >/dev/null 2>&1; }
gen
PIDS="$SERVE_PID $(pgrep -P "$SERVE_PID" | tr '\n' ' ')"
snap() {
  for p in $PIDS; do
    echo "$p $(awk '{print $14 + $15}' "/proc/$p/stat") $(cat /proc/"$p"/task/*/status |
      awk '/ctxt_switches/ {s += $2} END {print s}') $(find "/proc/$p/task" -mindepth 1 -maxdepth 1 | wc -l)"
  done
}
snap >"$S0"
START=$(date +%s.%N)
for _ in $(seq 1 "$GENS"); do gen; done
END=$(date +%s.%N)
snap >"$S1"
N=$((TOKENS * GENS))
printf '%s, %d workers: %.1f tokens/s wall\n' "$TOPOLOGY" "$WORKERS" "$(echo "$N / ($END - $START)" | bc -l)"
echo "| process | threads | CPU ms / token | context switches / token |"
echo "|---|---|---|---|"
join "$S0" "$S1" | while read -r p t0 c0 _ t1 c1 th; do
  name=$(tr '\0' ' ' <"/proc/$p/cmdline" | awk '{print $1, $2}' | sed 's#^[^ ]*/##')
  printf '| %s | %d | %.3f | %.1f |\n' "$name" "$th" "$(echo "($t1 - $t0) * $TICK_MS / $N" | bc -l)" \
    "$(echo "($c1 - $c0) / $N" | bc -l)"
done
