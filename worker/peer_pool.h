// The client side of worker-to-worker hops (--topology chain): one pooled
// gRPC channel per next-stage address a coordinator named in a chained
// request. A worker opens connections on request only, so the pool guards
// what a peer can make it do: addresses must be plain "host:port" (no
// "unix:" or other resolver schemes, no paths), at most `max_peers`
// channels are kept (the least recently used goes first) and channels
// unused for `idle_timeout` are closed. Calls in flight keep their channel
// alive after it leaves the pool, but the pool still drops the last
// reference itself, on a thread calling Get (or in its destructor): gRPC
// 1.51 runs callbacks on the threads of a completion queue shared by every
// channel and server, and releasing the last channel on one of them makes
// that thread join itself and free the queue it still polls
// (grpc/grpc#32584) -- so a hop's completion callback must never be the one.
#ifndef SHARDLM_WORKER_PEER_POOL_H_
#define SHARDLM_WORKER_PEER_POOL_H_

#include <grpcpp/grpcpp.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/rpc/grpc_settings.h"
#include "shardlm/v1/stage.grpc.pb.h"

namespace shardlm {

struct PeerPoolOptions {
  // Credentials of the hop's client side (null: plaintext, --insecure).
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  // Name the next worker's certificate must carry instead of the host of
  // its address (empty: the host).
  std::string tls_server_name;
  int max_peers = 16;
  absl::Duration idle_timeout = absl::Minutes(5);
  int max_message_bytes = kMaxMessageBytes;
};

// OK for "host:port" with a DNS name, an IPv4 address or a bracketed IPv6
// address and a port in 1..65535; INVALID_ARGUMENT saying what is wrong.
absl::Status CheckPeerAddress(absl::string_view address);

class PeerPool {
 public:
  explicit PeerPool(PeerPoolOptions options) : options_(std::move(options)) {}

  // The stub of `address` (checked with CheckPeerAddress), from the pool or
  // newly connected.
  absl::StatusOr<std::shared_ptr<v1::Stage::Stub>> Get(const std::string& address);
  int size() const;

 private:
  struct Peer {
    std::shared_ptr<v1::Stage::Stub> stub;
    absl::Time last_used;
  };
  // Moves `it`'s stub to retired_ if a call still holds it; erases it.
  std::map<std::string, Peer>::iterator Evict(std::map<std::string, Peer>::iterator it);

  const PeerPoolOptions options_;
  mutable std::mutex mu_;  // guards peers_ and retired_
  std::map<std::string, Peer> peers_;
  // Out of the pool but held by calls in flight: kept until only this holds
  // them, then dropped by Get.
  std::vector<std::shared_ptr<v1::Stage::Stub>> retired_;
};

}  // namespace shardlm

#endif  // SHARDLM_WORKER_PEER_POOL_H_
