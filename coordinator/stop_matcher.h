// Finds stop strings in generated text that may span several tokens. Text
// that could still be the start of a stop string is held back until it is
// known not to be, so a client never sees part of a stop string.
#ifndef SHARDLM_COORDINATOR_STOP_MATCHER_H_
#define SHARDLM_COORDINATOR_STOP_MATCHER_H_

#include <string>
#include <vector>

namespace shardlm {

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {}

  // Appends `text` and returns what is now safe to emit. Once a stop string
  // is found, stopped() is true and the text from the stop on is dropped.
  std::string Push(const std::string& text);
  // The held-back text at the end of the stream (nothing if stopped).
  std::string Flush();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string pending_;
  bool stopped_ = false;
};

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_STOP_MATCHER_H_
