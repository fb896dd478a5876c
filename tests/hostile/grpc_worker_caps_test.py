"""Worker caps: started without --kv-budget a worker reports a non-zero KV
budget (derived from its memory); a last stage refuses a Forward whose
logits (rows x vocab x 4 bytes) exceed its message limit before computing
them (RESOURCE_EXHAUSTED, quickly). Bounded: one worker, < 15 s."""
import time

import grpc

import grpc_hostile as h


def main():
    _, stage = h.protos()
    worker = h.start_worker(extra=["--max-message-size", "1M"])
    try:
        channel = grpc.insecure_channel(worker.lines["LISTENING"])
        info = h.unary(channel, "/shardlm.v1.Stage/GetShardInfo", stage.GetShardInfoRequest(),
                       stage.ShardInfo)
        print("KV budget without --kv-budget: %.1f MiB (vocab %d, context %d)" %
              (info.kv.bytes_budget / 1048576.0, info.n_vocab, info.n_ctx), flush=True)
        if info.kv.bytes_budget <= 0:
            h.fail("a worker started without --kv-budget reports no budget (unlimited)")

        # Two sequences of 300 tokens, logits wanted for every token: 600 rows
        # x vocab 512 x 4 bytes = 1.2 MB > the 1 MiB message limit.
        per_seq = min(300, info.n_ctx)
        rows = 2 * per_seq
        if rows * info.n_vocab * 4 <= (1 << 20):
            h.fail("test model too small for this check (vocab %d)" % info.n_vocab)
        req = stage.ForwardRequest(protocol_version=1, model_fingerprint=info.model_fingerprint)
        for seq in (1, 2):
            for pos in range(per_seq):
                req.seq_ids.append(seq)
                req.positions.append(pos)
                req.tokens.append(1 + pos % 100)
                req.want_logits.append(True)
        start = time.time()
        try:
            h.unary(channel, "/shardlm.v1.Stage/Forward", req, stage.ForwardResponse, timeout=10)
            h.fail("a Forward whose logits exceed the message limit was computed")
        except grpc.RpcError as e:
            seconds = time.time() - start
            print("Forward with %d logits rows: %s in %.3f s (%s)" %
                  (rows, e.code(), seconds, e.details()), flush=True)
            if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED or "logits" not in e.details():
                h.fail("expected RESOURCE_EXHAUSTED naming the logits, got %s" % e.code())
        after = h.unary(channel, "/shardlm.v1.Stage/GetShardInfo", stage.GetShardInfoRequest(),
                        stage.ShardInfo)
        if after.kv.sequences != 0:
            h.fail("the refused Forward left %d sequences in the KV cache" % after.kv.sequences)
    finally:
        worker.stop()
    print("PASS")


if __name__ == "__main__":
    main()
