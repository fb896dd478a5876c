#include "tests/worker_cluster.h"

#include <signal.h>

#include "absl/strings/str_cat.h"

namespace shardlm::testing {

WorkerCluster::WorkerCluster(WorkerClusterOptions options) : options_(std::move(options)) {
  for (size_t i = 0; i < options_.ranges.size(); ++i) {
    auto p = StartWorker(static_cast<int>(i), "127.0.0.1:0");
    if (!p.ok()) {
      status_ = p.status();
      return;
    }
    auto address = (*p)->WaitForLine("LISTENING ", absl::Seconds(30));
    if (!address.ok()) {
      status_ = address.status();
      return;
    }
    addresses_.push_back(*address);
    workers_.push_back(std::move(*p));
  }
  CoordinatorOptions o;
  o.model_path = options_.model;
  o.workers = addresses_;
  o.listen = "127.0.0.1:0";
  o.worker_wait = absl::Seconds(30);
  o.call_timeout = options_.call_timeout;
  o.engine.failover_timeout = options_.failover_timeout;
  o.engine.health_interval = options_.health_interval;
  o.engine.spec_ngram = options_.spec_ngram;
  o.topology = options_.topology;
  auto server = CoordinatorServer::Start(o);
  if (!server.ok()) {
    status_ = server.status();
    return;
  }
  coordinator_ = std::move(*server);
}

WorkerCluster::~WorkerCluster() {
  for (auto& w : workers_) w->Signal(SIGCONT);  // a stopped one must be able to die
  coordinator_.reset();
  workers_.clear();  // Subprocess kills and reaps its own child
}

absl::StatusOr<std::unique_ptr<Subprocess>> WorkerCluster::StartWorker(int i,
                                                                       const std::string& listen) {
  const auto [first, last] = options_.ranges[i];
  return Subprocess::Start({SHARDLM_WORKER_BIN, "--insecure", "--model", options_.model,
                            "--layers", absl::StrCat(first, ":", last), "--listen", listen,
                            "--threads", "1", "--kv-type", "f32"});
}

pid_t WorkerCluster::pid(int i) const {
  std::lock_guard<std::mutex> lock(mu_);
  return workers_[i]->pid();
}

absl::Status WorkerCluster::RestartWorker(int i) {
  if (workers_[i]->running()) {
    return absl::FailedPreconditionError(absl::StrCat("worker ", i, " is still running"));
  }
  auto p = StartWorker(i, addresses_[i]);
  if (!p.ok()) return p.status();
  auto address = (*p)->WaitForLine("LISTENING ", absl::Seconds(30));
  if (!address.ok()) return address.status();
  if (*address != addresses_[i]) {
    return absl::InternalError(absl::StrCat("worker ", i, " came back on ", *address,
                                            " instead of ", addresses_[i]));
  }
  std::lock_guard<std::mutex> lock(mu_);
  workers_[i] = std::move(*p);
  return absl::OkStatus();
}

}  // namespace shardlm::testing
