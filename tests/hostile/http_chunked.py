#!/usr/bin/env python3
"""Chunked bodies (issue 21, item 2): a 128 MiB chunked POST without a key
is refused (401) without being read, and RSS grows < 64 MB; with a key, a
chunked body over --http-max-body-bytes is cut like a sized one (413 or the
connection closed past twice the cap) long before it is all sent; one that
ends within twice the cap gets 413; a small chunked body still
works; a sized body over the cap gets 413 at once. Bounded: ~10 s."""
import json
import socket
import time

from http_common import (read_until_closed, API_KEY, MIB, MEM_SCALE, Serve, check, check_normal_requests,
                         status_of)

TOTAL = 128 * MIB
CHUNK = 64 * 1024


def chunked_post(addr, key, total, timeout=10, finish=False):
    """Streams `total` bytes of chunks (then the last chunk when `finish`);
    returns (status or None, bytes sent, seconds, reply)."""
    s = socket.create_connection(addr, timeout=timeout)
    head = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    if key:
        head += "Authorization: Bearer %s\r\n" % key
    head += "Transfer-Encoding: chunked\r\n\r\n"
    t0 = time.time()
    sent = 0
    reply = b""
    s.sendall(head.encode())
    piece = (b"%x\r\n" % CHUNK) + b"[" * CHUNK + b"\r\n"
    s.setblocking(False)
    at = 0
    try:
        while sent < total and time.time() - t0 < timeout:
            try:
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
                break
            except BlockingIOError:
                pass
            try:
                n = s.send(piece[at:])  # may be partial: keep the framing whole
                at += n
                if at == len(piece):
                    at = 0
                    sent += CHUNK
            except BlockingIOError:
                time.sleep(0.005)
        if finish and sent >= total and not reply:
            s.setblocking(True)
            s.sendall(b"0\r\n\r\n")
    except OSError:
        pass
    s.setblocking(True)
    s.settimeout(2)
    reply += read_until_closed(s)
    s.close()
    return status_of(reply), sent, time.time() - t0, reply


def main():
    serve = Serve(["--http-max-body-bytes", str(8 * MIB)])
    try:
        check_normal_requests(serve, 2.0, "before")
        rss0 = serve.rss()
        st, sent, dt, reply = chunked_post(serve.http, None, TOTAL)
        check(st == 401, "128 MiB chunked POST without a key: %s in %.2f s" % (st, dt))
        check(sent < 16 * MIB, "refused after %.1f MiB of the 128 MiB sent" % (sent / MIB))
        st, sent, dt, reply = chunked_post(serve.http, "wrong-" + API_KEY, TOTAL)
        check(st == 401, "128 MiB chunked POST with a wrong key: %s in %.2f s" % (st, dt))
        st, sent, dt, reply = chunked_post(serve.http, API_KEY, TOTAL)
        check(st in (413, None) and sent < 32 * MIB,
              "128 MiB chunked POST with the key: %s after %.1f MiB in %.2f s (cut past 8 MiB)"
              % (st, sent / MIB, dt) + repr(reply[:400]))
        # A chunked body a little over the cap, then its end: read and
        # dropped past the cap, answered 413 (not a closed connection).
        st, sent, dt, reply = chunked_post(serve.http, API_KEY, 12 * MIB, finish=True)
        check(st == 413, "12 MiB chunked POST with the key (cap 8 MiB): %s after %.1f MiB in "
              "%.2f s" % (st, sent / MIB, dt))
        # A sized body over the cap: 413 from the headers alone.
        s = socket.create_connection(serve.http, timeout=5)
        s.sendall(("POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                   "Content-Length: %d\r\n\r\n" % (API_KEY, TOTAL)).encode())
        got = s.recv(4096)
        s.close()
        check(status_of(got) == 413, "sized 128 MiB POST: %s" % status_of(got))
        # A small chunked body is read and answered.
        body = json.dumps({"prompt": "Once upon a time", "max_tokens": 2}).encode()
        s = socket.create_connection(serve.http, timeout=10)
        s.sendall(("POST /v1/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
                   "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" % API_KEY).encode()
                  + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
        got = read_until_closed(s)
        s.close()
        check(status_of(got) == 200 and b'"choices"' in got,
              "a small chunked completion: %s" % status_of(got))
        grown = serve.hwm() - rss0
        check(grown < 64 * MIB * MEM_SCALE,
              "coordinator memory grew %.1f MB (< %d MB)" % (grown / MIB, 64 * MEM_SCALE))
        check_normal_requests(serve, 2.0, "after")
    finally:
        serve.stop()


if __name__ == "__main__":
    main()
