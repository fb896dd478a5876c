// A model's reply -> text content and function calls, in the style of the
// template that prompted it (tool_call_format.h), as the reply is generated:
// Feed() takes each new piece of text and tells what can be sent to a
// streaming client now (content, a call's id and name, pieces of its
// arguments); after Finish(), content() and calls() are the whole reply's.
//
// Text that could still become a call's opening is held back until it is
// decided; a call is announced once its name is complete and is one of the
// offered functions, and its arguments then stream as the raw JSON the
// model writes. Malformed calls never fail the request: a call that does
// not parse as JSON, names an unknown function or is cut off stays content
// in the final result (a stream may already have announced it: it cannot
// take that back, and says `finish_reason: "tool_calls"`).
#ifndef SHARDLM_COORDINATOR_TOOL_CALLS_TOOL_CALL_PARSER_H_
#define SHARDLM_COORDINATOR_TOOL_CALLS_TOOL_CALL_PARSER_H_

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "coordinator/chat_template.h"
#include "coordinator/tool_calls/call_object_scanner.h"
#include "coordinator/tool_calls/tool_call_format.h"

namespace shardlm {

// One thing a stream can send now.
struct ToolCallDelta {
  enum class Kind { kContent, kCallStart, kArguments };
  Kind kind = Kind::kContent;
  int index = 0;     // the call's position among this reply's calls
  std::string text;  // kContent: text; kArguments: the next piece of the JSON
  std::string id;    // kCallStart
  std::string name;  // kCallStart
};

struct ToolCallParserOptions {
  ToolCallStyle style = ToolCallStyle::kHermes;
  std::vector<std::string> function_names;  // the offered functions; others stay content
  bool parallel = true;                     // false: calls after the first are dropped
  std::function<std::string()> make_id;     // a fresh call id
};

class ToolCallParser {
 public:
  explicit ToolCallParser(ToolCallParserOptions options);

  void Feed(std::string_view text, std::vector<ToolCallDelta>* out);
  // The reply ended: releases held text (a cut-off call becomes content).
  void Finish(std::vector<ToolCallDelta>* out);

  // After Finish: the text outside valid calls (whitespace only -> "" when
  // there are calls) and the valid calls, arguments as JSON text.
  const std::string& content() const { return content_; }
  const std::vector<ChatToolCall>& calls() const { return calls_; }
  // Calls announced to a stream so far.
  int announced() const { return announced_; }

 private:
  enum class State {
    kText,         // content; watching for an opening
    kLeadIn,       // Llama 3: the reply's start, not yet known to be JSON or text
    kPlain,        // Llama 3: the reply is text
    kBeforeObject, // after an opening: spaces, Mistral's '[', then '{'
    kObject,       // inside a call's JSON object
    kAfterObject,  // after a call: its closing, a separator or another call
    kDropping,     // parallel calls off and one made: the rest is ignored
  };

  // One step on the unread input `buf_`; false when it needs more input
  // (or, at the end, when nothing is left to do).
  bool Step(bool final, std::vector<ToolCallDelta>* out);
  bool StepText(bool final, std::vector<ToolCallDelta>* out);
  bool StepLeadIn(bool final, std::vector<ToolCallDelta>* out);
  bool StepBeforeObject(bool final, std::vector<ToolCallDelta>* out);
  bool StartLlama3Call(bool final);
  bool StepObject(bool final, std::vector<ToolCallDelta>* out);
  bool StepAfterObject(bool final, std::vector<ToolCallDelta>* out);
  void Run(bool final, std::vector<ToolCallDelta>* out);

  void EmitContent(std::string_view text, std::vector<ToolCallDelta>* out);
  void Announce(std::vector<ToolCallDelta>* out);  // name known: the call start, arguments so far
  void ObjectDone(std::vector<ToolCallDelta>* out);
  // The held call text was not a call: it is content after all.
  void Revert(std::vector<ToolCallDelta>* out);
  bool Known(const std::string& name) const;

  ToolCallParserOptions options_;
  std::string_view open_;  // the style's opening marker
  State state_;
  std::string buf_;        // text fed and not yet decided
  std::string spaces_;     // whitespace held back in kText (dropped if calls follow)
  std::string call_text_;  // the raw text of the call being read (its opening included)
  CallObjectScanner scanner_;
  bool in_array_ = false;       // Mistral: inside [TOOL_CALLS][...]
  bool announced_call_ = false; // the current call was announced
  size_t args_sent_ = 0;        // bytes of the current call's arguments streamed
  int announced_ = 0;
  std::string current_id_;
  bool finished_ = false;
  std::string content_;
  std::vector<ChatToolCall> calls_;
};

}  // namespace shardlm

#endif  // SHARDLM_COORDINATOR_TOOL_CALLS_TOOL_CALL_PARSER_H_
