#include "common/rpc/stream_flood_guard.h"

#include <dirent.h>
#include <grpc/grpc.h>
#include <grpc/support/alloc.h>
#include <malloc.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/logging.h"
#include "common/base/status_macros.h"
#include "common/rpc/channelz_sockets.h"

namespace shardlm {
namespace {

std::atomic<int64_t> g_limit{0};
std::atomic<int64_t> g_cuts{0};

// channelz's answers are gpr_malloc'ed C strings (null when the server or
// socket is gone); this takes ownership and copies.
std::string Take(char* json) {
  if (json == nullptr) return "";
  std::string s(json);
  gpr_free(json);
  return s;
}

// The connections of one server, page by page.
absl::Status ForEachConnectionOf(int64_t server_id, const std::function<void(int64_t)>& visit) {
  intptr_t start = 0;
  for (;;) {
    const std::string json =
        Take(grpc_channelz_get_server_sockets(static_cast<intptr_t>(server_id), start, 100));
    if (json.empty()) return absl::OkStatus();  // the server shut down meanwhile
    absl::StatusOr<ChannelzPage> sockets = ParseChannelzSocketRefs(json);
    if (!sockets.ok()) return sockets.status();
    for (int64_t id : sockets->ids) visit(id);
    if (sockets->end || sockets->ids.empty()) return absl::OkStatus();
    start = static_cast<intptr_t>(sockets->ids.back() + 1);
  }
}

// The descriptor of this process's TCP connection from `remote` to `local`,
// or -1. A 4-tuple names one live connection, so the match cannot hit
// another one; it is looked up only when a connection is about to be cut.
int FindConnectionFd(const IpEndpoint& local, const IpEndpoint& remote) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int found = -1;
  while (const dirent* entry = readdir(dir)) {
    int fd = -1;
    if (!absl::SimpleAtoi(entry->d_name, &fd) || fd == dirfd(dir)) continue;
    sockaddr_storage address{};
    socklen_t length = sizeof(address);
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) continue;
    if (!(EndpointOf(&address, length) == local)) continue;
    length = sizeof(address);
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&address), &length) != 0) continue;
    if (EndpointOf(&address, length) == remote) {
      found = fd;
      break;
    }
  }
  closedir(dir);
  return found;
}

// Ends the connection on `fd` at once without closing the descriptor (gRPC
// owns it). connect(AF_UNSPEC) on a TCP socket is Linux's tcp_disconnect:
// it sends RST, drops the bytes already received (shutdown(SHUT_RD) would
// leave them, and gRPC would parse every HEADERS frame queued there) and
// sets ECONNRESET, so gRPC's next read fails and it frees the transport.
// shutdown() is the fallback should the disconnect be refused.
void Abort(int fd) {
  sockaddr unspecified{};
  unspecified.sa_family = AF_UNSPEC;
  if (connect(fd, &unspecified, sizeof(unspecified)) != 0) shutdown(fd, SHUT_RDWR);
}

class Guard {
 public:
  void StartOnce() {
    std::call_once(started_, [this] { std::thread([this] { Run(); }).detach(); });
  }

 private:
  void Run() {
    // Keeps gRPC (and its channelz registry) initialised for as long as this
    // thread may call it: the process's last server shutting down must not
    // tear it down under us.
    grpc_init();
    absl::Time next_full_poll = absl::InfinitePast();
    for (;;) {
      absl::SleepFor(suspects_.empty() ? std::max(absl::ZeroDuration(),
                                                  next_full_poll - absl::Now())
                                       : kStreamFloodAlertInterval);
      const int64_t limit = g_limit.load(std::memory_order_relaxed);
      const absl::Time now = absl::Now();
      if (now >= next_full_poll) {
        suspects_.clear();
        PollOnce(limit);
        // A poll costs ~15 us per connection: with many connections the
        // full polls space out so that they never take over 2% of a core.
        const absl::Duration took = absl::Now() - now;
        next_full_poll = now + std::max(kStreamFloodPollInterval, 50 * took);
      } else if (!suspects_.empty()) {
        // Between full polls only the connections already filling up are
        // looked at again: fast where a flood is, cheap however many
        // connections there are.
        const std::set<int64_t> suspects = suspects_;
        for (int64_t id : suspects) CheckSocket(id, limit);
      }
    }
  }

  void PollOnce(int64_t limit) {
    std::set<int64_t> live;
    const absl::Status walked = ForEachServerConnection([&](int64_t id) {
      live.insert(id);
      if (cut_.count(id) == 0) CheckSocket(id, limit);
    });
    if (!walked.ok()) return ReportOnce(walked);
    // A cut connection leaves channelz when gRPC has destroyed its transport
    // and freed its streams: give that memory back to the system now (glibc
    // keeps freed arenas otherwise, and RSS would not fall).
    bool freed = false;
    for (auto it = cut_.begin(); it != cut_.end();) {
      if (live.count(*it) == 0) {
        it = cut_.erase(it);
        freed = true;
      } else {
        ++it;
      }
    }
    if (freed) malloc_trim(0);
  }

  void CheckSocket(int64_t id, int64_t limit) {
    suspects_.erase(id);
    absl::StatusOr<ChannelzSocket> socket = ReadServerConnection(id);
    if (absl::IsNotFound(socket.status())) return;  // closed meanwhile
    if (!socket.ok()) return ReportOnce(socket.status());
    if (!ExceedsStreamLimit(*socket, limit)) {
      if (socket->open_streams > limit / 4) suspects_.insert(id);
      return;
    }
    cut_.insert(id);  // judged once: no second log line while gRPC tears it down
    const int fd = FindConnectionFd(socket->local, socket->remote);
    if (fd < 0) {
      SHARDLM_LOG(kWarning,
                  "gRPC stream flood: connection from %s to %s has %d open streams (limit %d) "
                  "but its socket was not found; not closed",
                  socket->remote.ToString(), socket->local.ToString(), socket->open_streams,
                  limit);
      return;
    }
    g_cuts.fetch_add(1, std::memory_order_relaxed);  // before the peer can see the cut
    Abort(fd);
    SHARDLM_LOG(kWarning,
                "gRPC stream flood: closed the connection from %s to %s: %d open streams, "
                "limit %d (--grpc-max-open-streams)",
                socket->remote.ToString(), socket->local.ToString(), socket->open_streams, limit);
  }

  void ReportOnce(const absl::Status& status) {
    if (reported_) return;
    reported_ = true;
    SHARDLM_LOG(kError, "gRPC stream-flood guard cannot read channelz: %s",
                std::string(status.message()));
  }

  std::once_flag started_;
  std::set<int64_t> cut_;  // channelz ids of cut connections still in channelz
  bool reported_ = false;
  // Connections holding over a quarter of the limit: polled every
  // kStreamFloodAlertInterval, the others every kStreamFloodPollInterval.
  std::set<int64_t> suspects_;
};

Guard& TheGuard() {
  static Guard* guard = new Guard();  // never destroyed: its thread runs until exit
  return *guard;
}

}  // namespace

absl::Status ForEachServerConnection(const std::function<void(int64_t)>& visit) {
  intptr_t start = 0;
  for (;;) {
    absl::StatusOr<ChannelzPage> servers =
        ParseChannelzServers(Take(grpc_channelz_get_servers(start)));
    if (!servers.ok()) return servers.status();
    for (int64_t id : servers->ids) RETURN_IF_ERROR(ForEachConnectionOf(id, visit));
    if (servers->end || servers->ids.empty()) return absl::OkStatus();
    start = static_cast<intptr_t>(servers->ids.back() + 1);
  }
}

absl::StatusOr<ChannelzSocket> ReadServerConnection(int64_t socket_id) {
  const std::string json = Take(grpc_channelz_get_socket(static_cast<intptr_t>(socket_id)));
  if (json.empty()) return absl::NotFoundError(absl::StrCat("connection ", socket_id, " closed"));
  return ParseChannelzSocket(json);
}

void EnableStreamFloodGuard(int64_t max_open_streams) {
  int64_t current = g_limit.load();
  while (max_open_streams > current &&
         !g_limit.compare_exchange_weak(current, max_open_streams)) {
  }
  if (max_open_streams > 0) TheGuard().StartOnce();
}

int64_t StreamFloodGuardLimit() { return g_limit.load(std::memory_order_relaxed); }

int64_t StreamFloodCuts() { return g_cuts.load(std::memory_order_relaxed); }

void RenderStreamFloodGuardMetrics(MetricsPage* page) {
  page->Counter("shardlm_grpc_stream_flood_cuts_total",
                "gRPC connections closed for holding more open HTTP/2 streams than "
                "--grpc-max-open-streams (a client that never acknowledged SETTINGS)",
                static_cast<double>(StreamFloodCuts()));
}

}  // namespace shardlm
