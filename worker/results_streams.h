// The worker's side of the coordinator's results streams (--topology
// chain): each open Stage.Results call is registered under the id the
// coordinator chose, and the last stage of a chained step writes its logits
// there (Send). Writes are queued per stream, one in flight at a time, in
// order. A cancelled or broken stream unregisters itself; a step sent to an
// id that is not (or no longer) registered gets UNAVAILABLE, which the
// coordinator treats as the loss of its stream.
#ifndef SHARDLM_WORKER_RESULTS_STREAMS_H_
#define SHARDLM_WORKER_RESULTS_STREAMS_H_

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <map>
#include <mutex>

#include "absl/status/status.h"
#include "shardlm/v1/stage.grpc.pb.h"

namespace shardlm {

class ResultsStreams {
 public:
  explicit ResultsStreams(int max_streams = 64) : max_streams_(max_streams) {}
  ~ResultsStreams();

  // The reactor of one Results call (finished at once with ALREADY_EXISTS
  // for an id in use, RESOURCE_EXHAUSTED past max_streams).
  grpc::ServerWriteReactor<v1::ChainResult>* Open(grpc::CallbackServerContext* context,
                                                  uint64_t stream_id);
  // Queues `result` on stream `stream_id`.
  absl::Status Send(uint64_t stream_id, v1::ChainResult result);
  int size() const;

 private:
  class Writer;
  void Remove(uint64_t id, Writer* writer);

  const int max_streams_;
  mutable std::mutex mu_;  // guards writers_; held while a Writer is used
  std::map<uint64_t, Writer*> writers_;
};

}  // namespace shardlm

#endif  // SHARDLM_WORKER_RESULTS_STREAMS_H_
