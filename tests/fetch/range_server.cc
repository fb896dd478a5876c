#include "tests/fetch/range_server.h"

#include <signal.h>

#include <httplib.h>

#include "absl/strings/numbers.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"

namespace shardlm {

std::unique_ptr<RangeServer> RangeServer::Start(const std::string& file,
                                                const std::vector<std::string>& flags) {
  std::vector<std::string> argv = {"/usr/bin/env", "python3", SHARDLM_RANGE_SERVER, file,
                                   "--name",       "m.gguf",  "--max-seconds",      "300"};
  argv.insert(argv.end(), flags.begin(), flags.end());
  absl::StatusOr<std::unique_ptr<Subprocess>> p = Subprocess::Start(argv);
  if (!p.ok()) {
    ADD_FAILURE() << p.status();
    return nullptr;
  }
  absl::StatusOr<std::string> port = (*p)->WaitForLine("PORT ", absl::Seconds(30));
  std::unique_ptr<RangeServer> server(new RangeServer());
  server->process_ = std::move(*p);
  if (!port.ok() || !absl::SimpleAtoi(*port, &server->port_)) {
    ADD_FAILURE() << "range_server.py did not start: " << port.status();
    return nullptr;
  }
  return server;
}

RangeServer::~RangeServer() {
  if (process_ == nullptr) return;
  process_->Signal(SIGTERM);
  if (!process_->Wait(absl::Seconds(10)).has_value()) {
    process_->Signal(SIGKILL);
    process_->Wait(absl::Seconds(5));
  }
}

std::string RangeServer::url(const std::string& name) const {
  return "http://127.0.0.1:" + std::to_string(port_) + "/" + name;
}

std::map<std::string, uint64_t> RangeServer::Stats() const {
  httplib::Client client("127.0.0.1", port_);
  httplib::Result r = client.Get("/_stats");
  std::map<std::string, uint64_t> stats;
  if (!r || r->status != 200) {
    ADD_FAILURE() << "GET /_stats failed";
    return stats;
  }
  const nlohmann::json json = nlohmann::json::parse(r->body);
  for (auto it = json.begin(); it != json.end(); ++it) stats[it.key()] = it.value().get<uint64_t>();
  return stats;
}

uint64_t RangeServer::TotalServed() const {
  uint64_t total = 0;
  for (const auto& [ua, bytes] : Stats()) total += bytes;
  return total;
}

}  // namespace shardlm
