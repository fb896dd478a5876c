#!/usr/bin/env python3
"""A loopback HTTP file server with Range support and fault modes, for the
--model URL tests (python3 stdlib only).

Serves FILE at /NAME (NAME = --name, default the file's basename) on
127.0.0.1 (port 0 = any free one; prints "PORT <n>" once listening). Every
response carries an ETag. Fault modes:
  --drop-after N        close each connection after N body bytes
  --ignore-range        answer Range requests with 200 and the whole file
  --lie-content-length  Content-Length 100 bytes more than the body sent
  --status CODE         answer every request with CODE (e.g. 404)
  --token T             401 unless "Authorization: Bearer T"
GET /_stats returns JSON {user_agent: body bytes served}: the tests count
what each worker downloaded. Stops on SIGTERM / SIGINT, or after
--max-seconds (default 600) so a forgotten server never lingers.
"""
import argparse
import json
import mmap
import os
import re
import signal
import sys
import threading
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

STATS = {}
STATS_LOCK = threading.Lock()


def make_handler(args, data):
    size = len(data)
    etag = '"%x-%08x"' % (size, zlib.crc32(data))  # the same across restarts
    name = "/" + args.name

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, fmt, *a):  # quiet: tests read stderr
            pass

        def _count(self, n):
            ua = self.headers.get("User-Agent", "")
            with STATS_LOCK:
                STATS[ua] = STATS.get(ua, 0) + n

        def _plain(self, code, text):
            body = text.encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path == "/_stats":
                with STATS_LOCK:
                    body = json.dumps(STATS)
                return self._plain(200, body)
            if args.status:
                return self._plain(args.status, "status %d by request\n" % args.status)
            if args.token and self.headers.get("Authorization") != "Bearer " + args.token:
                return self._plain(401, "unauthorized\n")
            if self.path != name:
                return self._plain(404, "no such file\n")
            first, last = 0, size - 1
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
            partial = m is not None and not args.ignore_range
            if partial:
                first = int(m.group(1))
                last = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
                if first >= size or last < first:
                    self.send_response(416)
                    self.send_header("Content-Range", "bytes */%d" % size)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            body = data[first:last + 1]  # a view, not a copy
            self.send_response(206 if partial else 200)
            self.send_header("ETag", etag)
            self.send_header("Accept-Ranges", "none" if args.ignore_range else "bytes")
            if partial:
                self.send_header("Content-Range", "bytes %d-%d/%d" % (first, last, size))
            length = len(body) + (100 if args.lie_content_length else 0)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            drop = args.drop_after > 0 and len(body) > args.drop_after
            if drop:
                body = body[:args.drop_after]
            # In pieces, counting each one sent: a client that hangs up after
            # the headers (a probe of a server ignoring Range) is not
            # counted for the whole file.
            try:
                for at in range(0, len(body), 1 << 20):
                    piece = body[at:at + (1 << 20)]
                    self.wfile.write(piece)
                    self._count(len(piece))
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True
                return
            if drop or args.lie_content_length:
                self.close_connection = True

    return Handler


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("file")
    p.add_argument("--name", default=None)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--drop-after", type=int, default=0)
    p.add_argument("--ignore-range", action="store_true")
    p.add_argument("--lie-content-length", action="store_true")
    p.add_argument("--status", type=int, default=0)
    p.add_argument("--token", default="")
    p.add_argument("--max-seconds", type=float, default=600)
    args = p.parse_args()
    args.name = args.name or os.path.basename(args.file)
    # Mapped, and sliced without copies: benchmarks serve models of GBs.
    with open(args.file, "rb") as f:
        data = memoryview(mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ))
    class Server(ThreadingHTTPServer):
        def handle_error(self, request, client_address):
            pass  # a client that hangs up (the fault modes provoke it) is no news

    server = Server(("127.0.0.1", args.port), make_handler(args, data))
    server.daemon_threads = True

    def stop(*_):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    threading.Timer(args.max_seconds, stop).start()
    print("PORT %d" % server.server_address[1], flush=True)
    server.serve_forever()
    os._exit(0)  # the timer thread may still be waiting


if __name__ == "__main__":
    sys.exit(main())
