// The real shardlm-worker binary: it prints LISTENING then READY, serves a
// pipeline of two worker processes that decodes like one in-process stage,
// stays near its share of the weights in memory, and exits 0 on SIGTERM.
// Every wait is bounded; only the processes started here are signalled.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/rpc/tensor_codec.h"
#include "tests/rpc_test_util.h"
#include "tests/test_data.h"

namespace shardlm::testing {
namespace {

// A child process whose stdout we read line by line.
class WorkerProcess {
 public:
  explicit WorkerProcess(std::vector<std::string> args) {
    args.insert(args.begin(), {SHARDLM_WORKER_BIN, "--insecure"});  // loopback
    int out[2];
    if (pipe(out) != 0) return;
    pid_ = fork();
    if (pid_ == 0) {
      dup2(out[1], STDOUT_FILENO);
      const int null = open("/dev/null", O_WRONLY);
      if (getenv("SHARDLM_E2E_VERBOSE") == nullptr) dup2(null, STDERR_FILENO);
      close(out[0]);
      close(out[1]);
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(out[1]);
    fd_ = out[0];
  }

  ~WorkerProcess() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (fd_ >= 0) close(fd_);
  }

  pid_t pid() const { return pid_; }

  // The next stdout line, or "" on EOF / timeout.
  std::string ReadLine(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    for (;;) {
      const size_t nl = buffer_.find('\n');
      if (nl != std::string::npos) {
        std::string line = buffer_.substr(0, nl);
        buffer_.erase(0, nl + 1);
        return line;
      }
      const int ms = static_cast<int>(absl::ToInt64Milliseconds(deadline - absl::Now()));
      pollfd p{fd_, POLLIN, 0};
      if (ms <= 0 || poll(&p, 1, ms) <= 0) return "";
      char chunk[256];
      const ssize_t n = read(fd_, chunk, sizeof(chunk));
      if (n <= 0) return "";
      buffer_.append(chunk, n);
    }
  }

  // Exit status after waiting up to `timeout`; -1 if still running.
  int WaitExit(absl::Duration timeout) {
    const absl::Time deadline = absl::Now() + timeout;
    while (absl::Now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
    return -1;
  }

  int64_t ResidentKiB() const {
    std::ifstream status(absl::StrCat("/proc/", pid_, "/status"));
    std::string line;
    while (std::getline(status, line)) {
      int64_t kb;
      if (line.rfind("VmRSS:", 0) == 0) {
        std::string digits;
        for (char c : line)
          if (c >= '0' && c <= '9') digits += c;
        if (absl::SimpleAtoi(digits, &kb)) return kb;
      }
    }
    return -1;
  }

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  bool exited_ = false;
  std::string buffer_;
};

// Starts a worker for `layers` and returns its address once READY.
std::string StartAndWaitReady(WorkerProcess* w) {
  const std::string listening = w->ReadLine(absl::Seconds(30));
  EXPECT_EQ(listening.rfind("LISTENING 127.0.0.1:", 0), 0u) << "'" << listening << "'";
  EXPECT_EQ(w->ReadLine(absl::Seconds(60)), "READY");
  return listening.size() > 10 ? listening.substr(10) : "";
}

TEST(WorkerE2eTest, TwoWorkerProcessesDecodeLikeOneStageAndStopOnSigterm) {
  const std::vector<std::string> common = {
      "--model", StoriesModel(), "--listen", "127.0.0.1:0", "--threads", "1", "--kv-type", "f32"};
  auto args = [&](const char* layers) {
    std::vector<std::string> a = common;
    a.insert(a.end(), {"--layers", layers});
    return a;
  };
  WorkerProcess w0(args("0:2")), w1(args("2:"));
  ASSERT_GT(w0.pid(), 0);
  ASSERT_GT(w1.pid(), 0);
  const std::string a0 = StartAndWaitReady(&w0), a1 = StartAndWaitReady(&w1);

  std::vector<std::shared_ptr<Stage>> stages;
  for (const std::string& address : {a0, a1}) {
    auto remote = RemoteStage::Connect(address, FastConnectOptions());
    ASSERT_TRUE(remote.ok()) << remote.status();
    stages.push_back(std::move(*remote));
  }
  EXPECT_EQ(stages[1]->info().last_layer, 5);
  auto remote = Pipeline::Create(stages);
  ASSERT_TRUE(remote.ok()) << remote.status();
  auto local = Pipeline::Create({LocalStage(StoriesModel(), 0, 5)});
  ASSERT_TRUE(local.ok());
  const std::vector<int32_t> prompt = TestPrompt(10);
  EXPECT_EQ(GreedyTokens(remote->get(), 3, prompt, 12), GreedyTokens(local->get(), 3, prompt, 12));
  std::printf("[rss] stories260K worker 0:2 %lld KiB, 2:5 %lld KiB\n",
              static_cast<long long>(w0.ResidentKiB()), static_cast<long long>(w1.ResidentKiB()));

  // Connected (idle) clients must not hold the shutdown for its grace.
  const absl::Time stop = absl::Now();
  ASSERT_EQ(kill(w0.pid(), SIGTERM), 0);
  ASSERT_EQ(kill(w1.pid(), SIGINT), 0);
  EXPECT_EQ(w0.WaitExit(absl::Seconds(15)), 0);
  EXPECT_EQ(w1.WaitExit(absl::Seconds(15)), 0);
  EXPECT_LT(absl::Now() - stop, absl::Seconds(3));
}

// --kv-type q8_0: GetShardInfo reports the type and its bytes per token
// (about half of f16's); a model whose heads q8_0 cannot hold is refused.
TEST(WorkerE2eTest, Q8_0KvCacheReportedInShardInfoAndRefusedForSmallHeads) {
  WorkerProcess w({"--model", TestDataPath("models/nano-q4_0.gguf"), "--listen", "127.0.0.1:0",
                   "--threads", "1", "--kv-type", "q8_0"});
  ASSERT_GT(w.pid(), 0);
  const std::string address = StartAndWaitReady(&w);
  auto remote = RemoteStage::Connect(address, FastConnectOptions());
  ASSERT_TRUE(remote.ok()) << remote.status();
  const ShardInfo& info = (*remote)->info();
  EXPECT_EQ(info.kv_type, "q8_0");
  auto f16 = LlamaStage::Open(TestDataPath("models/nano-q4_0.gguf"), StageOptions{});
  ASSERT_TRUE(f16.ok());
  EXPECT_GT(info.kv_bytes_per_token, 0);
  EXPECT_LE(info.kv_bytes_per_token, 0.55 * (*f16)->info().kv_bytes_per_token);
  ASSERT_EQ(kill(w.pid(), SIGTERM), 0);
  EXPECT_EQ(w.WaitExit(absl::Seconds(15)), 0);

  WorkerProcess small({"--model", StoriesModel(), "--listen", "127.0.0.1:0", "--kv-type", "q8_0"});
  EXPECT_EQ(small.ReadLine(absl::Seconds(30)).rfind("LISTENING ", 0), 0u);
  EXPECT_EQ(small.ReadLine(absl::Seconds(30)), "") << "no READY";
  EXPECT_EQ(small.WaitExit(absl::Seconds(15)), 1);
  WorkerProcess bad({"--model", StoriesModel(), "--kv-type", "q5_1"});
  EXPECT_EQ(bad.WaitExit(absl::Seconds(10)), 2);
}

TEST(WorkerE2eTest, LoadFailureExitsWithOneAfterListening) {
  WorkerProcess w({"--model", "/nonexistent/model.gguf", "--listen", "127.0.0.1:0"});
  EXPECT_EQ(w.ReadLine(absl::Seconds(30)).rfind("LISTENING ", 0), 0u);
  EXPECT_EQ(w.ReadLine(absl::Seconds(30)), "") << "no READY";
  EXPECT_EQ(w.WaitExit(absl::Seconds(15)), 1);
}

TEST(WorkerE2eTest, HelpAndBadFlags) {
  WorkerProcess help({"--help"});
  EXPECT_NE(help.ReadLine(absl::Seconds(10)).find("usage: shardlm-worker"), std::string::npos);
  EXPECT_EQ(help.WaitExit(absl::Seconds(10)), 0);
  WorkerProcess bad({"--model", StoriesModel(), "--layers", "x"});
  EXPECT_EQ(bad.WaitExit(absl::Seconds(10)), 2);
  WorkerProcess kv({"--model", StoriesModel(), "--kv-budget", "lots"});
  EXPECT_EQ(kv.WaitExit(absl::Seconds(10)), 2);
}

}  // namespace
}  // namespace shardlm::testing
