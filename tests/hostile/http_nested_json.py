#!/usr/bin/env python3
"""Deeply nested JSON (issue 21, item 5): 8 bodies of ~8 MB of nested arrays
and objects, sent in parallel, are refused with a 400 that says why, and the
coordinator's peak memory grows < 64 MB (it was ~250 MB per body); normal
requests answer in < 2 s meanwhile. Bounded: ~10 s."""
import json
import threading

from http_common import (MIB, MEM_SCALE, Serve, check, check_normal_requests, request)

PARALLEL = 8


def main():
    serve = Serve()
    try:
        check_normal_requests(serve, 2.0, "before")
        hwm0 = serve.hwm()
        depth = 4 * MIB - 64
        bodies = [
            b'{"prompt": "x", "a": ' + b"[" * depth + b"]" * depth + b"}",
            b'{"prompt": "x", "a": ' + b'{"a":' * (depth // 5) + b"1" + b"}" * (depth // 5) + b"}",
        ]
        results = [None] * PARALLEL

        def send(i):
            try:
                results[i] = request(serve.http, "POST", "/v1/completions",
                                     bodies[i % 2], timeout=30)
            except OSError as e:
                results[i] = (None, repr(e).encode(), 0)

        threads = [threading.Thread(target=send, args=(i,)) for i in range(PARALLEL)]
        for t in threads:
            t.start()
        check_normal_requests(serve, 2.0, "while %d nested bodies are sent" % PARALLEL)
        for t in threads:
            t.join(timeout=40)
        for st, data, dt in results:
            check(st == 400 and b"nests deeper" in data,
                  "nested body: %s in %.2f s: %s" % (st, dt, data[:120]))
        # A body nested within the cap still parses (and is refused only for
        # what it says: an unknown field is ignored, the prompt runs).
        ok_body = json.dumps({"prompt": "Once", "max_tokens": 2, "user": "u",
                              "metadata": {"a": [[[[1]]]]}})
        st, data, _ = request(serve.http, "POST", "/v1/completions", ok_body)
        check(st in (200, 400) and b"nests deeper" not in data,
              "a shallow body is not refused for depth (%d)" % st)
        grown = serve.hwm() - hwm0
        check(grown < 64 * MIB * MEM_SCALE,
              "coordinator peak memory grew %.1f MB (< %d MB)" % (grown / MIB, 64 * MEM_SCALE))
        check_normal_requests(serve, 2.0, "after")
    finally:
        serve.stop()


if __name__ == "__main__":
    main()
