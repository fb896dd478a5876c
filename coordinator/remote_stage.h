// RemoteStage: the gRPC transport of the Stage interface, a client of one
// shardlm-worker. A Pipeline of RemoteStages computes exactly what the same
// pipeline of in-process LlamaStages computes (bit for bit with f32 hidden
// states on the wire).
//
// Every call has a deadline; gRPC errors keep their code and name the worker
// ("worker 10.0.0.5:5001 (layers 0:11): UNAVAILABLE: ..."). A batch whose
// request or response would exceed the message limit (a long prefill) is
// split into several calls by whole tokens, in order, and the results are
// merged; a sequence may be split mid-run because its positions continue.
// A failure part-way leaves the earlier chunks' KV in place, which is safe:
// replaying the batch rewinds each sequence to its first position.
#ifndef SHARDLM_COORDINATOR_REMOTE_STAGE_H_
#define SHARDLM_COORDINATOR_REMOTE_STAGE_H_

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/rpc/grpc_settings.h"
#include "shardlm/v1/stage.grpc.pb.h"
#include "common/stage/stage.h"

namespace shardlm {

// One unsuccessful attempt of Connect, for progress lines such as
// "waiting for worker 10.0.0.5:5001 (loading) ...".
struct ConnectWait {
  std::string address;
  int attempt = 0;          // 1-based
  absl::Duration waited;    // since Connect started
  bool loading = false;     // the worker answered but is not ready yet
  absl::Status last_error;  // when it did not answer (unreachable ...)
};

struct RemoteStageOptions {
  absl::Duration call_timeout = absl::Seconds(30);  // deadline of each RPC
  absl::Duration ping_timeout = absl::Seconds(2);   // deadline of a health probe
  // How long Connect waits for the worker to be reachable and ready, and
  // how often it asks.
  absl::Duration connect_timeout = absl::Minutes(5);
  absl::Duration retry_interval = absl::Seconds(1);
  // Hidden states on the wire, both directions (logits are always f32).
  // f16 / bf16 halve the bytes per hop at a small precision cost.
  v1::DType hidden_dtype = v1::DTYPE_F32;
  // Must not exceed the worker's limit; requests and responses are chunked
  // to stay below it.
  int max_message_bytes = kMaxMessageBytes;
  int max_tokens_per_call = kMaxForwardTokens;
  // Transport security towards the worker (common/rpc/credentials.h); null:
  // plaintext. `tls_server_name`: the name the worker's certificate must
  // carry when it is not the host of the address.
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  std::string tls_server_name;
  // Called after each unsuccessful Connect attempt; default: a log line.
  std::function<void(const ConnectWait&)> on_wait;
};

class RemoteStage : public Stage {
 public:
  // Connects to the worker at `address` ("host:port") and waits (bounded by
  // options.connect_timeout) until GetShardInfo reports it ready.
  // DEADLINE_EXCEEDED names the worker and why it was not ready;
  // FAILED_PRECONDITION for another protocol version; other non-transient
  // errors (e.g. UNIMPLEMENTED: not a shardlm worker) are returned at once.
  static absl::StatusOr<std::unique_ptr<RemoteStage>> Connect(const std::string& address,
                                                              const RemoteStageOptions& options);

  // Cached from Connect.
  const ShardInfo& info() const override { return info_; }
  // Thread-safe: calls may overlap (each uses its own reused messages).
  absl::Status Forward(const ForwardRequest& request, ForwardResult* result) override;
  absl::Status Release(SeqId seq) override;
  // Frees many sequences in one RPC (kMaxReleaseIds at most per call).
  absl::Status Release(absl::Span<const SeqId> seqs) override;
  absl::Status Fork(SeqId dst, SeqId src, int n, bool cache_entry) override;
  // A fresh GetShardInfo; on error the last known stats.
  KvStats kv_stats() const override;
  // As of the last Forward / Release reply or Ping (each carries the
  // worker's KV use), or kv_stats() call; no call of its own.
  KvStats known_kv_stats() const override;
  // GetShardInfo within options.ping_timeout: ready, same model, same layers.
  absl::Status Ping() override;
  // "worker 127.0.0.1:5001 (layers 0:11)".
  std::string name() const override { return name_; }

  const std::string& address() const { return address_; }
  const RemoteStageOptions& options() const { return options_; }
  // For callers that make their own calls to this worker (the chain
  // topology, coordinator/chain.h).
  v1::Stage::Stub* stub() const { return stub_.get(); }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }
  // Takes note of the worker's KV use from a reply that did not come
  // through this object (a chained step's result); see known_kv_stats.
  void NoteKvStats(const v1::KvCacheStats& kv);
  // The worker's full answer at connect time (model name, weight bytes...).
  const v1::ShardInfo& shard_info() const { return shard_info_; }
  absl::StatusOr<v1::ShardInfo> FetchShardInfo(absl::Duration timeout) const;
  // The worker's computing time of the last Forward call, in ms.
  double last_compute_ms() const;

  ~RemoteStage() override;

 private:
  struct Call;  // reused request/response messages of one in-flight Forward

  RemoteStage(std::string address, RemoteStageOptions options,
              std::shared_ptr<grpc::Channel> channel, v1::ShardInfo shard_info);
  // Sends tokens [begin, end) of `request`; appends to `result`.
  absl::Status ForwardChunk(const ForwardRequest& request, size_t begin, size_t end,
                            bool explicit_logits, Call* call, ForwardResult* result);
  // Greedy split of [0, n) into calls that fit the limits.
  void PlanChunks(const ForwardRequest& request, std::vector<size_t>* ends) const;
  std::unique_ptr<Call> AcquireCall();
  void ReturnCall(std::unique_ptr<Call> call);

  const std::string address_;
  const RemoteStageOptions options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Stage::Stub> stub_;
  const v1::ShardInfo shard_info_;
  ShardInfo info_;
  std::string name_;

  mutable std::mutex mu_;  // guards the fields below
  std::vector<std::unique_ptr<Call>> free_calls_;
  mutable KvStats last_kv_;  // the freshest reply's (see known_kv_stats)
  double last_compute_ms_ = 0;
};

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_REMOTE_STAGE_H_
