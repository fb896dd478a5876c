// The stream-flood guard (common/rpc/stream_flood_guard.h): its reading of
// channelz JSON (samples are what gRPC 1.51 printed for a connection with
// 2000 half-open streams), its decision, and the guard itself against a
// real in-process health server on loopback: a raw HTTP/2 client that never
// acknowledges SETTINGS and opens streams past the limit is cut (RST), one
// below the limit is not, and normal calls keep working (IPv4 and IPv6);
// and channelz's count goes back to 0 after answered, expired and
// abandoned streams, so a long-lived connection cannot drift into a cut.
#include <arpa/inet.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>

#include "common/rpc/channelz_sockets.h"
#include "common/rpc/grpc_settings.h"
#include "common/rpc/health_server.h"
#include "common/rpc/stream_flood_guard.h"

namespace shardlm {
namespace {

// grpc_channelz_get_servers(0) / get_server_sockets(1, 0, 100) /
// get_socket(3), as gRPC 1.51.1 printed them during a 2000-stream flood.
constexpr char kServers[] =
    R"({"end":true,"server":[{"data":{"callsStarted":"2000","lastCallStartedTimestamp":)"
    R"("2026-12-02T07:40:55.521206030Z","trace":{"creationTimestamp":"2026-12-02T07:40:53.982935018Z",)"
    R"("events":[{"description":"Server created","severity":"CT_INFO","timestamp":)"
    R"("2026-12-02T07:40:53.982934998Z"}],"numEventsLogged":"1"}},"listenSocket":[{"name":)"
    R"("chttp2 listener ipv4:127.0.0.1:0","socketId":"2"}],"ref":{"serverId":"1"}}]})";
constexpr char kSocketRefs[] =
    R"({"end":true,"socketRef":[{"name":"chttp2 ipv4:127.0.0.1:42764","socketId":"3"}]})";
constexpr char kSocket[] =
    R"({"socket":{"data":{"lastRemoteStreamCreatedTimestamp":"2026-12-02T07:40:55.521205791Z",)"
    R"("streamsFailed":"409","streamsStarted":"2000"},"local":{"tcpip_address":{"ip_address":)"
    R"("fwAAAQ==","port":37283}},"ref":{"name":"chttp2 ipv4:127.0.0.1:42764","socketId":"3"},)"
    R"("remote":{"tcpip_address":{"ip_address":"fwAAAQ==","port":42764}}}})";

TEST(ChannelzSockets, ParsesServersAndSocketRefs) {
  absl::StatusOr<ChannelzPage> servers = ParseChannelzServers(kServers);
  ASSERT_TRUE(servers.ok()) << servers.status();
  EXPECT_EQ(servers->ids, std::vector<int64_t>{1});
  EXPECT_TRUE(servers->end);
  absl::StatusOr<ChannelzPage> sockets = ParseChannelzSocketRefs(kSocketRefs);
  ASSERT_TRUE(sockets.ok()) << sockets.status();
  EXPECT_EQ(sockets->ids, std::vector<int64_t>{3});
  // A server without connections: gRPC leaves the list out.
  absl::StatusOr<ChannelzPage> none = ParseChannelzSocketRefs(R"({"end":true})");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->ids.empty());
  // Pagination: "end" absent means more pages.
  absl::StatusOr<ChannelzPage> more =
      ParseChannelzSocketRefs(R"({"socketRef":[{"socketId":"7"},{"socketId":"9"}]})");
  ASSERT_TRUE(more.ok());
  EXPECT_FALSE(more->end);
  EXPECT_EQ(more->ids, (std::vector<int64_t>{7, 9}));
}

TEST(ChannelzSockets, ParsesOpenStreamsAndAddresses) {
  absl::StatusOr<ChannelzSocket> s = ParseChannelzSocket(kSocket);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->id, 3);
  EXPECT_EQ(s->open_streams, 2000 - 409);  // started - failed (none succeeded)
  EXPECT_EQ(s->local.ToString(), "127.0.0.1:37283");
  EXPECT_EQ(s->remote.ToString(), "127.0.0.1:42764");
}

TEST(ChannelzSockets, RefusesWhatIsNotChannelz) {
  EXPECT_FALSE(ParseChannelzServers("").ok());  // channelz answered null
  EXPECT_FALSE(ParseChannelzServers("{\"server\":").ok());
  EXPECT_FALSE(ParseChannelzSocketRefs(R"({"socketRef":3})").ok());
  EXPECT_FALSE(ParseChannelzSocket(R"({"other":{}})").ok());
  // Odd fields degrade to "nothing known", never to a crash.
  absl::StatusOr<ChannelzSocket> odd = ParseChannelzSocket(
      R"({"socket":{"data":{"streamsStarted":"x"},"remote":{"tcpip_address":{"ip_address":"!!"}}}})");
  ASSERT_TRUE(odd.ok());
  EXPECT_EQ(odd->open_streams, 0);
  EXPECT_TRUE(odd->remote.ip.empty());
}

TEST(ChannelzSockets, DecidesAgainstTheLimit) {
  ChannelzSocket s;
  s.open_streams = 256;
  EXPECT_FALSE(ExceedsStreamLimit(s, 256));  // at the limit: kept
  s.open_streams = 257;
  EXPECT_TRUE(ExceedsStreamLimit(s, 256));
  EXPECT_FALSE(ExceedsStreamLimit(s, 0));  // no limit
}

TEST(ChannelzSockets, FoldsIpv4MappedAddresses) {
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(5001);
  inet_pton(AF_INET6, "::ffff:10.1.2.3", &a.sin6_addr);
  EXPECT_EQ(EndpointOf(&a, sizeof(a)).ToString(), "10.1.2.3:5001");
  inet_pton(AF_INET6, "::1", &a.sin6_addr);
  EXPECT_EQ(EndpointOf(&a, sizeof(a)).ToString(), "[::1]:5001");
}

TEST(GrpcServerLimitsOpenStreams, BelowTheStreamLimitIsRefused) {
  GrpcServerLimits l;
  l.max_open_streams = l.max_concurrent_streams - 1;
  const absl::Status st = ValidateGrpcServerLimits(l, "--grpc-");
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("--grpc-max-open-streams"), std::string::npos) << st;
  l.max_open_streams = 0;  // 4 x the stream limit
  EXPECT_TRUE(ValidateGrpcServerLimits(l).ok());
}

// --- the guard against a live server ----------------------------------------

// An HPACK literal (without indexing, name from the static table at
// `index` < 15, or a new name when 0) of a short value.
std::string Literal(int index, const std::string& name, const std::string& value) {
  std::string out(1, static_cast<char>(index));
  if (index == 0) out += static_cast<char>(name.size()) + name;
  return out + static_cast<char>(value.size()) + value;
}

std::string Frame(uint8_t type, uint8_t flags, uint32_t stream, const std::string& payload) {
  std::string f;
  f += static_cast<char>(payload.size() >> 16);
  f += static_cast<char>(payload.size() >> 8);
  f += static_cast<char>(payload.size());
  f += static_cast<char>(type);
  f += static_cast<char>(flags);
  f += static_cast<char>(stream >> 24);
  f += static_cast<char>(stream >> 16);
  f += static_cast<char>(stream >> 8);
  f += static_cast<char>(stream);
  return f + payload;
}

// A raw client: connects, sends the preface and empty SETTINGS, and never
// acknowledges the server's. Then `streams` HEADERS frames for
// Health/Check without a message: half-open streams.
int FloodingClient(bool ipv6, int port, int streams) {
  const int fd = socket(ipv6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sockaddr_in6 a6{};
  a6.sin6_family = AF_INET6;
  a6.sin6_port = htons(static_cast<uint16_t>(port));
  a6.sin6_addr = in6addr_loopback;
  const int connected = ipv6 ? connect(fd, reinterpret_cast<sockaddr*>(&a6), sizeof(a6))
                             : connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  if (connected != 0) {
    close(fd);
    return -1;
  }
  std::string out = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + Frame(4, 0, 0, "");
  // :method POST (static 3), :scheme http (static 6), :path, :authority,
  // content-type (static 31: literal, 4-bit prefix 15 + 16), te.
  const std::string block = std::string("\x83\x86", 2) +
                            Literal(4, "", "/grpc.health.v1.Health/Check") +
                            Literal(1, "", "localhost") + std::string("\x0f\x10", 2) +
                            std::string(1, 16) + "application/grpc" +
                            Literal(0, "te", "trailers");
  for (int i = 0; i < streams; ++i) {
    out += Frame(1, 0x4 /*END_HEADERS*/, static_cast<uint32_t>(2 * i + 1), block);
  }
  if (send(fd, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size())) {
    close(fd);
    return -1;
  }
  return fd;
}

// Reads (and drops) what the server sends until it closes or resets the
// connection (true) or `timeout` passes (false).
bool ServerEnds(int fd, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  char buf[4096];
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    const ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) return true;  // FIN (0) or RST (ECONNRESET)
  }
  return false;
}

class StreamFloodGuardTest : public testing::TestWithParam<bool> {};  // IPv6?

TEST_P(StreamFloodGuardTest, CutsAClientThatNeverAcksAndSparesOthers) {
  const bool ipv6 = GetParam();
  // As in the coordinator and worker: the reflection plugin gives the
  // health-only server the polled service gRPC insists on.
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  absl::StatusOr<std::unique_ptr<HealthServer>> server =
      HealthServer::Start(ipv6 ? "[::1]:0" : "127.0.0.1:0");
  ASSERT_TRUE(server.ok()) << server.status();
  (*server)->SetServingStatus(true);
  const int port = std::stoi((*server)->address().substr((*server)->address().rfind(':') + 1));
  const int64_t limit = StreamFloodGuardLimit();
  ASSERT_GE(limit, HealthPortLimits().max_concurrent_streams);  // ApplyServerSettings enabled it
  const int64_t cuts_before = StreamFloodCuts();

  // Below the limit (and above the 8 streams the health port grants a
  // client that acknowledges SETTINGS): left alone.
  const int calm = FloodingClient(ipv6, port, static_cast<int>(limit / 2));
  ASSERT_GE(calm, 0);
  const int flood = FloodingClient(ipv6, port, static_cast<int>(limit * 8));
  ASSERT_GE(flood, 0);
  EXPECT_TRUE(ServerEnds(flood, std::chrono::seconds(10))) << "the flooding connection lives on";
  EXPECT_EQ(StreamFloodCuts(), cuts_before + 1);
  // Several polls later the calm connection still lives.
  std::this_thread::sleep_for(10 * absl::ToChronoMilliseconds(kStreamFloodPollInterval));
  EXPECT_FALSE(ServerEnds(calm, std::chrono::milliseconds(100)));
  EXPECT_EQ(StreamFloodCuts(), cuts_before + 1);

  // A normal client is served meanwhile.
  std::shared_ptr<grpc::Channel> channel = CreateClientChannel((*server)->address());
  absl::StatusOr<bool> serving = CheckHealth(channel.get(), "", absl::Seconds(5));
  ASSERT_TRUE(serving.ok()) << serving.status();
  EXPECT_TRUE(*serving);
  close(flood);
  close(calm);
  (*server)->Shutdown();
}

// The streams a normal client ends (answered, or cancelled by its deadline)
// leave channelz's count: a long-lived connection (a coordinator's to a
// worker) never drifts towards the limit.
int64_t MostOpenStreamsInProcess() {
  int64_t most = 0;
  const absl::Status walked = ForEachServerConnection([&most](int64_t id) {
    absl::StatusOr<ChannelzSocket> socket = ReadServerConnection(id);
    if (socket.ok()) most = std::max(most, socket->open_streams);
  });
  EXPECT_TRUE(walked.ok()) << walked;
  return walked.ok() ? most : -1;
}

TEST(StreamFloodGuardCounters, FinishedAndCancelledCallsLeaveNoOpenStreams) {
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  absl::StatusOr<std::unique_ptr<HealthServer>> server = HealthServer::Start("127.0.0.1:0");
  ASSERT_TRUE(server.ok()) << server.status();
  (*server)->SetServingStatus(true);
  const int64_t cuts_before = StreamFloodCuts();
  const int port = std::stoi((*server)->address().substr((*server)->address().rfind(':') + 1));
  // The count is seen: 5 half-open streams of a raw client show...
  const int raw = FloodingClient(false, port, 5);
  ASSERT_GE(raw, 0);
  int64_t open = 0;
  for (int i = 0; i < 50 && open < 5; ++i) {
    open = MostOpenStreamsInProcess();
    if (open < 5) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(open, 5);
  close(raw);  // ...and end with its connection (below: back to 0)
  std::shared_ptr<grpc::Channel> channel = CreateClientChannel((*server)->address());
  int answered = 0, expired = 0;
  for (int i = 0; i < 600; ++i) {
    // Every third call's deadline passes before the answer: the client
    // resets the stream (RST_STREAM), the server counts it failed.
    const absl::Duration deadline = i % 3 == 0 ? absl::Microseconds(1) : absl::Seconds(5);
    absl::StatusOr<bool> serving = CheckHealth(channel.get(), "", deadline);
    serving.ok() ? ++answered : ++expired;
  }
  EXPECT_GT(answered, 300);
  EXPECT_GT(expired, 0);
  // The last RST_STREAMs may still be in flight: allow them a moment.
  open = -1;
  for (int i = 0; i < 50 && open != 0; ++i) {
    open = MostOpenStreamsInProcess();
    if (open != 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  EXPECT_EQ(open, 0);
  EXPECT_EQ(StreamFloodCuts(), cuts_before);
  (*server)->Shutdown();
}

INSTANTIATE_TEST_SUITE_P(Loopback, StreamFloodGuardTest, testing::Values(false, true),
                         [](const testing::TestParamInfo<bool>& p) {
                           return p.param ? "Ipv6" : "Ipv4";
                         });

}  // namespace
}  // namespace shardlm
