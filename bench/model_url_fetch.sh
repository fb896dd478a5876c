#!/usr/bin/env bash
# Time to ready and bytes fetched per worker when the model is a URL, over
# loopback (tests/fetch/range_server.py serves it): 1, 2 and 4 workers, each
# with its own empty cache (like pods on different machines), started at
# once with the layers `shardlm-inspect --split N` gives, in two modes:
#   ranges  each worker fetches only its own tensors (Range requests)
#   whole   the server ignores Range, workers run with
#           --model-allow-full-download: every worker downloads the whole file
#   local   no URL: the file on local disk (page cache warm), the baseline
# Prints a Markdown table (docs/BENCHMARKS.md). Every process is started here
# and ended by its pid; caches are removed after each run.
#   bench/model_url_fetch.sh BIN_DIR MODEL.gguf [THREADS]
# Model: build/bin/shardlm-mkmodel --preset tinyllama-1.1b --type q4_0 -o /tmp/tl-q4_0.gguf
#   (docs/BENCHMARKS.md added --vocab-from ../shared/models/mini-shape-q4_0.gguf: a real vocabulary)
set -euo pipefail
bin=$1
model=$2
threads=${3:-1}
server_py="$(cd "$(dirname "$0")/.." && pwd)/tests/fetch/range_server.py"
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
size=$(stat -c %s "$model")
header=$("$bin/shardlm-inspect" --json "$model" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data_offset"])')
echo "model: $(basename "$model"), $size bytes, header $header bytes; CPU: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores"
echo
echo "| mode | workers | worker layers | fetched | share of file | time to ready |"
echo "|---|---|---|---|---|---|"
for mode in local ranges whole; do
  for n in 1 2 4; do
    flags=()
    extra=()
    if [ $mode = whole ]; then flags=(--ignore-range); extra=(--model-allow-full-download); fi
    python3 "$server_py" "$model" --name m.gguf --max-seconds 900 "${flags[@]}" >"$tmp/port" &
    server=$!
    pids+=($server)
    for _ in $(seq 1 600); do grep -q '^PORT ' "$tmp/port" && break; sleep 0.1; done
    port=$(sed -n 's/^PORT //p' "$tmp/port")
    mapfile -t ranges < <("$bin/shardlm-inspect" --split $n "$model" | sed -n 's/.*--layers //p')
    start=$(date +%s.%N)
    workers=()
    for i in "${!ranges[@]}"; do
      source="http://127.0.0.1:$port/m.gguf"
      [ $mode = local ] && source=$model
      "$bin/shardlm-worker" --model "$source" --layers "${ranges[$i]}" \
        --listen 127.0.0.1:0 --insecure --threads "$threads" --model-cache-dir "$tmp/cache-$i" \
        "${extra[@]}" >"$tmp/w$i.out" 2>"$tmp/w$i.err" &
      workers+=($!)
      pids+=($!)
    done
    declare -A ready=()
    for _ in $(seq 1 12000); do
      for i in "${!ranges[@]}"; do
        if [ -z "${ready[$i]:-}" ] && grep -q '^READY' "$tmp/w$i.out"; then
          ready[$i]=$(python3 -c "print(f'{$(date +%s.%N) - $start:.2f}')")
        fi
        kill -0 "${workers[$i]}" 2>/dev/null || { cat "$tmp/w$i.err" >&2; exit 1; }
      done
      [ ${#ready[@]} -eq ${#ranges[@]} ] && break
      sleep 0.05
    done
    stats=$(python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:$port/_stats').read().decode())")
    for i in "${!ranges[@]}"; do
      bytes=$(python3 -c "import json; print(json.loads('$stats').get('shardlm (shardlm-worker layers ${ranges[$i]})', 0))")
      python3 -c "print('| $mode | $n | ${ranges[$i]} | %.1f MiB | %.0f%% | ${ready[$i]} s |' % ($bytes / 1048576, 100 * $bytes / $size))"
    done
    unset ready
    for p in "${workers[@]}" $server; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"/cache-*
  done
done
