#include "common/base/metrics_server.h"

#include "absl/strings/str_cat.h"
#include "common/base/http_server.h"

namespace shardlm {

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& address, std::function<std::string()> render, const HttpLimits& limits) {
  HttpRoutes routes;
  routes.handle = [render](HttpRequest req, HttpWake) {
    HttpResponse r;
    if (req.path != "/metrics" || (req.method != "GET" && req.method != "HEAD")) {
      r.status = 404;
      r.body = "only GET /metrics is served here\n";
      return ReadyExchange(std::move(r));
    }
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = render();
    return ReadyExchange(std::move(r));
  };
  auto m = std::unique_ptr<MetricsServer>(new MetricsServer());
  absl::StatusOr<std::unique_ptr<HttpServer>> server =
      HttpServer::Start(address, limits, std::move(routes), "metrics");
  if (!server.ok()) return server.status();
  m->server_ = std::move(*server);
  m->address_ = m->server_->address();
  return m;
}

MetricsServer::~MetricsServer() = default;

void AddMetricsFlags(CliArgs* args, MetricsFlags* f) {
  args->AddInt("--metrics-max-connections", &f->max_connections,
               "metrics port: connections open at once (idle ones too); more are refused");
  args->AddInt("--metrics-max-connections-per-ip", &f->max_connections_per_ip,
               "metrics port: connections open at once from one client address (0: no cap)");
  args->AddInt("--metrics-read-timeout", &f->read_timeout_s,
               "metrics port: seconds a connection has to send a whole request; also how long "
               "an idle one stays open");
}

absl::StatusOr<HttpLimits> MetricsLimitsFromFlags(const MetricsFlags& f) {
  if (f.max_connections < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics-max-connections must be at least 1, not ", f.max_connections));
  }
  if (f.max_connections_per_ip < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--metrics-max-connections-per-ip must be 0 (no cap) or more, not ",
        f.max_connections_per_ip));
  }
  if (f.read_timeout_s < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--metrics-read-timeout must be at least 1 second, not ", f.read_timeout_s));
  }
  HttpLimits l = MetricsHttpLimits();
  l.max_connections = f.max_connections;
  l.max_connections_per_ip = f.max_connections_per_ip;
  l.read_timeout = absl::Seconds(f.read_timeout_s);
  return l;
}

}  // namespace shardlm
