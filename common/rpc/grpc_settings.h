// The gRPC settings every shardlm server and channel share: one message-size
// limit, keepalive, the protocol version of the stage API, and the single
// place where absl::Status and grpc::Status are converted into each other
// (at the edge, codes preserved). Kept out of shardlm_common so that library
// code without RPCs never links gRPC.
#ifndef SHARDLM_COMMON_RPC_GRPC_SETTINGS_H_
#define SHARDLM_COMMON_RPC_GRPC_SETTINGS_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace shardlm {

// Version of the internal stage protocol (shardlm.v1.Stage). Bump it when a
// field changes meaning; peers with another version fail fast with
// FAILED_PRECONDITION instead of computing garbage.
inline constexpr uint32_t kProtocolVersion = 1;

// Largest message any shardlm server or channel sends or receives. gRPC's
// default receive limit (4 MiB) is already hit by a 512-token f32 prefill of
// a 2048-wide model; 64 MiB covers 4096 tokens x 2048 x f32 (32 MiB) with
// room, and longer batches are chunked by the sender (RemoteStage).
inline constexpr int kMaxMessageBytes = 64 << 20;

// Protocol limits both sides know: tokens per Forward call (4096 x 2048 x
// f32 = 32 MiB of hidden states, half the message limit) and sequence ids
// per Release call. A worker may be configured lower; senders chunk.
inline constexpr int kMaxForwardTokens = 4096;
inline constexpr int kMaxReleaseIds = 1 << 16;

// Client keepalive: ping every 10 s even without calls, declare the peer dead
// after 5 s without an answer, so a worker that vanished (node lost, no FIN)
// is noticed within ~15 s instead of the TCP timeout of minutes.
inline constexpr int kKeepaliveTimeMs = 10'000;
inline constexpr int kKeepaliveTimeoutMs = 5'000;

// What one gRPC server grants its clients, so that no unauthenticated peer
// can exhaust memory or threads (gRPC 1.51 as shipped by Debian predates the
// core fixes for 2023's HTTP/2 DoS advisories; these settings are the
// defence). Defaults suit every shardlm port; mains expose the ones a user
// may need to change as flags (docs/DEPLOY.md, "Limits").
struct GrpcServerLimits {
  // HTTP/2 streams one connection may have open at once. Without it one
  // connection opening 30 000 half-open streams costs ~360 MB. gRPC 1.51
  // enforces it once the client has acknowledged our SETTINGS (a client
  // exceeding it gets the connection closed); max_open_streams bounds a
  // client that never acknowledges.
  int max_concurrent_streams = 64;
  // Open streams past which a connection is closed by the stream-flood
  // guard (common/rpc/stream_flood_guard.h): the bound for a client that
  // never acknowledges SETTINGS, which gRPC 1.51 does not hold to
  // max_concurrent_streams. 0: 4 x max_concurrent_streams. Process-wide:
  // the largest value among the process's servers applies to all.
  int max_open_streams = 0;
  // Memory gRPC may use for all connections of this server (its resource
  // quota: under pressure gRPC shrinks flow-control windows and read
  // buffers; 1.51 does not refuse streams for it, the stream limit does).
  int64_t memory_bytes = int64_t{256} << 20;
  // Threads the quota allows gRPC's sync machinery (callback servers such
  // as ours use few; this caps what a flood can make it spawn).
  int max_threads = 64;
  // A connection without any call for this long is closed (GOAWAY; a
  // client reconnects transparently). Idle time only counts while no call
  // is open, so it never cuts real work.
  absl::Duration max_connection_idle = absl::Minutes(10);
  // A connection older than this is asked to go away (GOAWAY); its running
  // calls get max_connection_age_grace to finish, then it is closed.
  // InfiniteDuration: no age limit. Worker Stage ports must not age out:
  // the coordinator's Forward streams live as long as the coordinator, and
  // cutting one triggers a failover and a KV replay. The public port ages
  // with a grace of at least the longest Generate stream
  // (--max-stream-lifetime), so a real stream is never cut by it.
  absl::Duration max_connection_age = absl::InfiniteDuration();
  absl::Duration max_connection_age_grace = absl::Minutes(10);
};

// The help of --grpc-max-open-streams (max_open_streams), the same on the
// coordinator and the worker.
inline constexpr char kGrpcMaxOpenStreamsFlagHelp[] =
    "open HTTP/2 streams past which a gRPC connection is closed (a client that never "
    "acknowledges SETTINGS is not held to --grpc-max-streams); 0: 4 x --grpc-max-streams";

// The limits of a plaintext grpc.health.v1-only port: probes are short unary
// calls, so it needs few streams, little memory and may age out quickly.
GrpcServerLimits HealthPortLimits();

// Server side: message limits, `limits`, and keepalive: accept the client
// pings above (by default a server answers pings more often than every
// 5 min without data with GOAWAY "too_many_pings") but send GOAWAY to a
// client pinging much faster (a ping flood costs the server a write each).
void ApplyServerSettings(grpc::ServerBuilder& builder, int max_message_bytes = kMaxMessageBytes,
                         const GrpcServerLimits& limits = GrpcServerLimits());

// Checks `limits` for values gRPC cannot honour; INVALID_ARGUMENT naming the
// flag (`flag_prefix` + "max-concurrent-streams", ...).
absl::Status ValidateGrpcServerLimits(const GrpcServerLimits& limits,
                                      const std::string& flag_prefix = "--grpc-");

// Channel arguments for every client channel: message limits, keepalive.
grpc::ChannelArguments ClientChannelArguments(int max_message_bytes = kMaxMessageBytes);

// An insecure channel to `address` ("host:port") with ClientChannelArguments.
std::shared_ptr<grpc::Channel> CreateClientChannel(const std::string& address,
                                                   int max_message_bytes = kMaxMessageBytes);
// The same over `credentials` (null: insecure). `tls_server_name`, when not
// empty, is the name the server's certificate must carry instead of the
// host of `address` (e.g. one certificate for every worker pod).
std::shared_ptr<grpc::Channel> CreateClientChannel(
    const std::string& address, std::shared_ptr<grpc::ChannelCredentials> credentials,
    const std::string& tls_server_name, int max_message_bytes = kMaxMessageBytes);

// absl -> gRPC, code and message unchanged (the codes are the same enum).
grpc::Status ToGrpcStatus(const absl::Status& status);

// gRPC -> absl, code preserved, message "<context>: <CODE>: <message>" so a
// log line says which peer failed and how (e.g. "worker 10.0.0.5:5001
// (layers 0:11): UNAVAILABLE: failed to connect"). Empty context: no prefix.
absl::Status FromGrpcStatus(const grpc::Status& status, const std::string& context);

// Deadline `timeout` from now, as gRPC wants it.
std::chrono::system_clock::time_point DeadlineIn(absl::Duration timeout);

// grpc.health.v1.Health/Check on `channel` for `service` ("" = the whole
// server), through a generic call: Debian ships no generated health stubs.
// Returns true for SERVING, false for NOT_SERVING / UNKNOWN / SERVICE_UNKNOWN,
// an error when the call fails (NOT_FOUND: no such service registered).
absl::StatusOr<bool> CheckHealth(grpc::Channel* channel, const std::string& service,
                                 absl::Duration timeout);

}  // namespace shardlm

#endif  // SHARDLM_COMMON_RPC_GRPC_SETTINGS_H_
