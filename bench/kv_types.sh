#!/usr/bin/env bash
# Prompt processing and decode speed of one in-process stage (shardlm-speed)
# with each KV cache type, alternating the types round by round, and the KV
# bytes per token each reports. Prints a Markdown table: each round's speed
# (the best of RUNS) and its ratio to f16 in the same round — on a shared
# machine speeds swing between rounds, runs made back to back compare.
#
#   bench/kv_types.sh [MODEL.gguf] [ROUNDS]
#
# MODEL defaults to a TinyLlama-1.1B-shaped q4_0 file made by shardlm-mkmodel
# in /tmp (tl-q4_0.gguf). PP (256), TG (128), RUNS (2), THREADS (2), TYPES
# ("f16 q8_0 f32") and BUILD_DIR (build) may be set in the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL="${1:-/tmp/tl-q4_0.gguf}"
ROUNDS="${2:-2}"
PP="${PP:-256}"; TG="${TG:-128}"; RUNS="${RUNS:-2}"; THREADS="${THREADS:-2}"
read -r -a TYPES <<< "${TYPES:-f16 q8_0 f32}"
BUILD_DIR="${BUILD_DIR:-build}"
cmake --build "$BUILD_DIR" -j2 --target shardlm-speed shardlm-mkmodel >/dev/null
[ -f "$MODEL" ] || "$BUILD_DIR/bin/shardlm-mkmodel" --preset tinyllama-1.1b --type q4_0 -o "$MODEL" >&2
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
grep -m1 'model name' /proc/cpuinfo >&2 || true
for r in $(seq 1 "$ROUNDS"); do
  for t in "${TYPES[@]}"; do
    "$BUILD_DIR/bin/shardlm-speed" --model "$MODEL" --pp "$PP" --tg "$TG" --runs "$RUNS" \
        --threads "$THREADS" --kv-type "$t" > "$OUT/$t.$r.json"
    echo "round $r $t: $(cat "$OUT/$t.$r.json")" >&2
  done
done
python3 - "$OUT" "$ROUNDS" "$PP" "$TG" "${TYPES[@]}" <<'PY'
import json, sys
out, rounds, pp, tg, types = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5:]
runs = {t: [json.load(open(f"{out}/{t}.{r}.json")) for r in range(1, rounds + 1)] for t in types}
base = runs.get("f16")

def speeds(t, phase):  # "v1 (0.96x) / v2 (0.81x)": each round, against f16 in that round
    cells = []
    for r, run in enumerate(runs[t]):
        v = run[phase]["tokens_per_s_best"]
        cell = f"{v:.1f}"
        if base and t != "f16":
            cell += f" ({v / base[r][phase]['tokens_per_s_best']:.2f}x)"
        cells.append(cell)
    return " / ".join(cells)

print(f"| KV type | KV bytes per token (all layers) | vs f16 | pp{pp} tok/s, rounds 1-{rounds} | "
      f"tg{tg} tok/s, rounds 1-{rounds} |")
print("|---|---|---|---|---|")
for t in types:
    b = runs[t][0]["kv_bytes_per_token"]
    ratio = f"{b / base[0]['kv_bytes_per_token']:.3f}" if base else "-"
    print(f"| {t} | {b} | {ratio} | {speeds(t, 'pp')} | {speeds(t, 'tg')} |")
PY
