#include "common/base/metrics_server.h"

#include <httplib.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace shardlm {

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(
    const std::string& address, std::function<std::string()> render) {
  const size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(address.substr(colon + 1), &port)) {
    return absl::InvalidArgumentError(absl::StrCat("metrics address '", address, "' is not HOST:PORT"));
  }
  const std::string host = address.substr(0, colon);
  auto m = std::unique_ptr<MetricsServer>(new MetricsServer());
  m->server_ = std::make_unique<httplib::Server>();
  m->server_->Get("/metrics", [render](const httplib::Request&, httplib::Response& res) {
    res.set_content(render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  const int bound = port == 0 ? m->server_->bind_to_any_port(host) : (m->server_->bind_to_port(host, port) ? port : -1);
  if (bound <= 0) return absl::UnavailableError(absl::StrCat("cannot listen on ", address));
  m->address_ = absl::StrCat(host, ":", bound);
  httplib::Server* server = m->server_.get();
  m->thread_ = std::thread([server] { server->listen_after_bind(); });
  return m;
}

MetricsServer::~MetricsServer() {
  server_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace shardlm
