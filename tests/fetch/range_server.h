// Starts tests/fetch/range_server.py (a loopback HTTP server with Range
// support and fault modes) for one file, and reads back how many body bytes
// it served to each User-Agent. Ends only the process it started.
#ifndef SHARDLM_TESTS_FETCH_RANGE_SERVER_H_
#define SHARDLM_TESTS_FETCH_RANGE_SERVER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/base/subprocess.h"

namespace shardlm {

class RangeServer {
 public:
  // `flags`: the script's fault-mode flags, e.g. {"--drop-after", "65536"}.
  // The file is served as /m.gguf. Fails the test (and returns null) when
  // the server does not start.
  static std::unique_ptr<RangeServer> Start(const std::string& file,
                                            const std::vector<std::string>& flags = {});
  ~RangeServer();

  std::string url(const std::string& name = "m.gguf") const;
  // Body bytes served per User-Agent so far.
  std::map<std::string, uint64_t> Stats() const;
  uint64_t TotalServed() const;

 private:
  std::unique_ptr<Subprocess> process_;
  int port_ = 0;
};

}  // namespace shardlm

#endif  // SHARDLM_TESTS_FETCH_RANGE_SERVER_H_
