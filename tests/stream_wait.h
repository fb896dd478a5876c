// Waiting for a request's end in tests that submit to the Engine directly
// with a TokenStream as the observer.
#ifndef SHARDLM_TESTS_STREAM_WAIT_H_
#define SHARDLM_TESTS_STREAM_WAIT_H_

#include <cstdint>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "coordinator/token_stream.h"

namespace shardlm::testing {

// Takes the stream's events until the request ends or `timeout` passes;
// false on the timeout. `ids` gets the generated token ids, `end` the end.
inline bool WaitForEnd(TokenStream& stream, absl::Duration timeout, std::vector<int32_t>* ids,
                       StreamEnd* end) {
  const absl::Time deadline = absl::Now() + timeout;
  std::vector<GeneratedToken> tokens;
  bool ended = false;
  while (!ended && absl::Now() < deadline) {
    ended = stream.WaitAndTake(absl::Seconds(1), &tokens, end);
  }
  for (const GeneratedToken& t : tokens) {
    if (t.id >= 0) ids->push_back(t.id);
  }
  return ended;
}

}  // namespace shardlm::testing

#endif  // SHARDLM_TESTS_STREAM_WAIT_H_
