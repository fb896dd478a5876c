"""Shared by the http_*.py hostile-traffic tests (issue 21): starts one
`shardlm serve` on 127.0.0.1 with stories260K, reads its coordinator's memory
from /proc, times a normal request, and stops only the process it started.

Usage of every test: python3 http_X.py BIN_DIR MODEL.gguf (ctest passes
the embedded stories260K from common/model/embedded/, so these run on a bare
clone too). SHARDLM_SANITIZED=1 (the ASan
build) scales memory bounds by MEM_SCALE: instrumented allocations cost more.
"""
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

API_KEY = "sk-hostile-%d" % os.getpid()
SANITIZED = os.environ.get("SHARDLM_SANITIZED") == "1"
MEM_SCALE = 3 if SANITIZED else 1
MIB = 1 << 20


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def check(cond, msg):
    if not cond:
        fail(msg)
    print("ok: " + msg)


def host_port(addr):
    host, port = addr.rsplit(":", 1)
    return host.strip("[]"), int(port)


class Serve:
    """`shardlm serve` with the HTTP API (and /metrics) on loopback."""

    def __init__(self, extra=()):
        bin_dir = sys.argv[1]
        model = sys.argv[2]
        self.tmp = tempfile.TemporaryDirectory()
        self.out = open(os.path.join(self.tmp.name, "out"), "w+")
        self.err = open(os.path.join(self.tmp.name, "err"), "w+")
        cmd = [os.path.join(bin_dir, "shardlm"), "serve", "--model", model, "--workers", "1",
               "--threads", "1", "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0",
               "--metrics-listen", "127.0.0.1:0", "--api-key", API_KEY] + list(extra)
        self.proc = subprocess.Popen(cmd, stdout=self.out, stderr=self.err)
        deadline = time.time() + 60
        self.http = self.metrics = None
        while time.time() < deadline:
            text = open(self.out.name).read()
            if "SERVING " in text and "HTTP " in text and "METRICS " in text:
                for line in text.splitlines():
                    if line.startswith("HTTP "):
                        self.http = host_port(line[5:].strip())
                    if line.startswith("METRICS "):
                        self.metrics = host_port(line[8:].strip())
                break
            if self.proc.poll() is not None:
                fail("shardlm serve exited early:\n" + open(self.err.name).read()[-3000:])
            time.sleep(0.1)
        if self.http is None:
            self.stop()
            fail("shardlm serve did not come up in 60 s")

    def status(self, field):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
        return 0

    def rss(self):
        return self.status("VmRSS")

    def hwm(self):
        return self.status("VmHWM")

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.tmp.cleanup()


def request(addr, method, path, body=None, key=API_KEY, timeout=10):
    """One request on a fresh connection: (status, body bytes, seconds)."""
    t0 = time.time()
    conn = http.client.HTTPConnection(addr[0], addr[1], timeout=timeout)
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = "Bearer " + key
    conn.request(method, path, body=body, headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data, time.time() - t0


def completion(addr, timeout=10):
    body = json.dumps({"model": "stories260K", "prompt": "Once upon a time", "max_tokens": 4,
                       "temperature": 0})
    return request(addr, "POST", "/v1/completions", body, timeout=timeout)


def check_normal_requests(serve, bound_s, what):
    """/health and a completion answer within bound_s (the issue's bound)."""
    st, _, dt = request(serve.http, "GET", "/health", key=None, timeout=bound_s + 5)
    check(st == 200 and dt < bound_s, "%s: /health %d in %.2f s (< %.1f s)" % (what, st, dt, bound_s))
    st, data, dt = completion(serve.http, timeout=bound_s + 5)
    check(st == 200 and dt < bound_s,
          "%s: completion %d in %.2f s (< %.1f s) %s" % (what, st, dt, bound_s, data[:80]))


def raw_exchange(addr, payload, timeout=10):
    """Sends raw bytes, returns what came back until close/timeout."""
    s = socket.create_connection(addr, timeout=timeout)
    try:
        s.sendall(payload)
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out and len(out) > 12:
                # A whole head and a sized body: enough to read the status.
                head, _, rest = out.partition(b"\r\n\r\n")
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        if len(rest) >= int(line.split(b":")[1]):
                            return out
        return out
    finally:
        s.close()


def read_until_closed(s):
    """Everything the server sends until it closes (or the socket's timeout
    or an error ends the read)."""
    reply = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
    except OSError:
        pass
    return reply


def status_of(reply):
    if not reply.startswith(b"HTTP/1."):
        return None
    return int(reply.split(b" ", 2)[1])
