// The stream-flood guard: closes any server-side gRPC connection that holds
// more open HTTP/2 streams than a limit.
//
// Why: gRPC 1.51 (Debian 12) enforces MAX_CONCURRENT_STREAMS only once the
// client has acknowledged the server's SETTINGS, and its resource quota does
// not charge streams. A raw client that never sends the ACK can open
// unlimited half-open streams (HEADERS, no message) at ~10 KB each: 20 000
// on one connection cost ~200-250 MB. No 1.51 channel argument refuses them.
//
// How: one background thread per process polls channelz (enabled by
// ApplyServerSettings) every 10-100 ms (below). A connection whose open streams
// (started - succeeded - failed, counted from each HEADERS frame) exceed
// the limit is found among the process's sockets by its addresses and shut
// down (shutdown(2), SHUT_RDWR): gRPC sees the connection end, tears the
// transport down and frees its streams; malloc_trim then returns the memory.
// Each cut is logged once (with the peer) and counted
// (shardlm_grpc_stream_flood_cuts_total on /metrics).
//
// A well-behaved client is never cut: one that acknowledged SETTINGS is
// held to --grpc-max-streams by gRPC itself, and the default limit is 4 x
// that. Normal calls pay nothing beyond channelz's own per-stream counters.
#ifndef SHARDLM_COMMON_RPC_STREAM_FLOOD_GUARD_H_
#define SHARDLM_COMMON_RPC_STREAM_FLOOD_GUARD_H_

#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/base/metrics.h"
#include "common/rpc/channelz_sockets.h"

namespace shardlm {

// How often the guard looks: at every connection every
// kStreamFloodPollInterval (a poll costs ~50 us, plus ~15 us per connection;
// with many connections the polls space out to stay under 2% of a core),
// and at a connection holding more than a quarter of the limit (a flood in
// progress) every kStreamFloodAlertInterval. gRPC 1.51 accepts up to ~100 000
// streams/s from one loopback client: 20 ms of them is ~2 000 streams, ~25 MB.
inline constexpr absl::Duration kStreamFloodPollInterval = absl::Milliseconds(20);
inline constexpr absl::Duration kStreamFloodAlertInterval = absl::Milliseconds(5);

// Starts the guard (once per process) and raises its limit to at least
// `max_open_streams` (<= 0: leaves it as is). One guard serves every gRPC
// server of the process, so the largest limit any of them asked for applies
// to all: it bounds memory per connection, not a server's stream budget
// (gRPC's own MAX_CONCURRENT_STREAMS does that for clients that ACK).
void EnableStreamFloodGuard(int64_t max_open_streams);

// The limit in force (0: the guard was never enabled).
int64_t StreamFloodGuardLimit();

// Connections cut so far in this process.
int64_t StreamFloodCuts();

// Adds shardlm_grpc_stream_flood_cuts_total to a /metrics page.
void RenderStreamFloodGuardMetrics(MetricsPage* page);

// The channelz walk the guard polls with (also for tests): `visit` gets the
// channelz id of every server-side connection of this process, all pages
// of every server; an error when channelz's answer cannot be parsed.
absl::Status ForEachServerConnection(const std::function<void(int64_t socket_id)>& visit);
// One connection's streams and addresses; NOT_FOUND once it has closed.
absl::StatusOr<ChannelzSocket> ReadServerConnection(int64_t socket_id);

}  // namespace shardlm

#endif  // SHARDLM_COMMON_RPC_STREAM_FLOOD_GUARD_H_
