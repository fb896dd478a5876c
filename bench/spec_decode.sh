#!/usr/bin/env bash
# Speculative decoding on loopback: stories260K, 200 greedy tokens from BOS,
# `shardlm serve --workers 2` (1 thread per worker) plain against
# --spec-ngram 4 (prompt-lookup drafts) and, when DRAFT is given, against
# --draft-model DRAFT --spec-draft 4. Per row: the median of RUNS decode
# tokens/s as the coordinator measures them (first to last token), the ratio
# to plain, tokens per pipeline pass (shardlm_tokens_per_pass_sum / _count
# from /metrics) and whether the 200 token ids equal the plain run's.
#
#   bench/spec_decode.sh BIN_DIR [MODEL.gguf] [DRAFT.gguf]
#   (MODEL "" = ../shared/models/stories260K.gguf; RUNS=7 by default; a stories260K file as its own draft shows the
#   mechanics: every draft is accepted.)
set -euo pipefail
BIN="${1:?usage: bench/spec_decode.sh BIN_DIR [MODEL.gguf] [DRAFT.gguf]}"
MODEL="${2:-$(cd "$(dirname "$0")/../../shared" && pwd)/models/stories260K.gguf}"
DRAFT="${3:-}"
RUNS="${RUNS:-7}"
TMP=$(mktemp -d)

# Every configuration is served at once (idle servers cost no CPU) and the
# runs alternate between them, so the machine's noise (it is shared) hits
# all rows alike.
LABELS=(); ADDRS=(); METRICS=(); PIDS=()
serve() {  # serve LABEL FLAGS...
  local label="$1"; shift
  local i=${#LABELS[@]}
  "$BIN/shardlm" serve --model "$MODEL" --workers 2 --threads 1 --listen 127.0.0.1:0 \
      --metrics-listen 127.0.0.1:0 "$@" >"$TMP/out.$i" 2>"$TMP/err.$i" &
  PIDS+=($!)
  local addr=""
  for _ in $(seq 1 600); do
    addr=$(sed -n 's/^SERVING //p' "$TMP/out.$i"); [ -n "$addr" ] && break
    kill -0 "${PIDS[$i]}" 2>/dev/null || { cat "$TMP/err.$i" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$addr" ] || { echo "serve did not come up" >&2; exit 1; }
  LABELS+=("$label"); ADDRS+=("$addr"); METRICS+=("$(sed -n 's/^METRICS //p' "$TMP/out.$i")")
}
cleanup() {
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$TMP"
}
metric() { curl -s "http://${METRICS[$1]}/metrics" | awk -v n="$2" '$1 == n {print $2}'; }
generate() {  # generate INDEX OUT
  "$BIN/shardlm" generate --server "${ADDRS[$1]}" -p "" -n 200 --temp 0 --json >"$2" 2>/dev/null
}

serve plain
serve spec-ngram-4 --spec-ngram 4
serve spec-ngram-8 --spec-ngram 8
if [ -n "$DRAFT" ]; then
  label="draft-model-4 ($(basename "$DRAFT"))"
  [ "$(realpath "$DRAFT")" = "$(realpath "$MODEL")" ] &&
    label="draft-model-4 ($(basename "$DRAFT") as its own draft: mechanics only)"
  serve "$label" --draft-model "$DRAFT" --spec-draft 4
fi
N=${#LABELS[@]}
declare -a S0 C0
for i in $(seq 0 $((N - 1))); do
  generate "$i" /dev/null  # warm-up
  S0[$i]=$(metric "$i" shardlm_tokens_per_pass_sum); C0[$i]=$(metric "$i" shardlm_tokens_per_pass_count)
done
for r in $(seq 1 "$RUNS"); do
  for i in $(seq 0 $((N - 1))); do
    generate "$i" "$TMP/run.$i.$r"
    sed -n 's/.*"generation_tokens_per_s":\([0-9.]*\).*/\1/p' "$TMP/run.$i.$r" >>"$TMP/rates.$i"
    grep -o '"id":[0-9]*' "$TMP/run.$i.$r" >"$TMP/ids.$i.$r"
  done
done

echo "Model $(basename "$MODEL"), 200 greedy tokens from BOS, shardlm serve --workers 2 --threads 1,"
echo "median of $RUNS alternating runs; CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) vCPUs"
echo
echo "| run | decode tokens/s | vs plain | tokens per pass | same 200 tokens as plain |"
echo "|---|---|---|---|---|"
BASE=""
for i in $(seq 0 $((N - 1))); do
  tps=$(sort -n "$TMP/rates.$i" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  [ -z "$BASE" ] && BASE=$tps
  s1=$(metric "$i" shardlm_tokens_per_pass_sum); c1=$(metric "$i" shardlm_tokens_per_pass_count)
  same=yes
  for r in $(seq 1 "$RUNS"); do cmp -s "$TMP/ids.$i.$r" "$TMP/ids.0.1" || same=no; done
  [ "$(wc -l <"$TMP/ids.$i.1")" = 200 ] || same="no (not 200 tokens)"
  echo "| ${LABELS[$i]} | $tps | $(python3 -c "print(f'{$tps/$BASE:.2f}x')") |" \
       "$(python3 -c "print(f'{($s1-${S0[$i]})/max(1,$c1-${C0[$i]}):.2f}')") | $same |"
done
