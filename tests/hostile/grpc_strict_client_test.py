"""Every reply a strict client (Python grpcio from Debian, which validates
UTF-8 in proto3 strings) reads: the issue's repro — mini-shape-q4_0, greedy
"Hello world", 8 tokens, top_logprobs 20, whose alternatives include
byte-fallback pieces — plus Tokenize, Detokenize and GetModelInfo. Also the
caps: Detokenize of 2 M ids is refused quickly (RESOURCE_EXHAUSTED) without
growing the server by more than 64 MB. Bounded: one server, < 20 s."""
import time

import grpc

import grpc_hostile as h


def main():
    pb, _ = h.protos()
    serve = h.start_serve("mini-shape-q4_0.gguf")
    try:
        channel = grpc.insecure_channel(serve.lines["SERVING"],
                                        options=[("grpc.max_receive_message_length", 64 << 20)])
        req = pb.GenerateRequest(prompt="Hello world")
        req.sampling.temperature = 0
        req.sampling.max_tokens = 8
        req.sampling.top_logprobs = 20
        replies, replaced, summary = 0, 0, None
        for reply in h.server_stream(channel, "/shardlm.v1.ShardLM/Generate", req,
                                     pb.GenerateResponse):
            replies += 1
            if reply.HasField("summary"):
                summary = reply.summary
            for alt in reply.chunk.top_logprobs:
                # text is the raw piece decoded the way the server sanitizes.
                if alt.text != alt.raw.decode("utf-8", errors="replace"):
                    h.fail("token %d: text %r does not match raw %r" %
                           (alt.token_id, alt.text, alt.raw))
                if "\ufffd" in alt.text:
                    replaced += 1
        print("Generate: %d replies read, %d alternatives with invalid bytes replaced" %
              (replies, replaced), flush=True)
        if summary is None or summary.generated_tokens != 8:
            h.fail("no summary with 8 generated tokens")
        if replaced == 0:
            h.fail("the repro no longer yields a byte-fallback alternative: the test lost "
                   "its teeth (pick another prompt)")

        tok = h.unary(channel, "/shardlm.v1.ShardLM/Tokenize",
                      pb.TokenizeRequest(text="Hello world \u00e9\u4e16"), pb.TokenizeResponse)
        every_id = pb.DetokenizeRequest(token_ids=list(range(0, 256)))
        detok = h.unary(channel, "/shardlm.v1.ShardLM/Detokenize", every_id,
                        pb.DetokenizeResponse)
        info = h.unary(channel, "/shardlm.v1.ShardLM/GetModelInfo", pb.GetModelInfoRequest(),
                       pb.ModelInfo)
        print("Tokenize %d pieces, Detokenize %d chars, model %r" %
              (len(tok.pieces), len(detok.text), info.model_name), flush=True)

        before = h.rss_bytes(serve.pid)
        huge = pb.DetokenizeRequest(token_ids=[i % 200 for i in range(2_000_000)])
        start = time.time()
        try:
            h.unary(channel, "/shardlm.v1.ShardLM/Detokenize", huge, pb.DetokenizeResponse,
                    timeout=20)
            h.fail("Detokenize of 2 M ids was not refused")
        except grpc.RpcError as e:
            seconds = time.time() - start
            growth = h.rss_bytes(serve.pid) - before
            print("Detokenize 2 M ids: %s in %.2f s (%s), RSS +%.1f MB" %
                  (e.code(), seconds, e.details(), growth / 1e6), flush=True)
            if e.code() not in (grpc.StatusCode.RESOURCE_EXHAUSTED,
                                grpc.StatusCode.INVALID_ARGUMENT):
                h.fail("Detokenize of 2 M ids: %s, not RESOURCE_EXHAUSTED" % e.code())
            if seconds > 2.0 * h.MEMORY_SCALE:
                h.fail("refusing 2 M ids took %.2f s" % seconds)
            if growth > 64e6 * h.MEMORY_SCALE:
                h.fail("refusing 2 M ids grew RSS by %.1f MB" % (growth / 1e6))
    finally:
        serve.stop()
    print("PASS")


if __name__ == "__main__":
    main()
