// Serves Prometheus text metrics over HTTP (GET /metrics) on its own port,
// rendered on each scrape by a callback. Used by the coordinator and by
// workers (`--metrics-listen HOST:PORT`). Served by the event-driven
// HttpServer: slow or idle scrapers cannot starve it.
#ifndef SHARDLM_COMMON_BASE_METRICS_SERVER_H_
#define SHARDLM_COMMON_BASE_METRICS_SERVER_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/base/cli_args.h"
#include "common/base/http_limit_flags.h"
#include "common/base/http_server.h"

namespace shardlm {

// A scrape port needs few connections and no body.
inline HttpLimits MetricsHttpLimits() {
  HttpLimits l;
  l.max_connections = 256;
  l.max_header_bytes = 16 << 10;
  l.max_body_bytes = 0;
  l.read_timeout = absl::Seconds(10);
  l.threads = 1;
  return l;
}

// A scrape's answer: `text` (a rendered MetricsPage) as Prometheus text
// format 0.0.4; the metrics port and the HTTP API's GET /metrics both send it.
HttpResponse MetricsResponse(std::string text);

// The metrics port's limits as flags, defined once for the coordinator and
// the worker (docs/DEPLOY.md, "Limits -> HTTP"): --metrics-max-connections,
// --metrics-max-connections-per-ip, --metrics-read-timeout.
struct MetricsFlags : HttpConnectionFlags {
  MetricsFlags() : HttpConnectionFlags(MetricsHttpLimits()) {}
};
void AddMetricsFlags(CliArgs* args, MetricsFlags* flags);
// MetricsHttpLimits() with the flags applied; INVALID_ARGUMENT naming the
// flag for a value out of range.
absl::StatusOr<HttpLimits> MetricsLimitsFromFlags(const MetricsFlags& flags);

class MetricsServer {
 public:
  // Listens on `address` ("host:port", port 0 picks one) and serves the page
  // `render` returns (called on the server's thread).
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(
      const std::string& address, std::function<std::string()> render,
      const HttpLimits& limits = MetricsHttpLimits());
  ~MetricsServer();
  const std::string& address() const { return address_; }

 private:
  MetricsServer() = default;
  std::unique_ptr<HttpServer> server_;
  std::string address_;
};

}  // namespace shardlm

#endif  // SHARDLM_COMMON_BASE_METRICS_SERVER_H_
