// A local cluster for end-to-end fault tests: shardlm-worker processes (any
// layer ranges, replicas allowed) on 127.0.0.1 and an in-process coordinator
// with short failure-detection times. Workers can be killed, stopped and
// restarted on their old address; only processes started here are signalled.
#ifndef SHARDLM_TESTS_WORKER_CLUSTER_H_
#define SHARDLM_TESTS_WORKER_CLUSTER_H_

#include <sys/types.h>

#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "common/base/subprocess.h"
#include "coordinator/coordinator_server.h"

namespace shardlm::testing {

struct WorkerClusterOptions {
  std::string model;
  std::vector<std::pair<int, int>> ranges;  // one worker per entry, [first, last)
  absl::Duration failover_timeout = absl::Seconds(10);
  absl::Duration call_timeout = absl::Seconds(2);  // a hung worker is noticed within this
  absl::Duration health_interval = absl::Milliseconds(200);
  int spec_ngram = 0;  // the coordinator's --spec-ngram
  std::string topology = "relay";  // the coordinator's --topology
};

class WorkerCluster {
 public:
  // Starts the workers, then the coordinator; check ok() before use.
  explicit WorkerCluster(WorkerClusterOptions options);
  ~WorkerCluster();  // SIGCONTs stopped workers, stops the coordinator, kills the workers

  const absl::Status& status() const { return status_; }
  bool ok() const { return status_.ok(); }
  const std::string& address() const { return coordinator_->address(); }
  const std::vector<std::string>& worker_addresses() const { return addresses_; }
  // Worker i's process. Not to be held across RestartWorker(i), which
  // replaces it; pid() may be read from any thread at any time.
  Subprocess& worker(int i) { return *workers_[i]; }
  pid_t pid(int i) const;

  // Starts worker i again (after it died) on the address it had.
  absl::Status RestartWorker(int i);

 private:
  absl::StatusOr<std::unique_ptr<Subprocess>> StartWorker(int i, const std::string& listen);

  WorkerClusterOptions options_;
  absl::Status status_;
  mutable std::mutex mu_;  // guards replacing workers_[i] against pid(i)
  std::vector<std::unique_ptr<Subprocess>> workers_;
  std::vector<std::string> addresses_;
  std::unique_ptr<CoordinatorServer> coordinator_;
};

}  // namespace shardlm::testing

#endif  // SHARDLM_TESTS_WORKER_CLUSTER_H_
