// Follows one JSON object of a function call as the model writes it, byte by
// byte, without waiting for its end: where the object closes, and the raw
// text of its "name" value and of its arguments value ("arguments", or
// Llama 3's "parameters") as far as they have been written. That is what
// lets a streamed call send its name as soon as it is known and then its
// arguments in pieces, as OpenAI streams them. It tracks only structure
// (nesting, strings, escapes, the top-level keys); whether the object is
// valid JSON is decided once it is complete (ToolCallParser parses it).
#ifndef SHARDLM_COORDINATOR_TOOL_CALLS_CALL_OBJECT_SCANNER_H_
#define SHARDLM_COORDINATOR_TOOL_CALLS_CALL_OBJECT_SCANNER_H_

#include <cstddef>
#include <string>
#include <string_view>

namespace shardlm {

class CallObjectScanner {
 public:
  // Feeds text that continues the object (the first byte fed must be its
  // '{'). Returns how many bytes belong to the object: all of them, or up
  // to and including the closing '}' (then complete()). A scanner that
  // found a byte no JSON object can have there (e.g. a key that is not a
  // string) stops consuming and reports broken().
  size_t Feed(std::string_view text);

  bool complete() const { return phase_ == Phase::kDone; }
  bool broken() const { return phase_ == Phase::kBroken; }
  const std::string& text() const { return text_; }

  // The decoded "name" once its string value is complete; empty before.
  const std::string& name() const { return name_; }
  bool has_name() const { return has_name_; }
  // The arguments value's raw text written so far (grows as bytes arrive),
  // whether it is complete, and whether it is a JSON string (some models
  // write the arguments as an encoded string: only decodable once whole).
  std::string_view arguments_so_far() const;
  bool has_arguments() const { return args_begin_ != std::string::npos; }
  bool arguments_complete() const { return args_end_ != std::string::npos; }
  bool arguments_is_string() const { return args_is_string_; }

 private:
  // Where the scan is within the top-level object.
  enum class Phase { kOpen, kKey, kColon, kValueStart, kValue, kAfterValue, kDone, kBroken };

  void Step(char c);
  void EndValue(size_t end);  // the top-level value ends before `end`

  Phase phase_ = Phase::kOpen;
  std::string text_;
  int depth_ = 0;         // nesting, 1 inside the top-level object
  bool in_string_ = false;
  bool escape_ = false;
  size_t token_begin_ = 0;  // the current top-level key or value
  std::string key_;         // decoded key of the current value
  bool value_is_container_ = false;
  bool value_is_string_ = false;
  std::string name_;
  bool has_name_ = false;
  size_t args_begin_ = std::string::npos;
  size_t args_end_ = std::string::npos;
  bool args_is_string_ = false;
};

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_TOOL_CALLS_CALL_OBJECT_SCANNER_H_
