"""gRPC clients that never read: Generate streams whose HTTP/2 flow-control
window is 100 bytes (a message or two) and never grows (the client never
sends WINDOW_UPDATE). (With a window of 0 gRPC 1.51 does not even start the
call, so that client costs nothing but its stream.)

1. 64 such streams for 20 s: the coordinator's RSS grows < 64 MB and a
   normal call answers in < 2 s.
2. With --max-unread-chunks 8 a stream past the bound (plus the 64 KiB
   gRPC's transport buffers per stream) ends with
   RESOURCE_EXHAUSTED (read once the window opens), and with
   --max-stream-lifetime 3 a stream stuck in flow control is reset by the
   server (RST_STREAM) instead of living forever.
Bounded: 64 + 2 streams, < 45 s; loopback; only our own processes."""
import struct
import time

import grpc
import hpack

import grpc_hostile as h

MAX_GROWTH = 64e6 * h.MEMORY_SCALE
ATTACK_SECONDS = 20


def generate_bytes(pb, max_tokens, top_logprobs=20):
    req = pb.GenerateRequest(prompt="Once upon a time")
    req.sampling.temperature = 0.8
    req.sampling.seed = 1
    req.sampling.max_tokens = max_tokens
    req.sampling.ignore_eos = True
    req.sampling.top_logprobs = top_logprobs
    return req.SerializeToString()


def non_readers(pb):
    serve = h.start_serve()
    try:
        address = serve.lines["SERVING"]
        channel = grpc.insecure_channel(address)
        tokenize = lambda: h.unary(channel, "/shardlm.v1.ShardLM/Tokenize",
                                   pb.TokenizeRequest(text="Once"), pb.TokenizeResponse, timeout=5)
        tokenize()
        time.sleep(0.3)
        before = h.rss_bytes(serve.pid)
        message = generate_bytes(pb, 400)
        readers = []
        for conn in range(2):  # 2 x 32 streams (the per-connection limit is 64)
            sock, reader = h.open_reader(address, initial_window=100)
            encoder = hpack.Encoder()
            for i in range(32):
                h.start_grpc_call(sock, encoder, address, 1 + 2 * i,
                                  "/shardlm.v1.ShardLM/Generate", message)
            readers.append(reader)
        peak = 0
        slowest = 0.0
        end = time.time() + ATTACK_SECONDS
        while time.time() < end:
            for r in readers:
                r.pump(0.0)
            peak = max(peak, h.rss_bytes(serve.pid) - before)
            _, seconds = h.timed(tokenize)
            slowest = max(slowest, seconds)
            time.sleep(0.5)
        print("64 non-reading streams for %d s: RSS peak +%.1f MB, slowest Tokenize %.3f s, "
              "DATA bytes received %d" % (ATTACK_SECONDS, peak / 1e6, slowest,
                                          sum(r.data_bytes for r in readers)), flush=True)
        for r in readers:
            r.sock.close()
        if peak >= MAX_GROWTH:
            h.fail("RSS grew by %.1f MB (bound %.0f MB)" % (peak / 1e6, MAX_GROWTH / 1e6))
        if slowest >= 2.0:
            h.fail("Tokenize took %.2f s during the attack" % slowest)
    finally:
        serve.stop()


def bounds(pb):
    serve = h.start_serve(extra=["--max-unread-chunks", "8", "--max-stream-lifetime", "3"])
    try:
        address = serve.lines["SERVING"]
        sock, reader = h.open_reader(address, initial_window=100)
        encoder = hpack.Encoder()
        # Stream 1 overflows: gRPC's transport takes up to 64 KiB of a
        # stream's messages before its writes block (~200 chunks with 20
        # alternatives each), then 8 more may wait; 400 tokens exceed both.
        # Stream 3 fits (4 tokens + summary) but its writes stay stuck
        # until its lifetime is over.
        h.start_grpc_call(sock, encoder, address, 1, "/shardlm.v1.ShardLM/Generate",
                          generate_bytes(pb, 400, top_logprobs=20))
        h.start_grpc_call(sock, encoder, address, 3, "/shardlm.v1.ShardLM/Generate",
                          generate_bytes(pb, 4, top_logprobs=0))
        reader.pump_for(2.5)
        # Open stream 1 (and the connection) only: its trailers must say why.
        big = struct.pack(">I", 1 << 30)
        sock.sendall(h.frame(h.WINDOW_UPDATE, 0, 1, big) + h.frame(h.WINDOW_UPDATE, 0, 0, big))
        deadline = time.time() + 5
        while "grpc-status" not in reader.headers.get(1, {}) and time.time() < deadline:
            reader.pump(0.1)
        status = reader.headers.get(1, {}).get("grpc-status")
        message = reader.headers.get(1, {}).get("grpc-message", "")
        print("overflowing stream: grpc-status %s (%s)" % (status, message), flush=True)
        if status != "8":
            h.fail("a stream past --max-unread-chunks ended with grpc-status %s, not 8 "
                   "(RESOURCE_EXHAUSTED)" % status)
        start = time.time()
        deadline = start + 15
        while 3 not in reader.reset_streams and time.time() < deadline and not reader.closed:
            reader.pump(0.2)
        print("stuck stream: reset %s after %.1f s more" % (3 in reader.reset_streams,
                                                          time.time() - start), flush=True)
        if 3 not in reader.reset_streams:
            h.fail("a stream stuck past --max-stream-lifetime was not reset by the server")
        sock.close()
    finally:
        serve.stop()


def main():
    pb, _ = h.protos()
    bounds(pb)
    non_readers(pb)
    print("PASS")


if __name__ == "__main__":
    main()
