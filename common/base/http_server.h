// An HTTP/1.1 server for untrusted clients, on Debian's libmicrohttpd
// (epoll, a few event threads, no thread per connection): the OpenAI API
// and the /metrics pages both run on it.
//
// Why not a thread per connection: a client that trickles one header byte
// per second would hold a thread each, and 32 of them starved the whole
// port (issue 21). Here an idle or slow connection costs only its buffer
// (capped by HttpLimits::max_header_bytes), every request must arrive whole
// within HttpLimits::read_timeout, and handlers never block an event thread:
// a response that is not ready yet (a generation) suspends its connection
// until its producer wakes it.
//
// Order of work for a request: headers (capped in bytes and count) ->
// HttpRoutes::admit (e.g. a 401, answered before any body byte is read) ->
// the body (capped at max_body_bytes, chunked or sized alike) ->
// HttpRoutes::handle -> HttpExchange::Respond (and ReadBody for streams).
#ifndef SHARDLM_COMMON_BASE_HTTP_SERVER_H_
#define SHARDLM_COMMON_BASE_HTTP_SERVER_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace shardlm {

struct HttpLimits {
  int max_connections = 1024;          // open at once (idle ones included); more are refused
  int max_connections_per_ip = 0;      // 0: no per-address cap
  size_t max_header_bytes = 32 << 10;  // request line + header lines of one request
  int max_headers = 64;                // header lines of one request
  size_t max_body_bytes = 8 << 20;     // sized or chunked
  // A request's headers and body must have arrived within this of the
  // connection's start or of its previous response (an idle keep-alive
  // connection is closed after it as well).
  absl::Duration read_timeout = absl::Seconds(30);
  int threads = 2;  // event threads
};

struct HttpRequest {
  std::string method;
  std::string path;
  std::vector<std::pair<std::string, std::string>> headers;  // as sent (values may hold any byte)
  std::string body;

  // The first header named `name` (case-insensitive), or null.
  const std::string* Header(absl::string_view name) const;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  // The body is chunked, produced by HttpExchange::ReadBody (`body` unused).
  bool streamed = false;
};

// One request's answer, produced on the server's event threads: each call
// must return quickly. The server calls Respond once the request is in, and
// again after each wake (or tick) until it returns a response.
class HttpExchange {
 public:
  virtual ~HttpExchange() = default;
  // The response, or nullopt while it is not known yet.
  virtual std::optional<HttpResponse> Respond() = 0;
  // Streamed responses: appends the body bytes available now; true once
  // the body is complete (with its last bytes appended).
  virtual bool ReadBody(std::string* out) {
    (void)out;
    return true;
  }
  // The request is over: `completed` when its whole response was sent;
  // false when the client went away, a write failed or the server stopped.
  virtual void Closed(bool completed) { (void)completed; }
};

// An exchange whose response is known at once.
std::unique_ptr<HttpExchange> ReadyExchange(HttpResponse response);

// Wakes an exchange that waits (Respond gave nullopt, or ReadBody gave no
// bytes): thread-safe, never blocks, a no-op once the request is over.
using HttpWake = std::function<void()>;

struct HttpRoutes {
  // Called once the headers are in, before any body byte is read: a
  // response refuses the request at once (its body is never read).
  std::function<std::optional<HttpResponse>(const HttpRequest&)> admit;
  // Called with the whole request (handed over: its body is not copied),
  // on an event thread.
  std::function<std::unique_ptr<HttpExchange>(HttpRequest, HttpWake)> handle;
  // The body of the server's own refusals (413, 431, 503...).
  std::function<HttpResponse(int status, const std::string& message)> error;
};

class HttpServer {
 public:
  // Listens on `listen` (HOST:PORT, [V6]:PORT; port 0 picks one). `what`
  // names the port in errors and logs ("HTTP", "metrics").
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const std::string& listen,
                                                           const HttpLimits& limits,
                                                           HttpRoutes routes,
                                                           const std::string& what);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // HOST:PORT actually bound.
  const std::string& address() const;
  // Every exchange still waiting is woken (after the caller told its own
  // producers to finish): those that still have no response get a 503,
  // streams end; then the port closes. Idempotent.
  void Shutdown();

  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace shardlm

#endif  // SHARDLM_COMMON_BASE_HTTP_SERVER_H_
