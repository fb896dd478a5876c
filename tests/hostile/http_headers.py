#!/usr/bin/env python3
"""Header abuse (issue 21, items 3 and 6): `Authorization: Bearer KEY\\0junk`
is refused; more header lines than --http-max-headers get 431; 100 000
header lines or a 1 MiB header line are refused (431 or closed) at once,
without memory growth (< 64 MB); normal requests answer in < 2 s meanwhile.
Bounded: ~10 s."""
import socket
import time

from http_common import (read_until_closed, API_KEY, MIB, MEM_SCALE, Serve, check, check_normal_requests,
                         raw_exchange, status_of)


def models_with(extra_headers):
    return b"GET /v1/models HTTP/1.1\r\nHost: x\r\n" + extra_headers + b"Connection: close\r\n\r\n"


def flood(addr, payload, timeout=5):
    """Sends `payload` as fast as the server takes it; returns (status, s)."""
    t0 = time.time()
    s = socket.create_connection(addr, timeout=timeout)
    try:
        s.sendall(payload)
    except OSError:
        pass  # the server closed on us mid-way: that is a refusal too
    reply = read_until_closed(s)
    s.close()
    return status_of(reply), time.time() - t0


def main():
    serve = Serve(["--http-max-headers", "32"])
    try:
        check_normal_requests(serve, 2.0, "before")
        rss0 = serve.rss()
        key = API_KEY.encode()
        st = status_of(raw_exchange(serve.http, models_with(b"Authorization: Bearer " + key + b"\r\n")))
        check(st == 200, "the right key: %s" % st)
        st = status_of(raw_exchange(serve.http, models_with(b"Authorization: Bearer " + key + b"  \t \r\nX-A: 1\r\n")))
        check(st == 200, "the right key with trailing blanks: %s" % st)
        st = status_of(raw_exchange(serve.http, b"GET /v1/models HTTP/1.1\nHost: x\nAuthorization: Bearer " + key + b"\nConnection: close\n\n"))
        check(st == 200, "bare LF line ends: %s" % st)
        for bad in (key + b"\x00junk", key + b"\x00", key + b"\x01", key + b"\x7f"):
            st = status_of(raw_exchange(serve.http, models_with(b"Authorization: Bearer " + bad + b"\r\n")))
            check(st in (400, 401), "Authorization 'Bearer %r' refused: %s" % (bad[-5:], st))
        many = b"".join(b"X-H%d: 1\r\n" % i for i in range(33))
        st = status_of(raw_exchange(serve.http, models_with(many)))
        check(st == 431, "33 header lines with --http-max-headers 32: %s" % st)
        st, dt = flood(serve.http, models_with(b"".join(b"X-H%d: 1\r\n" % i for i in range(100000))))
        check(st in (431, 413, 400, None) and dt < 5,
              "100 000 header lines: %s in %.2f s" % (st, dt))
        st, dt = flood(serve.http, models_with(b"X-Big: " + b"a" * MIB + b"\r\n"))
        check(st in (431, 413, 400, None) and dt < 5, "a 1 MiB header line: %s in %.2f s" % (st, dt))
        check_normal_requests(serve, 2.0, "after the header floods")
        grown = serve.hwm() - rss0
        check(grown < 64 * MIB * MEM_SCALE,
              "coordinator memory grew %.1f MB (< %d MB)" % (grown / MIB, 64 * MEM_SCALE))
    finally:
        serve.stop()


if __name__ == "__main__":
    main()
