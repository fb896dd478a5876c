// Reading gRPC's channelz JSON (grpc_channelz_get_servers / _server_sockets
// / _socket in grpc/grpc.h) for what the stream-flood guard needs: the
// server-side connections of this process, how many HTTP/2 streams each has
// open, and its TCP addresses. Pure parsing, no gRPC calls, so it is unit
// tested on JSON gRPC 1.51 produced.
#ifndef SHARDLM_COMMON_RPC_CHANNELZ_SOCKETS_H_
#define SHARDLM_COMMON_RPC_CHANNELZ_SOCKETS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace shardlm {

// One page of ids (servers or sockets) and whether it was the last page.
struct ChannelzPage {
  std::vector<int64_t> ids;
  bool end = true;
};

// grpc_channelz_get_servers: {"server":[{"ref":{"serverId":"1"},...}],"end":true}.
absl::StatusOr<ChannelzPage> ParseChannelzServers(std::string_view json);
// grpc_channelz_get_server_sockets: {"socketRef":[{"socketId":"3",...}],"end":true}.
absl::StatusOr<ChannelzPage> ParseChannelzSocketRefs(std::string_view json);

// An IP endpoint as channelz writes it: the address bytes (4 for IPv4, 16
// for IPv6; an IPv4-mapped IPv6 address is stored as its 4 IPv4 bytes, as
// gRPC names such peers "ipv4:...") and the port. Empty ip: not TCP/IP.
struct IpEndpoint {
  std::string ip;
  int port = 0;
  bool operator==(const IpEndpoint& o) const { return ip == o.ip && port == o.port; }
  std::string ToString() const;  // "127.0.0.1:5555", "[::1]:5555"
};

// One connection from grpc_channelz_get_socket.
struct ChannelzSocket {
  int64_t id = 0;
  // Streams the peer started that have not ended (started - succeeded -
  // failed). A stream counts from its HEADERS frame: a half-open stream that
  // never sends a message counts too.
  int64_t open_streams = 0;
  IpEndpoint local;
  IpEndpoint remote;
};

// grpc_channelz_get_socket: {"socket":{"ref":{"socketId":"3"},"data":{
// "streamsStarted":"20","streamsFailed":"2",...},"local":{"tcpip_address":
// {"ip_address":"fwAAAQ==","port":37283}},"remote":{...}}}. Counters gRPC
// leaves out are zero.
absl::StatusOr<ChannelzSocket> ParseChannelzSocket(std::string_view json);

// The guard's decision: whether `socket` holds more open streams than
// `max_open_streams` allows (<= 0: no limit).
bool ExceedsStreamLimit(const ChannelzSocket& socket, int64_t max_open_streams);

// The endpoint of a socket address (sockaddr_in / sockaddr_in6, IPv4-mapped
// IPv6 folded to IPv4). Empty ip for other families.
IpEndpoint EndpointOf(const void* sockaddr, unsigned length);

}  // namespace shardlm

#endif  // SHARDLM_COMMON_RPC_CHANNELZ_SOCKETS_H_
