#include "common/base/metrics_server.h"

#include <utility>

#include "common/base/http_server.h"

namespace shardlm {

HttpResponse MetricsResponse(std::string text) {
  HttpResponse r;
  r.content_type = "text/plain; version=0.0.4; charset=utf-8";
  r.body = std::move(text);
  return r;
}

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
    return ReadyExchange(MetricsResponse(render()));
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
  AddHttpConnectionFlags(args, "--metrics", "metrics port", f);
}

absl::StatusOr<HttpLimits> MetricsLimitsFromFlags(const MetricsFlags& f) {
  HttpLimits l = MetricsHttpLimits();
  if (absl::Status st = ApplyHttpConnectionFlags(f, "--metrics", &l); !st.ok()) return st;
  return l;
}

}  // namespace shardlm
