#!/bin/sh
# Starts shardlm-worker for this pod: the StatefulSet ordinal is the suffix of
# $HOSTNAME (shardlm-worker-3 -> 3) and its layer range is the line
# "ORDINAL FIRST:LAST" of the layout file ($SHARDLM_LAYOUT). The other
# settings come from the environment the StatefulSet sets; SHARDLM_THREADS is
# the container's CPU limit (downward API), because oneTBB does not see it.
set -eu
layout=${SHARDLM_LAYOUT:-/etc/shardlm/layout/layout}
ordinal=${HOSTNAME##*-}
case $ordinal in
  '' | *[!0-9]*)
    echo "worker-entrypoint: no StatefulSet ordinal in HOSTNAME='${HOSTNAME}'" >&2
    exit 2 ;;
esac
layers=""
while read -r ord range _; do
  case $ord in '' | '#'*) continue ;; esac
  if [ "$ord" = "$ordinal" ]; then
    layers=$range
    break
  fi
done <"$layout"
if [ -z "$layers" ]; then
  echo "worker-entrypoint: $layout has no line for ordinal $ordinal" >&2
  exit 2
fi
echo "worker-entrypoint: ${HOSTNAME} serves layers ${layers} of ${SHARDLM_MODEL}" >&2
# Mutual TLS with the certificates of the shardlm-worker-tls Secret, mounted
# at $SHARDLM_TLS_DIR (tls.crt, tls.key, and ca.crt, which must have signed
# the coordinator's client certificate); the probes use the plaintext
# health-only port. With the coordinator's --topology chain a worker also
# calls the next worker with the same certificate (it needs clientAuth as
# well as serverAuth) and checks the next one's against the name
# shardlm-worker, like the coordinator does.
tls=${SHARDLM_TLS_DIR:-/etc/shardlm/tls}
# SHARDLM_MODEL as a URL: where the fetched ranges are kept, and a token file
# for a private repository (overlays/tinyllama-url-4-workers).
if [ -n "${SHARDLM_MODEL_TOKEN_FILE:-}" ]; then
  set -- --model-token-file "$SHARDLM_MODEL_TOKEN_FILE" "$@"
fi
if [ -n "${SHARDLM_MODEL_CACHE_DIR:-}" ]; then
  set -- --model-cache-dir "$SHARDLM_MODEL_CACHE_DIR" "$@"
fi
exec "${SHARDLM_WORKER_BIN:-/usr/local/bin/shardlm-worker}" \
  --model "$SHARDLM_MODEL" \
  --layers "$layers" \
  --listen "0.0.0.0:${SHARDLM_PORT:-7001}" \
  --threads "$SHARDLM_THREADS" \
  --kv-budget "${SHARDLM_KV_BUDGET:-auto}" \
  --kv-type "${SHARDLM_KV_TYPE:-f16}" \
  --tls-cert "$tls/tls.crt" --tls-key "$tls/tls.key" --tls-ca "$tls/ca.crt" \
  --peer-tls-server-name "${SHARDLM_PEER_TLS_SERVER_NAME:-shardlm-worker}" \
  --health-listen "0.0.0.0:${SHARDLM_HEALTH_PORT:-7002}" \
  "$@"
