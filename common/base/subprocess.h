// A child process with its stdout on a pipe, for `shardlm serve` (which
// launches workers) and end-to-end tests. Only ever signals the process it
// started, by its pid.
#ifndef SHARDLM_COMMON_BASE_SUBPROCESS_H_
#define SHARDLM_COMMON_BASE_SUBPROCESS_H_

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace shardlm {

class Subprocess {
 public:
  // Starts argv[0] (a path) with the given arguments; stderr is inherited,
  // stdout is a pipe read by ReadLine.
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(const std::vector<std::string>& argv);
  ~Subprocess();  // SIGKILLs and reaps the child if it is still running

  pid_t pid() const { return pid_; }
  // Next line of the child's stdout (without '\n'); nullopt at EOF or when
  // `timeout` passes first.
  std::optional<std::string> ReadLine(absl::Duration timeout);
  // Reads lines until one starts with `prefix`; returns the rest of it.
  absl::StatusOr<std::string> WaitForLine(const std::string& prefix, absl::Duration timeout);
  void Signal(int sig);
  // Waits for the exit; returns the exit code (128 + signal if killed), or
  // nullopt if still running after `timeout`.
  std::optional<int> Wait(absl::Duration timeout);
  bool running();

 private:
  Subprocess(pid_t pid, int out_fd) : pid_(pid), out_fd_(out_fd) {}
  pid_t pid_;
  int out_fd_;
  std::string buffer_;
  std::optional<int> exit_code_;
};

// Directory of the running executable (for finding sibling binaries).
std::string ExecutableDir();

}  // namespace shardlm

#endif  // SHARDLM_COMMON_BASE_SUBPROCESS_H_
