#!/usr/bin/env bash
# `--model URL` end to end, against tests/fetch/range_server.py on loopback
# (issue 23, "Checked by"):
#   1. `shardlm serve --model http://127.0.0.1:PORT/m.gguf --workers 3` gives
#      the greedy output of the local file, and each worker downloaded less
#      than its own tensors + the header + 5% (counted at the server);
#   2. a restart with the same cache downloads nothing but the probes;
#   3. a server that drops every connection after 1 MiB still ends in a
#      correct load (ranges resume);
#   4. a worker's /metrics shows what it fetched (shardlm_model_fetch_*);
#   5. 404, a server ignoring Range and a lying Content-Length each stop a
#      worker with exit code 1 and a message saying what is wrong (no crash).
# Every process is started here, bound to 127.0.0.1, and ended by its pid.
#   model_url_e2e_test.sh BIN_DIR TEST_DATA_DIR
set -euo pipefail
bin=$1
data=${SHARDLM_TEST_DATA:-$2}
here=$(cd "$(dirname "$0")" && pwd)
model="$data/models/mini-shape-q4_0.gguf"
prompt="Once upon a time"
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# start_server NAME FLAGS...: a range server for $model; sets $port.
start_server() {
  local name=$1; shift
  python3 "$here/range_server.py" "$model" --name m.gguf --max-seconds 280 "$@" >"$tmp/$name.port" &
  pids+=($!)
  for _ in $(seq 1 300); do grep -q '^PORT ' "$tmp/$name.port" && break; sleep 0.1; done
  port=$(sed -n 's/^PORT //p' "$tmp/$name.port")
  [ -n "$port" ] || fail "range_server.py ($name) did not start"
}
stats() { python3 -c "import json,sys,urllib.request; print(json.dumps(json.load(urllib.request.urlopen('http://127.0.0.1:$1/_stats'))))"; }

serve_extra=()
"$bin/shardlm" serve --help | grep -- '--insecure' >/dev/null && serve_extra+=(--insecure)  # not -q: SIGPIPE
# serve NAME URL CACHE: starts `shardlm serve` and sets $serve_pid, $addr.
serve() {
  "$bin/shardlm" serve --model "$2" --workers 3 --threads 1 --listen 127.0.0.1:0 \
    --model-cache-dir "$3" "${serve_extra[@]}" >"$tmp/$1.out" 2>"$tmp/$1.err" &
  serve_pid=$!
  pids+=($serve_pid)
  for _ in $(seq 1 1200); do
    grep -q '^SERVING ' "$tmp/$1.out" && break
    kill -0 $serve_pid 2>/dev/null || { cat "$tmp/$1.err" >&2; fail "shardlm serve ($1) exited"; }
    sleep 0.1
  done
  addr=$(sed -n 's/^SERVING //p' "$tmp/$1.out")
  [ -n "$addr" ] || { cat "$tmp/$1.err" >&2; fail "shardlm serve ($1) did not come up"; }
}
stop_serve() {
  kill -TERM "$serve_pid"
  wait "$serve_pid" 2>/dev/null || true
}
generate_remote() { "$bin/shardlm" generate --server "$addr" --prompt "$prompt" -n 24 --temp 0 2>/dev/null; }

expected=$("$bin/shardlm" generate --model "$model" --prompt "$prompt" -n 24 --temp 0 2>/dev/null)
[ -n "$expected" ] || fail "no local generation"

# 1. Three workers, each fetching its own layers.
start_server plain
plain_port=$port
serve first "http://127.0.0.1:$plain_port/m.gguf" "$tmp/cache"
[ "$(generate_remote)" = "$expected" ] || fail "greedy output over a URL differs from the local file"
stats "$plain_port" >"$tmp/stats1.json"
"$bin/shardlm-inspect" --json "$model" >"$tmp/inspect.json"
python3 - "$tmp/inspect.json" "$tmp/stats1.json" "$tmp/first.err" <<'PY'
import json, re, sys
info = json.load(open(sys.argv[1])); served = json.load(open(sys.argv[2]))
n_layer = 1 + max(int(t["name"].split(".")[1]) for t in info["tensors"] if t["name"].startswith("blk."))
names = {t["name"] for t in info["tensors"]}
tied = "output.weight" not in names
ranges = re.findall(r"worker \d+ \(layers (\d+):(\d+)", open(sys.argv[3]).read())
assert len(ranges) == 3, ranges
for first, last in ((int(a), int(b)) for a, b in ranges):
    def mine(name):
        if name.startswith("blk."):
            return first <= int(name.split(".")[1]) < last
        if name == "token_embd.weight":
            return first == 0 or (last == n_layer and tied)
        if name in ("output_norm.weight", "output.weight"):
            return last == n_layer
        return True
    own = sum(t["bytes"] for t in info["tensors"] if mine(t["name"]))
    bound = (own + info["data_offset"]) * 1.05
    got = served.get("shardlm (shardlm-worker layers %d:%d)" % (first, last))
    assert got is not None, ("no bytes counted for layers %d:%d" % (first, last), served)
    print("layers %d:%d: downloaded %d bytes; own tensors %d + header %d (file %d)"
          % (first, last, got, own, info["data_offset"], info["file_size"]))
    assert got < bound, "layers %d:%d downloaded %d >= %d" % (first, last, got, bound)
PY
stop_serve

# 2. A restart finds everything in the cache: a probe byte per process.
serve restart "http://127.0.0.1:$plain_port/m.gguf" "$tmp/cache"
[ "$(generate_remote)" = "$expected" ] || fail "greedy output after a restart differs"
stats "$plain_port" >"$tmp/stats2.json"
python3 - "$tmp/stats1.json" "$tmp/stats2.json" <<'PY'
import json, sys
a = json.load(open(sys.argv[1])); b = json.load(open(sys.argv[2]))
for ua, n in b.items():
    assert n - a.get(ua, 0) <= 1, "%s downloaded %d bytes again" % (ua, n - a.get(ua, 0))
print("restart: %d bytes in total (probes only)" % (sum(b.values()) - sum(a.values())))
PY
stop_serve

# 3. Every connection dropped after 1 MiB: the ranges resume.
start_server drop --drop-after 1048576
serve drop "http://127.0.0.1:$port/m.gguf" "$tmp/cache-drop"
[ "$(generate_remote)" = "$expected" ] || fail "greedy output after dropped connections differs"
stop_serve
echo "drops: correct load"

# 4. /metrics: the fetch's figures, on a fresh cache.
"$bin/shardlm-worker" --model "http://127.0.0.1:$plain_port/m.gguf" --layers 1:3 --insecure \
  --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --threads 1 --model-cache-dir "$tmp/cache-m" \
  >"$tmp/metrics.out" 2>"$tmp/metrics.err" &
worker_pid=$!
pids+=($worker_pid)
for _ in $(seq 1 600); do grep -q '^READY' "$tmp/metrics.out" && break; sleep 0.1; done
grep -q '^READY' "$tmp/metrics.out" || { cat "$tmp/metrics.err" >&2; fail "metrics worker not ready"; }
metrics=$(sed -n 's/^METRICS //p' "$tmp/metrics.out")
page=$(python3 -c "import urllib.request; print(urllib.request.urlopen('http://$metrics/metrics').read().decode())")
echo "$page" | grep -q '^shardlm_model_fetch_done 1' || fail "no shardlm_model_fetch_done 1 in /metrics"
fetched=$(echo "$page" | sed -n 's/^shardlm_model_fetch_bytes_total //p')
python3 -c "import sys; sys.exit(0 if float('$fetched') > 1e5 else 1)" || fail "fetch bytes $fetched"
kill -TERM $worker_pid; wait $worker_pid 2>/dev/null || true
echo "metrics: shardlm_model_fetch_bytes_total $fetched"

# 5. Bad servers: a clear error, exit code 1, no crash.
# worker_error NAME EXPECTED_TEXT URL [FLAGS]
worker_error() {
  local name=$1 text=$2 url=$3; shift 3
  set +e
  timeout 60 "$bin/shardlm-worker" --model "$url" --layers 0:2 --listen 127.0.0.1:0 --insecure \
    --model-cache-dir "$tmp/cache-$name" "$@" >/dev/null 2>"$tmp/$name.err"
  local code=$?
  set -e
  [ $code -eq 1 ] || { cat "$tmp/$name.err" >&2; fail "$name: exit code $code, expected 1"; }
  grep -q -- "$text" "$tmp/$name.err" || { cat "$tmp/$name.err" >&2; fail "$name: no '$text'"; }
  echo "$name: $(grep -m1 'cannot serve' "$tmp/$name.err" | sed 's/.*cannot serve //')"
}
worker_error not_found "404 Not Found" "http://127.0.0.1:$plain_port/missing.gguf"
start_server norange --ignore-range
worker_error no_range "--model-allow-full-download" "http://127.0.0.1:$port/m.gguf"
start_server lie --lie-content-length
worker_error lying "Content-Length" "http://127.0.0.1:$port/m.gguf"
start_server token --token s3cret
worker_error unauthorized "--model-token-file" "http://127.0.0.1:$port/m.gguf"
echo "PASS"
