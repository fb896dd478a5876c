// Serves Prometheus text metrics over HTTP (GET /metrics) on its own port,
// rendered on each scrape by a callback. Used by the coordinator and by
// workers (`--metrics-listen HOST:PORT`).
#ifndef SHARDLM_COMMON_BASE_METRICS_SERVER_H_
#define SHARDLM_COMMON_BASE_METRICS_SERVER_H_

#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace httplib {
class Server;
}

namespace shardlm {

class MetricsServer {
 public:
  // Listens on `address` ("host:port", port 0 picks one) and serves the page
  // `render` returns.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Start(const std::string& address,
                                                              std::function<std::string()> render);
  ~MetricsServer();
  const std::string& address() const { return address_; }

 private:
  MetricsServer() = default;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::string address_;
};

}  // namespace shardlm

#endif  // SHARDLM_COMMON_BASE_METRICS_SERVER_H_
