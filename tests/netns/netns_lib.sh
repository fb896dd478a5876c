# Helpers for running shardlm across network namespaces as separate "hosts".
# Sourced (bash) by tests/netns/multihost_test.sh and bench/netns_latency.sh.
#
# Everything made here is named with a tag unique to this process
# ("slm<pid>-..."), recorded, and undone by netns_cleanup (call it from an
# EXIT trap): the pids this script started are stopped (TERM, then KILL) and
# the namespaces it created are deleted, which removes their veth links and
# addresses. Addresses come from 10.213.K.0/30, assigned only inside those
# namespaces; nothing is changed in the root namespace.

NETNS_TAG="slm$$"
NETNS_CREATED=()
NETNS_PIDS=()
NETNS_DIR=""

# Succeeds if this process may create namespaces and veth links; otherwise
# sets NETNS_WHY to the reason. (Call it directly, not in $(...): the probe
# namespace must be recorded for netns_cleanup.)
netns_available() {
  NETNS_WHY=""
  if [ "$(id -u)" != 0 ]; then
    NETNS_WHY="not root (network namespaces need CAP_SYS_ADMIN)"
    return 1
  fi
  if ! command -v ip >/dev/null; then
    NETNS_WHY="iproute2 (ip) is not installed"
    return 1
  fi
  local probe="${NETNS_TAG}-probe"
  NETNS_CREATED+=("$probe")
  if ! ip netns add "$probe" 2>/dev/null; then
    NETNS_WHY="'ip netns add' is not permitted here"
    return 1
  fi
  if ! ip link add p0 netns "$probe" type veth peer name p1 netns "$probe" 2>/dev/null; then
    NETNS_WHY="veth links are not available"
    return 1
  fi
  ip netns del "$probe"
  return 0
}

# netns_add NAME: creates namespace "<tag>-NAME" with loopback up and
# records it; sets NETNS_LAST to its name (no subshell, or the record is lost).
netns_add() {
  NETNS_LAST="${NETNS_TAG}-$1"
  NETNS_CREATED+=("$NETNS_LAST")
  ip netns add "$NETNS_LAST"
  ip -n "$NETNS_LAST" link set lo up
}

# netns_link NS_A NS_B K: a veth pair "l<K>" between two namespaces;
# NS_A gets 10.213.K.1/30, NS_B 10.213.K.2/30.
netns_link() {
  local a="$1" b="$2" k="$3"
  ip link add "l$k" netns "$a" type veth peer name "l$k" netns "$b"
  ip -n "$a" addr add "10.213.$k.1/30" dev "l$k"
  ip -n "$b" addr add "10.213.$k.2/30" dev "l$k"
  ip -n "$a" link set "l$k" up
  ip -n "$b" link set "l$k" up
}

# netns_spawn NS LOG CMD...: runs CMD inside NS in the background, stdout to
# LOG.out and stderr to LOG.err; records the pid (ip netns exec execs CMD, so
# it is CMD's pid) in NETNS_PIDS and in NETNS_LAST_PID.
netns_spawn() {
  local ns="$1" log="$2"
  shift 2
  ip netns exec "$ns" "$@" >"$log.out" 2>"$log.err" &
  NETNS_LAST_PID=$!
  NETNS_PIDS+=("$NETNS_LAST_PID")
}

# netns_wait_line FILE REGEX PID SECONDS: waits until FILE has a line matching
# REGEX; fails if PID exits first or time runs out.
netns_wait_line() {
  local file="$1" regex="$2" pid="$3" seconds="$4" i
  for ((i = 0; i < seconds * 20; ++i)); do
    grep -Eq "$regex" "$file" 2>/dev/null && return 0
    kill -0 "$pid" 2>/dev/null || { echo "process $pid exited before '$regex' in $file" >&2; return 1; }
    sleep 0.05
  done
  echo "no '$regex' in $file after ${seconds}s" >&2
  return 1
}

# netns_make_hosts N: the hosts of a pipeline. A coordinator namespace
# (NETNS_COORD), a client namespace (NETNS_CLIENT, link 100: coordinator
# 10.213.100.1) and N worker namespaces (NETNS_WORKERS[i], link i+1: the
# coordinator is 10.213.<i+1>.1, the worker 10.213.<i+1>.2). Workers reach
# nothing but the coordinator, as the NetworkPolicy of deploy/k8s intends.
netns_make_hosts() {
  local i
  netns_add c
  NETNS_COORD=$NETNS_LAST
  netns_add cl
  NETNS_CLIENT=$NETNS_LAST
  netns_link "$NETNS_COORD" "$NETNS_CLIENT" 100
  NETNS_WORKERS=()
  for ((i = 0; i < $1; ++i)); do
    netns_add "w$i"
    NETNS_WORKERS+=("$NETNS_LAST")
    netns_link "$NETNS_COORD" "${NETNS_WORKERS[$i]}" $((i + 1))
  done
}

# netns_workers_reach_each_other: a default route in every worker namespace
# via the coordinator's end of its link, for --topology chain, where each
# worker sends hidden states to the next. The addresses a coordinator hands
# out are its own (the relays' listening addresses, 10.213.<k>.1, local to
# its namespace), so no forwarding is needed, and with delaying relays
# every worker-to-worker hop crosses one relay too (the same one-way delay
# as a coordinator link). Direct worker addresses (no relay) stay
# unreachable from other workers: chain rows need a relay (DELAY_MS 0+).
netns_workers_reach_each_other() {
  local i
  for ((i = 0; i < ${#NETNS_WORKERS[@]}; ++i)); do
    ip -n "${NETNS_WORKERS[$i]}" route replace default via "10.213.$((i + 1)).1"
  done
}

# Several pipelines can run side by side on the same hosts (bench/): each
# uses slot NETNS_SLOT (default 0), i.e. worker port 7001+slot, relay port
# 7101+slot, coordinator port 50051+slot, and log files NETNS_DIR/<name> for
# slot 0, NETNS_DIR/s<slot>-<name> otherwise (netns_log NAME gives the path).
netns_log() {
  local slot="${NETNS_SLOT:-0}"
  if [ "$slot" = 0 ]; then echo "$NETNS_DIR/$1"; else echo "$NETNS_DIR/s$slot-$1"; fi
}

# netns_start_worker I BIN_DIR MODEL RANGE THREADS: shardlm-worker for layers
# RANGE in NETNS_WORKERS[I] on 10.213.<I+1>.2:<7001+slot> (logs worker<I>.out
# and .err, appended to); sets NETNS_WORKER_PIDS[I]. Does not wait.
netns_start_worker() {
  local i="$1" bin="$2" model="$3" range="$4" threads="$5" log
  log=$(netns_log "worker$i")
  ip netns exec "${NETNS_WORKERS[$i]}" "$bin/shardlm-worker" --insecure --model "$model" --layers "$range" \
    --listen "10.213.$((i + 1)).2:$((7001 + ${NETNS_SLOT:-0}))" --threads "$threads" \
    >>"$log.out" 2>>"$log.err" &
  NETNS_WORKER_PIDS[$i]=$!
  NETNS_PIDS+=("$!")
}

# netns_wait_worker I: waits (120 s at most) for worker I's next READY line.
netns_wait_worker() {
  local i="$1" log
  log=$(netns_log "worker$i")
  netns_wait_line "$log.out" '^READY$' "${NETNS_WORKER_PIDS[$i]}" 120 || {
    cat "$log.err" >&2
    return 1
  }
}

# netns_restart_worker I BIN_DIR MODEL RANGE THREADS: what a rolling update
# does to one pod: SIGTERM (the worker drains its running calls), then the
# same worker again on the same address, waiting until it is READY.
netns_restart_worker() {
  local i="$1"
  netns_stop "${NETNS_WORKER_PIDS[$i]}"
  : >"$(netns_log "worker$i").out"
  netns_start_worker "$@"
  netns_wait_worker "$i"
}

# netns_start_pipeline BIN_DIR MODEL DELAY_MS THREADS RANGE...: worker i
# (layers RANGE i) in NETNS_WORKERS[i] on 10.213.<i+1>.2:7001, a coordinator
# in NETNS_COORD on 10.213.100.1:50051 (NETNS_SERVER); ports plus NETNS_SLOT.
# Ranges may repeat: the coordinator takes workers of the same layers as
# replicas. DELAY_MS "" connects the coordinator to the workers directly; a
# number puts a delay_relay.py with that one-way delay (0 = relay overhead
# only) on each link, in the coordinator's namespace. NETNS_COORD_FLAGS:
# more coordinator flags (word-split), e.g. "--topology chain".
netns_start_pipeline() {
  local bin="$1" model="$2" delay="$3" threads="$4" i k workers="" address log
  local slot="${NETNS_SLOT:-0}"
  shift 4
  local relay ranges=("$@")
  relay="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/delay_relay.py"
  NETNS_WORKER_PIDS=()
  for ((i = 0; i < ${#ranges[@]}; ++i)); do
    k=$((i + 1))
    log=$(netns_log "worker$i")
    : >"$log.out"
    : >"$log.err"
    netns_start_worker "$i" "$bin" "$model" "${ranges[$i]}" "$threads"
    address="10.213.$k.2:$((7001 + slot))"
    if [ -n "$delay" ]; then
      log=$(netns_log "relay$i")
      netns_spawn "$NETNS_COORD" "$log" python3 "$relay" --listen "10.213.$k.1:$((7101 + slot))" \
        --target "$address" --delay-ms "$delay"
      netns_wait_line "$log.out" '^RELAYING ' "$NETNS_LAST_PID" 20 || return 1
      address="10.213.$k.1:$((7101 + slot))"
    fi
    workers="${workers:+$workers,}$address"
  done
  for ((i = 0; i < ${#ranges[@]}; ++i)); do
    netns_wait_worker "$i" || return 1
  done
  log=$(netns_log coordinator)
  # shellcheck disable=SC2086 # NETNS_COORD_FLAGS is a list of words
  netns_spawn "$NETNS_COORD" "$log" "$bin/shardlm-coordinator" --insecure --model "$model" \
    --workers "$workers" --listen "10.213.100.1:$((50051 + slot))" --worker-wait 60 \
    ${NETNS_COORD_FLAGS:-}
  netns_wait_line "$log.out" '^LISTENING ' "$NETNS_LAST_PID" 90 || {
    cat "$log.err" >&2
    return 1
  }
  NETNS_SERVER="10.213.100.1:$((50051 + slot))"
}

# netns_stop PID...: SIGTERM, up to 5 s to exit, then SIGKILL; the pids are
# reaped and dropped from NETNS_PIDS (so a reused pid is never signalled).
# Only pids this script started are ever passed here.
netns_stop() {
  local pid i keep=()
  for pid in "$@"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "$@"; do
    for ((i = 0; i < 50; ++i)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  for pid in "${NETNS_PIDS[@]}"; do
    [[ " $* " == *" $pid "* ]] || keep+=("$pid")
  done
  NETNS_PIDS=("${keep[@]}")
}

# netns_stop_all: stops every process started so far (between scenarios).
netns_stop_all() {
  [ "${#NETNS_PIDS[@]}" -gt 0 ] && netns_stop "${NETNS_PIDS[@]}"
  NETNS_PIDS=()
  return 0
}

# netns_cleanup: the EXIT trap. Stops our processes, deletes our namespaces
# and the scratch folder.
netns_cleanup() {
  local ns
  netns_stop_all
  for ns in "${NETNS_CREATED[@]}"; do
    [ -n "$ns" ] && ip netns del "$ns" 2>/dev/null || true
  done
  NETNS_CREATED=()
  [ -n "$NETNS_DIR" ] && rm -rf "$NETNS_DIR"
  return 0
}
