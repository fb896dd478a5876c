"""Shared helpers of the gRPC hostile-traffic tests (tests/hostile/grpc_*).

Each test starts its own `shardlm serve` / `shardlm-worker` from the build on
loopback, attacks it with raw HTTP/2 (hand-written frames, HPACK from
python3-h2's hpack) or Python grpcio, measures the server's RSS from
/proc/PID/status and ends only the processes it started (by pid).
"""
import os
import select
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import hpack

SANITIZED = os.environ.get("SHARDLM_SANITIZED") == "1"
# Under ASan every allocation carries redzones and quarantine: memory
# bounds are scaled, but still asserted.
MEMORY_SCALE = 4 if SANITIZED else 1


def fail(message):
    print("FAIL: " + message, flush=True)
    sys.exit(1)


def test_data():
    data = os.environ.get("SHARDLM_TEST_DATA")
    if not data:
        here = os.path.dirname(os.path.abspath(__file__))
        data = os.path.join(here, "..", "..", "..", "shared")
    return data


def model(name):
    path = os.path.join(test_data(), "models", name)
    if not os.path.exists(path):
        fail("test model missing: " + path + " (set SHARDLM_TEST_DATA)")
    return path


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class RssPeak:
    """Samples a process's RSS every `interval` s on a thread of its own until
    stop(): the peak of an attack, not only what is left after it."""

    def __init__(self, pid, interval=0.005):
        self.pid = pid
        self.peak = rss_bytes(pid)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(interval,), daemon=True)
        self._thread.start()

    def _run(self, interval):
        while not self._stop.wait(interval):
            try:
                self.peak = max(self.peak, rss_bytes(self.pid))
            except OSError:
                return

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self.peak


class Server:
    """A process we started, with the protocol lines it printed on stdout."""

    def __init__(self, argv, wanted, timeout=60):
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=None if os.environ.get("H21DBG") else subprocess.DEVNULL,
                                     start_new_session=True)
        self.lines = {}
        deadline = time.time() + timeout
        buf = b""
        while not all(w in self.lines for w in wanted):
            left = deadline - time.time()
            if left <= 0 or self.proc.poll() is not None:
                self.stop()
                fail("%s did not print %s in time (got %s)" % (argv[0], wanted, self.lines))
            r, _, _ = select.select([self.proc.stdout], [], [], left)
            if not r:
                continue
            chunk = os.read(self.proc.stdout.fileno(), 4096)
            if not chunk:
                continue
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                parts = line.decode().split(" ", 1)
                self.lines[parts[0]] = parts[1] if len(parts) > 1 else ""

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: it and its workers
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def bin_dir():
    d = os.environ.get("SHARDLM_BIN_DIR")
    if not d:
        fail("SHARDLM_BIN_DIR is not set (the build's bin/)")
    return d


def start_serve(model_name="stories260K.gguf", extra=()):
    """`shardlm serve` with one worker, gRPC and health on loopback."""
    argv = [os.path.join(bin_dir(), "shardlm"), "serve", "--model", model(model_name),
            "--workers", "1", "--threads", "1", "--listen", "127.0.0.1:0",
            "--health-listen", "127.0.0.1:0"] + list(extra)
    return Server(argv, ["SERVING", "HEALTH"])


def start_worker(model_name="stories260K.gguf", extra=()):
    argv = [os.path.join(bin_dir(), "shardlm-worker"), "--model", model(model_name),
            "--insecure", "--threads", "1", "--listen", "127.0.0.1:0",
            "--health-listen", "127.0.0.1:0"] + list(extra)
    return Server(argv, ["LISTENING", "HEALTH", "READY"])


def split_address(address):
    host, port = address.rsplit(":", 1)
    return host.strip("[]"), int(port)


# --- raw HTTP/2 -------------------------------------------------------------

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, END_HEADERS, ACK = 0x1, 0x4, 0x1


def frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + \
        struct.pack(">I", stream) + payload


def settings(pairs):
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v) for k, v in pairs))


def grpc_headers(encoder, address, path):
    return encoder.encode([
        (":method", "POST"), (":scheme", "http"), (":path", path), (":authority", address),
        ("content-type", "application/grpc"), ("te", "trailers")])


def grpc_message(payload):
    return b"\x00" + struct.pack(">I", len(payload)) + payload


class FrameReader:
    """Reads whatever the server sends, counting RST_STREAM and GOAWAY frames."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.rst = 0
        self.goaway = False
        self.closed = False
        self.settings_frames = 0
        self.data_bytes = 0
        self.closed_at = None  # time.time() when the server closed the connection

    def pump_for(self, seconds):
        """Reads for `seconds` (pump returns after the first burst)."""
        end = time.time() + seconds
        while time.time() < end and not self.closed:
            self.pump(min(0.1, max(0.0, end - time.time())))

    def pump(self, timeout=0.0):
        """Reads what has arrived (waiting up to `timeout` for the first
        bytes) and hands every complete frame to handle()."""
        while True:
            # A TLS socket may hold decrypted bytes select() cannot see.
            pending = getattr(self.sock, "pending", None)
            if not (pending and pending() > 0):
                r, _, _ = select.select([self.sock], [], [], timeout)
                if not r:
                    return
            try:
                chunk = self.sock.recv(1 << 20)
            except (ConnectionResetError, OSError):
                chunk = b""
            if not chunk:
                self.mark_closed()
                return
            self.buf += chunk
            while len(self.buf) >= 9:
                length = struct.unpack(">I", b"\x00" + self.buf[:3])[0]
                if len(self.buf) < 9 + length:
                    break
                kind, flags = self.buf[3], self.buf[4]
                stream = struct.unpack(">I", self.buf[5:9])[0] & 0x7FFFFFFF
                payload = self.buf[9:9 + length]
                self.buf = self.buf[9 + length:]
                self.handle(kind, flags, stream, payload)
            timeout = 0.0

    def mark_closed(self):
        if not self.closed:
            self.closed = True
            self.closed_at = time.time()

    def handle(self, kind, flags, stream, payload):
        if kind == RST_STREAM:
            self.rst += 1
        elif kind == GOAWAY:
            self.goaway = True
        elif kind == SETTINGS and not flags & ACK:
            self.settings_frames += 1
        elif kind == DATA:
            self.data_bytes += len(payload)


def open_h2(address, initial_window=65535, ack_settings=True, reader_class=None, tls=None):
    """An HTTP/2 connection (plaintext, or TLS with ALPN h2 when `tls` is an
    ssl.SSLContext): preface and our SETTINGS sent; the server's SETTINGS
    read and, when `ack_settings`, acknowledged."""
    host, port = split_address(address)
    sock = socket.create_connection((host, port), timeout=10)
    sock.setblocking(True)
    if tls is not None:
        sock = tls.wrap_socket(sock, server_hostname=host)
    sock.sendall(PREFACE + settings([(0x4, initial_window), (0x2, 0)]))
    reader = (reader_class or FrameReader)(sock)
    deadline = time.time() + 5
    while reader.settings_frames == 0 and time.time() < deadline and not reader.closed:
        reader.pump(0.1)
    if ack_settings:
        sock.sendall(frame(SETTINGS, ACK, 0))
    return sock, reader


def half_open_streams(address, count, path, ack_settings=True, seconds=20.0, tls=None):
    """Opens `count` streams with HEADERS only (no message, no END_STREAM) on
    one connection. Returns the FrameReader (RST/GOAWAY/closed seen) with
    `opened` (streams sent), `started_at` (time of the first HEADERS) and
    `socket`. Without `ack_settings` the server's SETTINGS are never
    acknowledged, so its stream limit is not in force (gRPC 1.51)."""
    sock, reader = open_h2(address, ack_settings=ack_settings, tls=tls)
    reader.started_at = time.time()
    encoder = hpack.Encoder()
    deadline = time.time() + seconds
    stream = 1
    batch = []
    for i in range(count):
        batch.append(frame(HEADERS, END_HEADERS, stream, grpc_headers(encoder, address, path)))
        stream += 2
        if len(batch) == 500:
            try:
                sock.sendall(b"".join(batch))
            except OSError:
                reader.mark_closed()
                break
            batch = []
            reader.pump(0.0)
            if reader.closed or time.time() > deadline:
                break
    if batch and not reader.closed:
        try:
            sock.sendall(b"".join(batch))
        except OSError:
            reader.mark_closed()
    reader.pump_for(0.5)
    reader.opened = (stream - 1) // 2
    reader.socket = sock
    return reader


def tls_client_context(ca_file):
    """A client context trusting `ca_file`, offering only h2 (as gRPC wants)."""
    import ssl
    context = ssl.create_default_context(cafile=ca_file)
    context.set_alpn_protocols(["h2"])
    return context


def self_signed_certificate(folder):
    """A certificate for 127.0.0.1 and its key (openssl), in `folder`."""
    cert, key = os.path.join(folder, "server.crt"), os.path.join(folder, "server.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


# --- generated messages and a strict client ----------------------------------

def protos():
    """The shardlm.v1 messages, generated by protoc --python_out into a
    temporary folder (python3-protobuf; no grpc plugin needed: calls go
    through grpcio's generic unary/stream API with these serializers)."""
    import importlib
    import tempfile
    here = os.path.dirname(os.path.abspath(__file__))
    proto_root = os.path.join(here, "..", "..", "protos")
    out = tempfile.mkdtemp(prefix="shardlm_pb_")
    files = ["shardlm/v1/tensor.proto", "shardlm/v1/shardlm.proto", "shardlm/v1/stage.proto"]
    subprocess.run(["protoc", "-I", proto_root, "--python_out", out] + files, check=True)
    sys.path.insert(0, out)
    pb = importlib.import_module("shardlm.v1.shardlm_pb2")
    stage = importlib.import_module("shardlm.v1.stage_pb2")
    return pb, stage


def unary(channel, method, request, response_class, timeout=10, metadata=None):
    call = channel.unary_unary(method, request_serializer=lambda m: m.SerializeToString(),
                               response_deserializer=response_class.FromString)
    return call(request, timeout=timeout, metadata=metadata)


def server_stream(channel, method, request, response_class, timeout=30):
    call = channel.unary_stream(method, request_serializer=lambda m: m.SerializeToString(),
                                response_deserializer=response_class.FromString)
    return call(request, timeout=timeout)


def timed(fn):
    start = time.time()
    result = fn()
    return result, time.time() - start


# --- reading responses on a raw connection ------------------------------------

class StreamHeaders(FrameReader):
    """A FrameReader that also decodes every header block (HPACK state is
    per connection, so every block must be decoded in order) and keeps the
    headers/trailers per stream, e.g. to read grpc-status."""

    def __init__(self, sock):
        super().__init__(sock)
        self.decoder = hpack.Decoder()
        self.decoder.max_allowed_table_size = 1 << 16
        self.headers = {}
        self.reset_streams = set()

    def handle(self, kind, flags, stream, payload):
        super().handle(kind, flags, stream, payload)
        if kind == HEADERS:
            if flags & 0x8:  # PADDED
                pad = payload[0]
                payload = payload[1:len(payload) - pad]
            if flags & 0x20:  # PRIORITY
                payload = payload[5:]
            for name, value in self.decoder.decode(payload):
                self.headers.setdefault(stream, {})[name] = value
        elif kind == RST_STREAM:
            self.reset_streams.add(stream)
        elif kind == SETTINGS and not flags & ACK:
            self.sock.sendall(frame(SETTINGS, ACK, 0))
        elif kind == PING and not flags & ACK:
            self.sock.sendall(frame(PING, ACK, 0, payload))


def open_reader(address, initial_window):
    """open_h2 with a StreamHeaders reader (it acknowledges SETTINGS and PING
    itself as they come)."""
    return open_h2(address, initial_window=initial_window, ack_settings=False,
                   reader_class=StreamHeaders)


def start_grpc_call(sock, encoder, address, stream, path, message_bytes):
    sock.sendall(frame(HEADERS, END_HEADERS, stream, grpc_headers(encoder, address, path)) +
                 frame(DATA, END_STREAM, stream, grpc_message(message_bytes)))
