// A FIFO of tasks run by one dedicated thread: where the stage service runs
// Forward / Release so that gRPC's callback threads never block.
//
// Why one plain thread and not a oneTBB arena: a Stage serializes its calls
// anyway (one KV cache, one scratch), and the stage computes inside its own
// task_arena. Running the call from an external thread lets that thread join
// the stage's arena as its master; had it been a oneTBB worker instead, it
// would hold one of the global pool's workers (only n_cores - 1 of them) and
// the stage would compute with one thread fewer. FIFO order also keeps calls
// in arrival order.
#ifndef SHARDLM_WORKER_COMPUTE_QUEUE_H_
#define SHARDLM_WORKER_COMPUTE_QUEUE_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace shardlm {

class ComputeQueue {
 public:
  // At most `max_pending` tasks wait (a bound on memory held by queued
  // requests); the running one does not count.
  explicit ComputeQueue(int max_pending);
  ~ComputeQueue();  // Stop()
  ComputeQueue(const ComputeQueue&) = delete;
  ComputeQueue& operator=(const ComputeQueue&) = delete;

  // False when the queue is full or stopped (the task is not run).
  bool Push(std::function<void()> task);
  // Runs the tasks already queued, then joins the thread. Idempotent.
  void Stop();
  int pending() const;
  bool stopped() const;

 private:
  void Loop();

  const int max_pending_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace shardlm

#endif  // SHARDLM_WORKER_COMPUTE_QUEUE_H_
