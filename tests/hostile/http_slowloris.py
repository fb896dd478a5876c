#!/usr/bin/env python3
"""Slowloris on the HTTP API and the metrics port (issue 21, item 1): 40
sockets each trickle one header byte per second. /health, a completion and
/metrics must still answer in < 2 s, the read deadline (--http-read-timeout
4 here) must close the trickling sockets, and the coordinator's memory must
not grow by more than 64 MB. Bounded: ~15 s of attack, 80 sockets."""
import select
import socket
import threading
import time

from http_common import (MIB, MEM_SCALE, Serve, check, check_normal_requests, request)

SOCKETS = 40
READ_TIMEOUT_S = 4
METRICS_READ_TIMEOUT_S = 5  # --metrics-read-timeout (default 10 s): the flag must hold
ATTACK_S = 12


def trickle(addr, results, i, stop):
    try:
        s = socket.create_connection(addr, timeout=5)
    except OSError:
        results[i] = "refused"
        return
    head = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 1000
    sent = 0
    t0 = time.time()
    try:
        while not stop.is_set():
            s.send(head[sent:sent + 1])
            sent += 1
            # A close by the server shows as readable (EOF or a reset).
            if select.select([s], [], [], 1.0)[0] and not s.recv(4096):
                raise ConnectionResetError()
        results[i] = "alive"
    except OSError:
        results[i] = time.time() - t0  # closed by the server after this long
    finally:
        s.close()


def main():
    serve = Serve(["--http-read-timeout", str(READ_TIMEOUT_S),
                   "--metrics-read-timeout", str(METRICS_READ_TIMEOUT_S)])
    try:
        check_normal_requests(serve, 2.0, "before the attack")
        rss0 = serve.rss()
        stop = threading.Event()
        results = {}
        threads = []
        for addr, base in ((serve.http, 0), (serve.metrics, SOCKETS)):
            for i in range(SOCKETS):
                t = threading.Thread(target=trickle, args=(addr, results, base + i, stop))
                t.start()
                threads.append(t)
        time.sleep(1.5)  # every socket is open and trickling
        t_end = time.time() + ATTACK_S
        probes = 0
        while time.time() < t_end:
            check_normal_requests(serve, 2.0, "during a %d-socket slowloris" % SOCKETS)
            st, data, dt = request(serve.metrics, "GET", "/metrics", key=None, timeout=7)
            check(st == 200 and dt < 2.0 and b"shardlm" in data,
                  "during the slowloris: /metrics %d in %.2f s (< 2 s)" % (st, dt))
            probes += 1
            time.sleep(1.0)
        stop.set()
        for t in threads:
            t.join(timeout=10)
        cut = [v for v in results.values() if isinstance(v, float)]
        check(len(cut) == 2 * SOCKETS,
              "the read deadline closed all %d trickling sockets (%d closed, first after %.1f s)"
              % (2 * SOCKETS, len(cut), min(cut) if cut else -1))
        api = [v for k, v in results.items() if k < SOCKETS and isinstance(v, float)]
        check(all(v < READ_TIMEOUT_S + 3 for v in api),
              "API sockets each within --http-read-timeout %d s + 3 s (latest %.1f s)"
              % (READ_TIMEOUT_S, max(api) if api else -1))
        check(all(v < METRICS_READ_TIMEOUT_S + 3 for v in cut),
              "metrics sockets each within %d s + 3 s (latest %.1f s)"
              % (METRICS_READ_TIMEOUT_S, max(cut) if cut else -1))
        grown = serve.hwm() - rss0
        check(grown < 64 * MIB * MEM_SCALE,
              "coordinator memory grew %.1f MB (< %d MB)" % (grown / MIB, 64 * MEM_SCALE))
        check(serve.alive(), "the server is still up after %d probes" % probes)
    finally:
        serve.stop()


if __name__ == "__main__":
    main()
