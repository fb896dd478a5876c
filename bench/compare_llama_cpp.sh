#!/usr/bin/env bash
# Side-by-side speed of shardlm and llama.cpp (node-llama-cpp 3.21.1, the
# reference in ../shared/reference) on the same TinyLlama-1.1B-shaped files,
# made here by shardlm-mkmodel, with the same thread count, alternating runs.
# Writes the table into docs/BENCHMARKS.md between the markers and prints it.
#
#   bench/compare_llama_cpp.sh [ROUNDS] [TYPES...]     (defaults: 2 rounds; q4_0 q4_k_m q8_0)
#
# SHARDLM_CPU=scalar|avx2|avx512 pins shardlm's kernel set (default: the best
# the CPU has); the CPU's model, its SIMD flags and the set in use are printed
# first. UPDATE_DOC=0 leaves docs/BENCHMARKS.md alone (to compare sets or CPUs).
#
# Needs node-llama-cpp: NODE_PATH pointing at a node_modules that has it, or
# it is installed into /tmp/nlc (npm registry).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${1:-2}"; shift || true
TYPES=("${@:-q4_0 q4_k_m q8_0}")
[ ${#TYPES[@]} -eq 1 ] && read -r -a TYPES <<< "${TYPES[0]}"
THREADS="${THREADS:-2}"
BUILD_DIR="${BUILD_DIR:-build}"
MODELS="${MODELS:-/tmp/shardlm-bench-models}"
SHARED="$(cd ../shared && pwd)"
OUT="$(mktemp -d)"

cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$BUILD_DIR" -j2 --target shardlm-speed shardlm-mkmodel shardlm-membw >/dev/null
if [ -z "${NODE_PATH:-}" ]; then
  if [ ! -d /tmp/nlc/node_modules/node-llama-cpp ]; then
    mkdir -p /tmp/nlc && (cd /tmp/nlc && npm init -y >/dev/null && npm i -E node-llama-cpp@3.21.1 >/dev/null)
  fi
  export NODE_PATH=/tmp/nlc/node_modules
fi
mkdir -p "$MODELS"
for t in "${TYPES[@]}"; do
  m="$MODELS/tinyllama-shape-$t.gguf"
  [ -f "$m" ] || "$BUILD_DIR/bin/shardlm-mkmodel" --preset tinyllama-1.1b --type "$t" \
      --vocab-from "$SHARED/tokenizer/ggml-vocab-llama-spm.gguf" -o "$m" >&2
done

CPU_MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
CPU_FLAGS=$(grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -E '^(avx2|fma|f16c|avx512[a-z0-9_]*|amx[a-z0-9_]*|avx_vnni)$' | sort -u | tr '\n' ' ')
KERNEL_SET=$("$BUILD_DIR/bin/shardlm-speed" --print-kernel-set)
echo "CPU: $CPU_MODEL ($(nproc) cores visible)" >&2
echo "CPU flags: $CPU_FLAGS" >&2
echo "shardlm kernel set: $KERNEL_SET${SHARDLM_CPU:+ (SHARDLM_CPU=$SHARDLM_CPU)}" >&2

"$BUILD_DIR/bin/shardlm-membw" --threads "$THREADS" > "$OUT/membw.json"
BW=$(sed -n 's/.*"read_gb_per_s_best":\([0-9.]*\).*/\1/p' "$OUT/membw.json")
echo "read bandwidth, $THREADS threads: $BW GB/s" >&2

for r in $(seq 1 "$ROUNDS"); do
  for t in "${TYPES[@]}"; do
    m="$MODELS/tinyllama-shape-$t.gguf"
    echo "round $r: $t shardlm" >&2
    "$BUILD_DIR/bin/shardlm-speed" --model "$m" --threads "$THREADS" > "$OUT/shardlm-$t-$r.json"
    echo "round $r: $t llama.cpp" >&2
    /usr/bin/time -f '%M' -o "$OUT/llama-$t-$r.rss" \
        node "$SHARED/reference/bench.mjs" "$m" --threads "$THREADS" > "$OUT/llama-$t-$r.json"
  done
done

CPU_MODEL="$CPU_MODEL" CPU_FLAGS="$CPU_FLAGS" KERNEL_SET="$KERNEL_SET" \
python3 - "$OUT" "$BW" "$ROUNDS" "$THREADS" "${TYPES[@]}" <<'PY' > "$OUT/table.md"
import json, os, sys
out, bw, rounds, threads, types = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5:]
print(f"CPU: {os.environ['CPU_MODEL']}; flags: {os.environ['CPU_FLAGS'].strip()}; shardlm kernel set: {os.environ['KERNEL_SET']}\n")
print(f"| model | weights read per token | bound at {bw:.1f} GB/s | shardlm tg | llama.cpp tg | tg ratio | shardlm pp | llama.cpp pp | pp ratio | shardlm peak RSS | llama.cpp peak RSS |")
print("|---|---|---|---|---|---|---|---|---|---|---|")
for t in types:
    s = [json.load(open(f"{out}/shardlm-{t}-{r}.json")) for r in range(1, rounds + 1)]
    l = [json.load(open(f"{out}/llama-{t}-{r}.json")) for r in range(1, rounds + 1)]
    lrss = max(int(open(f"{out}/llama-{t}-{r}.rss").read().split()[-1]) for r in range(1, rounds + 1))
    stg = max(x["tg"]["tokens_per_s_best"] for x in s); ltg = max(x["tg"]["tokens_per_s_best"] for x in l)
    spp = max(x["pp"]["tokens_per_s_best"] for x in s); lpp = max(x["pp"]["tokens_per_s_best"] for x in l)
    wb = s[0]["weight_bytes"]; srss = max(x["peak_rss_kib"] for x in s)
    print(f"| tinyllama-shape-{t} | {wb/1e6:.0f} MB | {bw*1e9/wb:.1f} tok/s | {stg:.1f} | {ltg:.1f} | {stg/ltg:.2f}x "
          f"| {spp:.1f} | {lpp:.1f} | {spp/lpp:.2f}x | {srss/1024:.0f} MiB | {lrss/1024:.0f} MiB |")
PY
cat "$OUT/table.md"
if [ "${UPDATE_DOC:-1}" != 0 ] && grep -q '<!-- llama.cpp comparison -->' docs/BENCHMARKS.md 2>/dev/null; then
  python3 - "$OUT/table.md" <<'PY'
import sys, re
table = open(sys.argv[1]).read()
doc = open("docs/BENCHMARKS.md").read()
doc = re.sub(r"<!-- llama.cpp comparison -->.*?<!-- end -->",
             "<!-- llama.cpp comparison -->\n" + table + "<!-- end -->", doc, flags=re.S)
open("docs/BENCHMARKS.md", "w").write(doc)
PY
fi
