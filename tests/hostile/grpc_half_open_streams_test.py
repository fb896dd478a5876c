"""20 000 half-open HTTP/2 streams (HEADERS only, no message) on one
connection to the coordinator's public port (plaintext and TLS), a worker's
Stage port and a plaintext health port, twice each: from a client that
acknowledges the server's SETTINGS (gRPC enforces --grpc-max-streams) and
from one that never does (gRPC 1.51 enforces nothing then; the stream-flood
guard, common/rpc/stream_flood_guard.h, must cut the connection). Each time
the RSS peak grows < 100 MB, the server refused (RST/GOAWAY/close) and a
normal call still answers in < 2 s; /metrics counts one guard cut per
never-acking attack. Bounded: 3 servers, 8 connections, ~30 s."""
import shutil
import tempfile
import time
import urllib.request

import grpc

import grpc_hostile as h

STREAMS = 20000
MAX_GROWTH = 100e6 * h.MEMORY_SCALE


def health_ok(address):
    # grpc.health.v1.HealthCheckRequest{} is empty; SERVING is field 1 = 1.
    channel = grpc.insecure_channel(address)
    call = channel.unary_unary("/grpc.health.v1.Health/Check",
                               request_serializer=lambda b: b, response_deserializer=lambda b: b)
    reply, seconds = h.timed(lambda: call(b"", timeout=5))
    channel.close()
    if reply != b"\x08\x01":
        h.fail("health answered %r, not SERVING" % reply)
    return seconds


def timed_tokenize(pb, channel):
    """A normal call on `channel`: Tokenize, checked, returning its seconds."""
    def tokenize():
        reply, seconds = h.timed(lambda: h.unary(
            channel, "/shardlm.v1.ShardLM/Tokenize", pb.TokenizeRequest(text="Once upon"),
            pb.TokenizeResponse, timeout=5))
        if not reply.token_ids:
            h.fail("Tokenize returned no ids")
        return seconds
    return tokenize


def attack(name, server, address, path, normal_call, tls=None):
    attack_once(name + " (SETTINGS acked)", server, address, path, normal_call, True, tls)
    attack_once(name + " (SETTINGS never acked)", server, address, path, normal_call, False, tls)


def attack_once(name, server, address, path, normal_call, ack_settings, tls):
    time.sleep(0.3)
    before = h.rss_bytes(server.pid)
    peak = h.RssPeak(server.pid)
    reader = h.half_open_streams(address, STREAMS, path, ack_settings=ack_settings, tls=tls)
    time.sleep(0.5)
    reader.pump_for(0.2)
    growth = h.rss_bytes(server.pid) - before
    peak_growth = peak.stop() - before
    seconds = normal_call()
    cut = "%.2f s" % (reader.closed_at - reader.started_at) if reader.closed_at else "-"
    print("%s: %d streams sent, RST %d, GOAWAY %s, closed after %s, RSS peak +%.1f MB, "
          "after +%.1f MB, normal call %.3f s"
          % (name, reader.opened, reader.rst, reader.goaway, cut, peak_growth / 1e6,
             growth / 1e6, seconds), flush=True)
    reader.socket.close()
    if max(growth, peak_growth) >= MAX_GROWTH:
        h.fail("%s: RSS grew by %.1f MB, peak %.1f MB (bound %.0f MB)" %
               (name, growth / 1e6, peak_growth / 1e6, MAX_GROWTH / 1e6))
    if seconds >= 2.0:
        h.fail("%s: a normal call took %.2f s during the attack" % (name, seconds))
    # The limit is what held, not luck: the server refused streams beyond it.
    if not (reader.closed or reader.rst > 0 or reader.goaway):
        h.fail("%s: %d half-open streams accepted without RST_STREAM or GOAWAY" %
               (name, reader.opened))


def flood_cuts(metrics_address):
    """shardlm_grpc_stream_flood_cuts_total on a /metrics page."""
    text = urllib.request.urlopen("http://%s/metrics" % metrics_address, timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith("shardlm_grpc_stream_flood_cuts_total "):
            return float(line.split()[1])
    h.fail("no shardlm_grpc_stream_flood_cuts_total on /metrics")


def expect_cuts(name, server, wanted):
    cuts = flood_cuts(server.lines["METRICS"])
    print("%s: /metrics counts %d stream-flood cuts" % (name, cuts), flush=True)
    if cuts != wanted:
        h.fail("%s: %d stream-flood cuts counted, expected %d (one per never-acking attack)"
               % (name, cuts, wanted))


def main():
    pb, stage = h.protos()
    serve = h.start_serve(extra=["--metrics-listen", "127.0.0.1:0"])
    try:
        tokenize = timed_tokenize(pb, grpc.insecure_channel(serve.lines["SERVING"]))
        tokenize()  # connect before measuring
        attack("coordinator", serve, serve.lines["SERVING"], "/shardlm.v1.ShardLM/Tokenize",
               tokenize)
        attack("coordinator health port", serve, serve.lines["HEALTH"],
               "/grpc.health.v1.Health/Check", lambda: health_ok(serve.lines["HEALTH"]))
        expect_cuts("coordinator", serve, 2)
    finally:
        serve.stop()

    # The public port over TLS: the attacker completes the handshake (no
    # client certificate is required there) and floods inside it.
    folder = tempfile.mkdtemp(prefix="shardlm_tls_")
    cert, key = h.self_signed_certificate(folder)
    serve = h.start_serve(extra=["--metrics-listen", "127.0.0.1:0", "--tls-cert", cert,
                                 "--tls-key", key])
    try:
        with open(cert, "rb") as f:
            channel = grpc.secure_channel(serve.lines["SERVING"],
                                          grpc.ssl_channel_credentials(root_certificates=f.read()))
        tokenize_tls = timed_tokenize(pb, channel)
        tokenize_tls()
        attack("coordinator over TLS", serve, serve.lines["SERVING"],
               "/shardlm.v1.ShardLM/Tokenize", tokenize_tls, tls=h.tls_client_context(cert))
        expect_cuts("coordinator over TLS", serve, 1)
    finally:
        serve.stop()
        shutil.rmtree(folder, ignore_errors=True)

    worker = h.start_worker(extra=["--metrics-listen", "127.0.0.1:0"])
    try:
        channel = grpc.insecure_channel(worker.lines["LISTENING"])

        def shard_info():
            reply, seconds = h.timed(lambda: h.unary(
                channel, "/shardlm.v1.Stage/GetShardInfo", stage.GetShardInfoRequest(),
                stage.ShardInfo, timeout=5))
            if not reply.ready:
                h.fail("worker not ready")
            return seconds

        shard_info()
        attack("worker", worker, worker.lines["LISTENING"], "/shardlm.v1.Stage/GetShardInfo",
               shard_info)
        expect_cuts("worker", worker, 1)
    finally:
        worker.stop()
    print("PASS")


if __name__ == "__main__":
    main()
