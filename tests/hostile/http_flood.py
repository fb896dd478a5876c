#!/usr/bin/env python3
"""A flood on the API (issue 21, item 4): 400 connections that send nothing,
plus 48 streaming completions whose clients never read a byte, must not
starve /health or /metrics (each < 2 s: the 48 streams hold the engine's
slots, so a completion waits for the engine, not for HTTP), nor grow the
coordinator's memory by more than 64 MB; once those clients close, their
generations are cancelled and a completion answers in < 2 s again.
Bounded: ~15 s, 450 sockets."""
import json
import socket
import time

from http_common import (API_KEY, MIB, MEM_SCALE, Serve, check, check_normal_requests, request)

IDLE = 400
NON_READING = 48


def main():
    serve = Serve(["--http-max-connections", "1024"])
    socks = []
    try:
        check_normal_requests(serve, 2.0, "before")
        rss0 = serve.rss()
        for _ in range(IDLE):
            socks.append(socket.create_connection(serve.http, timeout=5))
        body = json.dumps({"prompt": "Once upon a time", "max_tokens": 2000, "stream": True,
                           "ignore_eos": True}).encode()
        for _ in range(NON_READING):
            s = socket.create_connection(serve.http, timeout=5)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                      b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                      % (API_KEY.encode(), len(body)) + body)
            socks.append(s)  # never read
        t_end = time.time() + 6
        while time.time() < t_end:
            what = "with %d idle and %d non-reading connections" % (IDLE, NON_READING)
            st, _, dt = request(serve.http, "GET", "/health", key=None, timeout=7)
            check(st == 200 and dt < 2.0, "%s: /health %d in %.2f s (< 2 s)" % (what, st, dt))
            st, data, dt = request(serve.metrics, "GET", "/metrics", key=None, timeout=7)
            check(st == 200 and dt < 2.0, "%s: /metrics %d in %.2f s (< 2 s)" % (what, st, dt))
            time.sleep(0.5)
        grown = serve.hwm() - rss0
        check(grown < 64 * MIB * MEM_SCALE,
              "coordinator memory grew %.1f MB (< %d MB)" % (grown / MIB, 64 * MEM_SCALE))
        for s in socks:
            s.close()
        socks = []
        # The closed streams are noticed at their next write and cancelled.
        deadline = time.time() + 10
        while time.time() < deadline:
            st, data, _ = request(serve.http, "GET", "/health", key=None)
            if json.loads(data)["engine"]["active"] == 0:
                break
            time.sleep(0.2)
        check(json.loads(data)["engine"]["active"] == 0,
              "the non-reading streams were cancelled once their clients closed")
        check_normal_requests(serve, 2.0, "after the flood")
    finally:
        for s in socks:
            s.close()
        serve.stop()


if __name__ == "__main__":
    main()
