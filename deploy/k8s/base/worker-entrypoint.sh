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
# TLS certificates are mounted at /etc/shardlm/tls (tls.crt, tls.key, ca.crt),
# but shardlm-worker has no TLS flags yet; once it does, add them below:
#   --tls-cert /etc/shardlm/tls/tls.crt --tls-key /etc/shardlm/tls/tls.key \
#   --tls-client-ca /etc/shardlm/tls/ca.crt
exec "${SHARDLM_WORKER_BIN:-/usr/local/bin/shardlm-worker}" \
  --model "$SHARDLM_MODEL" \
  --layers "$layers" \
  --listen "0.0.0.0:${SHARDLM_PORT:-7001}" \
  --threads "$SHARDLM_THREADS" \
  --kv-budget "${SHARDLM_KV_BUDGET:-0}" \
  --kv-type "${SHARDLM_KV_TYPE:-f16}" \
  "$@"
