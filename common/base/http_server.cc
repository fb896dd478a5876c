#include "common/base/http_server.h"

#include <microhttpd.h>
#include <netdb.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdarg>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/base/logging.h"

namespace shardlm {
namespace {

// How often waiting exchanges are polled again (SSE heartbeats, deadlines
// of their own) and read deadlines are checked.
constexpr absl::Duration kTick = absl::Milliseconds(250);
// Bytes a streamed body hands MHD at a time.
constexpr size_t kStreamBlock = 4096;

class Ready : public HttpExchange {
 public:
  explicit Ready(HttpResponse r) : response_(std::move(r)) {}
  std::optional<HttpResponse> Respond() override { return std::move(response_); }

 private:
  HttpResponse response_;
};

}  // namespace

std::unique_ptr<HttpExchange> ReadyExchange(HttpResponse response) {
  return std::make_unique<Ready>(std::move(response));
}

const std::string* HttpRequest::Header(absl::string_view name) const {
  for (const auto& [key, value] : headers) {
    if (absl::EqualsIgnoreCase(key, name)) return &value;
  }
  return nullptr;
}

namespace {

struct Waiter;
struct Conn;

// State shared by the server, its connections and the wakers a producer
// may still hold after the server is gone. One mutex: wakes are rare next
// to the work each one triggers.
struct Hub {
  std::mutex mu;
  bool stopping = false;             // guarded by mu
  std::unordered_set<Waiter*> suspended;  // guarded by mu
  std::unordered_set<Conn*> conns;        // guarded by mu
  int live_calls = 0;                            // guarded by mu
};

// A connection's read clock (the overall request deadline).
struct Conn {
  int fd = -1;
  bool reading = true;  // guarded by Hub::mu: a request is arriving (or awaited)
  absl::Time since;     // guarded by Hub::mu
  bool cut = false;     // guarded by Hub::mu
};

// Whether an exchange's connection is suspended, and wakes that came while
// it was not (so none is lost between "nothing yet" and suspending).
struct Waiter {
  std::shared_ptr<Hub> hub;
  MHD_Connection* connection = nullptr;
  bool suspended = false;  // guarded by hub->mu
  bool pending = false;    // guarded by hub->mu
  bool alive = true;       // guarded by hub->mu
};

void Wake(const std::shared_ptr<Waiter>& w) {
  MHD_Connection* resume = nullptr;
  {
    std::lock_guard<std::mutex> lock(w->hub->mu);
    if (!w->alive) return;
    if (!w->suspended) {
      w->pending = true;
      return;
    }
    w->suspended = false;
    w->hub->suspended.erase(w.get());
    resume = w->connection;
  }
  // Safe outside the lock: MHD never touches a suspended connection, so it
  // cannot end before this resume.
  MHD_resume_connection(resume);
}

// On the connection's thread: suspends it until the next wake. False when
// it must run again at once (a wake came meanwhile, or the server stops).
bool TrySuspend(Waiter* w) {
  std::lock_guard<std::mutex> lock(w->hub->mu);
  if (w->pending) {
    w->pending = false;
    return false;
  }
  if (w->hub->stopping) return false;
  MHD_suspend_connection(w->connection);
  w->suspended = true;
  w->hub->suspended.insert(w);
  return true;
}

// Resumes every suspended connection (they poll their exchange again).
void ResumeAll(Hub* hub, bool stop) {
  std::vector<MHD_Connection*> resume;
  {
    std::lock_guard<std::mutex> lock(hub->mu);
    if (stop) hub->stopping = true;
    for (Waiter* w : hub->suspended) {
      w->suspended = false;
      resume.push_back(w->connection);
    }
    hub->suspended.clear();
  }
  for (MHD_Connection* c : resume) MHD_resume_connection(c);
}

// A header as libmicrohttpd stores it: pointers into its read buffer.
struct RawHeader {
  const char* key;
  size_t key_size;
  const char* value;
  size_t value_size;
};

// Whether a header line held a NUL byte. libmicrohttpd 0.9.75 hands out
// values as C strings, so `Bearer KEY\0junk` would read as `Bearer KEY`
// (issue 21). The lines stay in its read buffer, in order, each line end
// (CR LF, or a bare LF) replaced by NULs: between the end of one value and
// the next key there is room for that line end only (1 or 2 NULs); the
// last value is followed by at least its line end and the empty line's (2
// or more NULs: what follows the head may be zeros too, so a NUL the
// client put at the very end of the last line goes unseen, harmlessly: the
// value is the same without it). Anything else was sent by the client.
bool HasCutValue(std::vector<RawHeader> headers) {
  std::sort(headers.begin(), headers.end(),
            [](const RawHeader& a, const RawHeader& b) { return a.key < b.key; });
  for (size_t i = 0; i < headers.size(); ++i) {
    const RawHeader& h = headers[i];
    if (h.value == nullptr || h.value < h.key) continue;
    const char* end = h.value + h.value_size;  // its first NUL
    if (i + 1 < headers.size() && headers[i + 1].key > end) {
      if (headers[i + 1].key - end > 2) return true;
      continue;
    }
    // The last line: a NUL, then a byte of the client's, was its own.
    if (end[1] != '\0') return true;
  }
  return false;
}

// One request on a connection, from its headers to its completion.
struct Call {
  HttpRequest request;
  uint64_t body_bytes = 0;  // of the body so far (kept up to the cap, then dropped)
  bool answered = false;  // a response was queued
  std::unique_ptr<HttpExchange> exchange;
  std::shared_ptr<Waiter> waiter;
  std::string out;  // streamed bytes not yet handed to MHD
  size_t out_at = 0;
  bool body_done = false;
};

}  // namespace

struct HttpServer::Impl {
  HttpLimits limits;
  HttpRoutes routes;
  std::string what;
  std::string address;
  std::shared_ptr<Hub> hub = std::make_shared<Hub>();
  MHD_Daemon* daemon = nullptr;
  std::thread ticker;
  std::mutex tick_mu;
  std::condition_variable tick_cv;
  bool tick_stop = false;  // guarded by tick_mu
  bool shut_down = false;

  MHD_Result Queue(MHD_Connection* c, Call* call, const HttpResponse& r) {
    MHD_Response* response;
    if (r.streamed) {
      response = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, kStreamBlock, &StreamRead,
                                                   call, nullptr);
    } else {
      response = MHD_create_response_from_buffer(r.body.size(), const_cast<char*>(r.body.data()),
                                                 MHD_RESPMEM_MUST_COPY);
    }
    if (response == nullptr) return MHD_NO;
    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, r.content_type.c_str());
    for (const auto& [k, v] : r.headers) MHD_add_response_header(response, k.c_str(), v.c_str());
    const MHD_Result ok = MHD_queue_response(c, static_cast<unsigned>(r.status), response);
    MHD_destroy_response(response);
    if (ok == MHD_YES) call->answered = true;
    return ok;
  }

  MHD_Result Refuse(MHD_Connection* c, Call* call, int status, const std::string& message) {
    return Queue(c, call, routes.error(status, message));
  }

  static Conn* ConnOf(MHD_Connection* c) {
    const MHD_ConnectionInfo* info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info == nullptr ? nullptr : static_cast<Conn*>(info->socket_context);
  }

  void SetReading(MHD_Connection* c, bool reading) {
    Conn* conn = ConnOf(c);
    if (conn == nullptr) return;
    std::lock_guard<std::mutex> lock(hub->mu);
    conn->reading = reading;
    conn->since = absl::Now();
  }

  // Polls the exchange until it answers or must wait (suspended).
  MHD_Result Progress(MHD_Connection* c, Call* call) {
    while (true) {
      std::optional<HttpResponse> r = call->exchange->Respond();
      if (r.has_value()) return Queue(c, call, *r);
      bool stopping;
      {
        std::lock_guard<std::mutex> lock(hub->mu);
        stopping = hub->stopping;
      }
      if (stopping) return Refuse(c, call, 503, "the server is shutting down");
      if (TrySuspend(call->waiter.get())) return MHD_YES;
    }
  }

  static MHD_Result OnRequest(void* cls, MHD_Connection* c, const char* url, const char* method,
                              const char* /*version*/, const char* upload_data,
                              size_t* upload_data_size, void** con_cls) {
    Impl* self = static_cast<Impl*>(cls);
    Call* call = static_cast<Call*>(*con_cls);
    if (call == nullptr) return self->Begin(c, url, method, con_cls);
    if (call->answered) {  // refused early: MHD discards what follows
      *upload_data_size = 0;
      return MHD_YES;
    }
    if (*upload_data_size != 0) {
      call->body_bytes += *upload_data_size;
      if (!self->OverBodyCap(call->body_bytes)) {
        call->request.body.append(upload_data, *upload_data_size);
        *upload_data_size = 0;
        return MHD_YES;
      }
      // Past the cap: only a chunked body gets here (a sized one got 413
      // from its Content-Length). libmicrohttpd 0.9.75 queues a response
      // only before the body or after it, not mid-body; so the rest is read
      // and dropped (no memory held) to answer 413 after the last chunk —
      // up to another cap's worth of bytes, past which the connection is
      // cut instead of reading on (the read deadline bounds the time).
      *upload_data_size = 0;
      if (!call->request.body.empty()) std::string().swap(call->request.body);
      if (call->body_bytes > 2 * uint64_t{self->limits.max_body_bytes}) {
        SHARDLM_LOG(kInfo, "%s: chunked request body over %d bytes: connection closed",
                    self->what, static_cast<int>(2 * self->limits.max_body_bytes));
        return MHD_NO;
      }
      return MHD_YES;
    }
    if (self->OverBodyCap(call->body_bytes)) {  // the whole over-cap body is in (and dropped)
      SHARDLM_LOG(kInfo, "%s: chunked request body of %d bytes over the %d-byte cap: 413",
                  self->what, static_cast<int>(call->body_bytes),
                  static_cast<int>(self->limits.max_body_bytes));
      return self->Refuse(c, call, 413, "the request body is too large");
    }
    if (call->exchange == nullptr) {
      self->SetReading(c, false);
      call->waiter = std::make_shared<Waiter>();
      call->waiter->hub = self->hub;
      call->waiter->connection = c;
      std::shared_ptr<Waiter> w = call->waiter;
      call->exchange = self->routes.handle(std::move(call->request), [w] { Wake(w); });
      std::lock_guard<std::mutex> lock(self->hub->mu);
      ++self->hub->live_calls;
    }
    return self->Progress(c, call);
  }

  // The one body cap, for a sized body (its Content-Length) and a chunked
  // one (the bytes so far).
  bool OverBodyCap(uint64_t bytes) const { return bytes > limits.max_body_bytes; }

  // The headers are in: check them, and ask `admit` before any body.
  MHD_Result Begin(MHD_Connection* c, const char* url, const char* method, void** con_cls) {
    auto* call = new Call();
    *con_cls = call;
    call->request.method = method;
    call->request.path = url;
    std::vector<RawHeader> raw;
    MHD_get_connection_values_n(
        c, MHD_HEADER_KIND,
        [](void* cls, MHD_ValueKind, const char* key, size_t key_size, const char* value,
           size_t value_size) -> MHD_Result {
          static_cast<std::vector<RawHeader>*>(cls)->push_back({key, key_size, value, value_size});
          return MHD_YES;
        },
        &raw);
    if (HasCutValue(raw)) {
      return Refuse(c, call, 400, "a request header holds a NUL byte");
    }
    for (const RawHeader& h : raw) {
      call->request.headers.emplace_back(std::string(h.key, h.key_size),
                                         h.value == nullptr ? std::string()
                                                            : std::string(h.value, h.value_size));
    }
    if (static_cast<int>(call->request.headers.size()) > limits.max_headers) {
      return Refuse(c, call, 431,
                    absl::StrCat("more than ", limits.max_headers, " header lines"));
    }
    if (const std::string* length = call->request.Header("Content-Length")) {
      uint64_t n = 0;
      if (absl::SimpleAtoi(*length, &n) && OverBodyCap(n)) {
        return Refuse(c, call, 413, "the request body is too large");
      }
      // Sized: one allocation of its size (at most the cap), not doublings.
      call->request.body.reserve(static_cast<size_t>(n));
    }
    if (routes.admit) {
      if (std::optional<HttpResponse> refusal = routes.admit(call->request)) {
        return Queue(c, call, *refusal);
      }
    }
    return MHD_YES;
  }

  static ssize_t StreamRead(void* cls, uint64_t /*pos*/, char* buf, size_t max) {
    Call* call = static_cast<Call*>(cls);
    while (true) {
      if (call->out_at < call->out.size()) {
        const size_t n = std::min(max, call->out.size() - call->out_at);
        std::memcpy(buf, call->out.data() + call->out_at, n);
        call->out_at += n;
        return static_cast<ssize_t>(n);
      }
      call->out.clear();
      call->out_at = 0;
      if (call->body_done) return MHD_CONTENT_READER_END_OF_STREAM;
      if (call->exchange->ReadBody(&call->out)) call->body_done = true;
      if (!call->out.empty() || call->body_done) continue;
      if (!TrySuspend(call->waiter.get())) {
        bool stopping;
        {
          std::lock_guard<std::mutex> lock(call->waiter->hub->mu);
          stopping = call->waiter->hub->stopping;
        }
        if (stopping) return MHD_CONTENT_READER_END_WITH_ERROR;
        continue;  // a wake came meanwhile
      }
      return 0;  // suspended until the next wake
    }
  }

  static void OnCompleted(void* cls, MHD_Connection* c, void** con_cls,
                          MHD_RequestTerminationCode toe) {
    Impl* self = static_cast<Impl*>(cls);
    Call* call = static_cast<Call*>(*con_cls);
    if (call == nullptr) return;
    *con_cls = nullptr;
    if (call->waiter != nullptr) {
      std::lock_guard<std::mutex> lock(self->hub->mu);
      call->waiter->alive = false;
      if (call->waiter->suspended) self->hub->suspended.erase(call->waiter.get());
      --self->hub->live_calls;
    }
    if (call->exchange != nullptr) call->exchange->Closed(toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
    delete call;
    self->SetReading(c, true);  // the next request's clock starts
  }

  static void OnConnection(void* cls, MHD_Connection* c, void** socket_context,
                           MHD_ConnectionNotificationCode code) {
    Impl* self = static_cast<Impl*>(cls);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
      auto* conn = new Conn();
      const MHD_ConnectionInfo* info = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
      conn->fd = info == nullptr ? -1 : info->connect_fd;
      conn->since = absl::Now();
      *socket_context = conn;
      std::lock_guard<std::mutex> lock(self->hub->mu);
      self->hub->conns.insert(conn);
      return;
    }
    auto* conn = static_cast<Conn*>(*socket_context);
    if (conn == nullptr) return;
    {
      std::lock_guard<std::mutex> lock(self->hub->mu);
      self->hub->conns.erase(conn);
    }
    delete conn;
    *socket_context = nullptr;
  }

  // Closes connections whose request is late: MHD's own timeout restarts
  // with every byte, so one byte a second would hold a connection forever.
  void CutLateReaders() {
    const absl::Time now = absl::Now();
    int cut = 0;
    std::lock_guard<std::mutex> lock(hub->mu);
    for (Conn* conn : hub->conns) {
      if (conn->reading && !conn->cut && conn->fd >= 0 && now - conn->since > limits.read_timeout) {
        // The socket is closed by MHD (it sees EOF); only its reads end here.
        ::shutdown(conn->fd, SHUT_RDWR);
        conn->cut = true;
        ++cut;
      }
    }
    if (cut > 0) {
      SHARDLM_LOG(kInfo, "%s: closed %d connection(s) that sent no whole request within %s", what,
                  cut, absl::FormatDuration(limits.read_timeout));
    }
  }

  void Tick() {
    std::unique_lock<std::mutex> lock(tick_mu);
    while (!tick_cv.wait_for(lock, absl::ToChronoMilliseconds(kTick), [this] { return tick_stop; })) {
      lock.unlock();
      ResumeAll(hub.get(), /*stop=*/false);
      CutLateReaders();
      lock.lock();
    }
  }

  static void Log(void* cls, const char* fmt, va_list ap) {
    char line[512];
    std::vsnprintf(line, sizeof line, fmt, ap);
    std::string text(line);
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
    SHARDLM_LOG(kDebug, "%s: %s", static_cast<Impl*>(cls)->what, text);
  }
};

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const std::string& listen,
                                                              const HttpLimits& limits,
                                                              HttpRoutes routes,
                                                              const std::string& what) {
  const size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port) ||
      port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " listen address '", listen, "' is not HOST:PORT"));
  }
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (limits.max_connections < 1 || limits.threads < 1 || limits.max_headers < 1 ||
      limits.max_header_bytes < 1024 || limits.read_timeout <= absl::ZeroDuration()) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " limits: connections, threads and header lines must be >= 1, header bytes >= "
              "1024, the read timeout > 0"));
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | AI_PASSIVE;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.empty() ? nullptr : host.c_str(), std::to_string(port).c_str(), &hints,
                  &found) != 0 ||
      found == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " listen address '", listen, "': cannot resolve '", host, "'"));
  }
  sockaddr_storage addr{};
  std::memcpy(&addr, found->ai_addr, found->ai_addrlen);
  const bool v6 = found->ai_family == AF_INET6;
  freeaddrinfo(found);

  auto impl = std::make_unique<Impl>();
  impl->limits = limits;
  impl->routes = std::move(routes);
  impl->what = what;
  if (!impl->routes.error) {
    impl->routes.error = [](int status, const std::string& message) {
      HttpResponse r;
      r.status = status;
      r.body = message + "\n";
      return r;
    };
  }
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                   MHD_USE_ERROR_LOG;
  if (v6) flags |= MHD_USE_IPv6;
  Impl* raw = impl.get();
  // The whole request head must fit the connection's memory pool: that pool
  // is the header cap (MHD answers 431 beyond it).
  const size_t pool = std::max<size_t>(limits.max_header_bytes, 2 * kStreamBlock);
  impl->daemon = MHD_start_daemon(
      flags, 0, nullptr, nullptr, &Impl::OnRequest, raw,
      MHD_OPTION_SOCK_ADDR, reinterpret_cast<sockaddr*>(&addr),
      MHD_OPTION_CONNECTION_LIMIT, static_cast<unsigned>(limits.max_connections),
      MHD_OPTION_PER_IP_CONNECTION_LIMIT, static_cast<unsigned>(limits.max_connections_per_ip),
      MHD_OPTION_CONNECTION_MEMORY_LIMIT, pool,
      // No progress either way (a client that neither sends nor reads) for
      // this long closes the connection.
      MHD_OPTION_CONNECTION_TIMEOUT,
      static_cast<unsigned>(std::max<int64_t>(1, absl::ToInt64Seconds(limits.read_timeout))),
      MHD_OPTION_THREAD_POOL_SIZE, static_cast<unsigned>(limits.threads),
      MHD_OPTION_NOTIFY_COMPLETED, &Impl::OnCompleted, raw,
      MHD_OPTION_NOTIFY_CONNECTION, &Impl::OnConnection, raw,
      MHD_OPTION_EXTERNAL_LOGGER, &Impl::Log, raw,
      MHD_OPTION_END);
  if (impl->daemon == nullptr) {
    return absl::UnavailableError(absl::StrCat("cannot listen for ", what, " on ", listen,
                                               " (address in use or not local?)"));
  }
  const MHD_DaemonInfo* info = MHD_get_daemon_info(impl->daemon, MHD_DAEMON_INFO_BIND_PORT);
  const int bound = info == nullptr ? port : info->port;
  impl->address = absl::StrCat(listen.substr(0, colon), ":", bound);
  impl->ticker = std::thread([raw] { raw->Tick(); });
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpServer::~HttpServer() { Shutdown(); }

const std::string& HttpServer::address() const { return impl_->address; }

void HttpServer::Shutdown() {
  if (impl_->shut_down) return;
  impl_->shut_down = true;
  {
    std::lock_guard<std::mutex> lock(impl_->tick_mu);
    impl_->tick_stop = true;
  }
  impl_->tick_cv.notify_all();
  if (impl_->ticker.joinable()) impl_->ticker.join();
  // Nothing suspends from now on; every waiting exchange runs once more
  // (answering 503 or ending its stream), then MHD closes what is left.
  const absl::Time give_up = absl::Now() + absl::Seconds(2);
  while (true) {
    ResumeAll(impl_->hub.get(), /*stop=*/true);
    {
      std::lock_guard<std::mutex> lock(impl_->hub->mu);
      if (impl_->hub->live_calls == 0 || absl::Now() > give_up) break;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  MHD_stop_daemon(impl_->daemon);
  impl_->daemon = nullptr;
}

}  // namespace shardlm
