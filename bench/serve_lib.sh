# Sourced by bench scripts: one `shardlm serve` on 127.0.0.1 at a time.
#
#   serve_start BIN_DIR SERVE_FLAGS...   starts it and waits until it prints
#       SERVING: sets ADDR, SERVE_PID; exits with its log if it dies or is
#       not up within 60 s
#   serve_stop                           TERM, wait, remove the logs
# shellcheck shell=bash

serve_start() {
  local bin=$1
  shift
  SERVE_LOG=$(mktemp)
  : >"$SERVE_LOG.out"
  "$bin/shardlm" serve --listen 127.0.0.1:0 "$@" >"$SERVE_LOG.out" 2>"$SERVE_LOG" &
  SERVE_PID=$!
  ADDR=""
  for _ in $(seq 1 600); do
    ADDR=$(sed -n 's/^SERVING //p' "$SERVE_LOG.out")
    [ -n "$ADDR" ] && return 0
    kill -0 "$SERVE_PID" 2>/dev/null || { cat "$SERVE_LOG" >&2; exit 1; }
    sleep 0.1
  done
  echo "serve did not come up" >&2
  kill -TERM "$SERVE_PID"
  exit 1
}

serve_stop() {
  kill -TERM "$SERVE_PID" 2>/dev/null || true
  wait "$SERVE_PID" 2>/dev/null || true
  rm -f "$SERVE_LOG" "$SERVE_LOG.out"
}
