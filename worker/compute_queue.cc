#include "worker/compute_queue.h"

namespace shardlm {

ComputeQueue::ComputeQueue(int max_pending)
    : max_pending_(max_pending), thread_([this] { Loop(); }) {}

ComputeQueue::~ComputeQueue() { Stop(); }

bool ComputeQueue::Push(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || static_cast<int>(tasks_.size()) >= max_pending_) return false;
    tasks_.push_back(std::move(task));
  }
  cv_.notify_one();
  return true;
}

void ComputeQueue::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_one();
  if (thread_.joinable()) thread_.join();
}

int ComputeQueue::pending() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int>(tasks_.size());
}

bool ComputeQueue::stopped() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stopping_;
}

void ComputeQueue::Loop() {
  for (;;) {
    std::function<void()> task;
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !tasks_.empty(); });
      // Drain before exiting: every queued task finishes its RPC.
      if (tasks_.empty()) return;
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

}  // namespace shardlm
