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
#   (RUNS=7 by default; a stories260K file as its own draft shows the
#   mechanics: every draft is accepted.)
set -euo pipefail
BIN="${1:?usage: bench/spec_decode.sh BIN_DIR [MODEL.gguf] [DRAFT.gguf]}"
MODEL="${2:-$(cd "$(dirname "$0")/../../shared" && pwd)/models/stories260K.gguf}"
DRAFT="${3:-}"
RUNS="${RUNS:-7}"
TMP=$(mktemp -d)
SERVE_PID=""
cleanup() { [ -n "$SERVE_PID" ] && kill -TERM "$SERVE_PID" 2>/dev/null && wait "$SERVE_PID" 2>/dev/null; rm -rf "$TMP"; }
trap cleanup EXIT

serve() {  # serve EXTRA_FLAGS... -> ADDR, METRICS, SERVE_PID
  "$BIN/shardlm" serve --model "$MODEL" --workers 2 --threads 1 --listen 127.0.0.1:0 \
      --metrics-listen 127.0.0.1:0 "$@" >"$TMP/out" 2>"$TMP/err" &
  SERVE_PID=$!
  ADDR=""
  for _ in $(seq 1 600); do
    ADDR=$(sed -n 's/^SERVING //p' "$TMP/out"); [ -n "$ADDR" ] && break
    kill -0 "$SERVE_PID" 2>/dev/null || { cat "$TMP/err" >&2; exit 1; }
    sleep 0.1
  done
  [ -n "$ADDR" ] || { echo "serve did not come up" >&2; exit 1; }
  METRICS=$(sed -n 's/^METRICS //p' "$TMP/out")
}
stop() { kill -TERM "$SERVE_PID"; wait "$SERVE_PID" || true; SERVE_PID=""; }
metric() { curl -s "http://$METRICS/metrics" | awk -v n="$1" '$1 == n {print $2}'; }

row() {  # row LABEL FLAGS...
  local label="$1"; shift
  serve "$@"
  "$BIN/shardlm" generate --server "$ADDR" -p "" -n 200 --temp 0 --json >/dev/null 2>&1  # warm-up
  local s0 c0; s0=$(metric shardlm_tokens_per_pass_sum); c0=$(metric shardlm_tokens_per_pass_count)
  local rates=()
  for i in $(seq 1 "$RUNS"); do
    "$BIN/shardlm" generate --server "$ADDR" -p "" -n 200 --temp 0 --json >"$TMP/run" 2>/dev/null
    rates+=("$(sed -n 's/.*"generation_tokens_per_s":\([0-9.]*\).*/\1/p' "$TMP/run")")
    grep -o '"id":[0-9]*' "$TMP/run" >"$TMP/ids.$label.$i"
  done
  local s1 c1; s1=$(metric shardlm_tokens_per_pass_sum); c1=$(metric shardlm_tokens_per_pass_count)
  stop
  local tps; tps=$(printf '%s\n' "${rates[@]}" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}')
  [ -z "${BASE:-}" ] && BASE=$tps
  local same=yes
  for i in $(seq 1 "$RUNS"); do cmp -s "$TMP/ids.$label.$i" "$TMP/ids.plain.1" || same=no; done
  [ "$(wc -l <"$TMP/ids.$label.1")" = 200 ] || same="no (not 200 tokens)"
  echo "| $label | $tps | $(python3 -c "print(f'{$tps/$BASE:.2f}x')") | $(python3 -c "print(f'{($s1-$s0)/max(1,$c1-$c0):.2f}')") | $same |"
}

echo "Model $(basename "$MODEL"), 200 greedy tokens from BOS, shardlm serve --workers 2 --threads 1,"
echo "median of $RUNS runs; CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) vCPUs"
echo
echo "| run | decode tokens/s | vs plain | tokens per pass | same 200 tokens as plain |"
echo "|---|---|---|---|---|"
row plain
row spec-ngram-4 --spec-ngram 4
row spec-ngram-8 --spec-ngram 8
if [ -n "$DRAFT" ]; then
  row "draft-model-4 ($(basename "$DRAFT"))" --draft-model "$DRAFT" --spec-draft 4
fi
