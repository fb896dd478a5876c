#include "coordinator/tool_calls/tool_call_parser.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <utility>


namespace shardlm {
namespace {

constexpr std::string_view kHermesClose = "</tool_call>";
constexpr std::string_view kPythonTag = "<|python_tag|>";  // Llama 3.1's call prefix

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

bool StartsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

// Bytes at the end of `text` that could be the start of `marker` (held back
// until the next piece decides).
size_t PartialMarkerAtEnd(std::string_view text, std::string_view marker) {
  for (size_t n = std::min(text.size(), marker.size() - 1); n > 0; --n) {
    if (text.substr(text.size() - n) == marker.substr(0, n)) return n;
  }
  return 0;
}

// `text` is a proper prefix of `marker`: still undecided.
bool IsProperPrefix(std::string_view text, std::string_view marker) {
  return text.size() < marker.size() && marker.substr(0, text.size()) == text;
}

// Drops leading whitespace from `buf`; true if any is left.
bool SkipSpaces(std::string* buf) {
  size_t i = 0;
  while (i < buf->size() && IsSpace((*buf)[i])) ++i;
  buf->erase(0, i);
  return !buf->empty();
}

}  // namespace

ToolCallParser::ToolCallParser(ToolCallParserOptions options)
    : options_(std::move(options)),
      open_(ToolCallOpenMarker(options_.style)),
      state_(options_.style == ToolCallStyle::kLlama3Json ? State::kLeadIn : State::kText) {}

bool ToolCallParser::Known(const std::string& name) const {
  return std::find(options_.function_names.begin(), options_.function_names.end(), name) !=
         options_.function_names.end();
}

void ToolCallParser::Feed(std::string_view text, std::vector<ToolCallDelta>* out) {
  if (finished_) return;
  buf_.append(text.data(), text.size());
  Run(/*final=*/false, out);
}

void ToolCallParser::Finish(std::vector<ToolCallDelta>* out) {
  if (finished_) return;
  Run(/*final=*/true, out);
  if (state_ == State::kBeforeObject || state_ == State::kObject) Revert(out);  // cut off
  Run(/*final=*/true, out);
  finished_ = true;
  if (calls_.empty() && announced_ == 0 && !spaces_.empty()) {
    content_ += spaces_;
    out->push_back({ToolCallDelta::Kind::kContent, 0, spaces_, "", ""});
  }
  spaces_.clear();
}

void ToolCallParser::Run(bool final, std::vector<ToolCallDelta>* out) {
  while (Step(final, out)) {
  }
}

bool ToolCallParser::Step(bool final, std::vector<ToolCallDelta>* out) {
  switch (state_) {
    case State::kText:
      return StepText(final, out);
    case State::kLeadIn:
      return StepLeadIn(final, out);
    case State::kPlain:
      EmitContent(buf_, out);
      buf_.clear();
      return false;
    case State::kBeforeObject:
      return StepBeforeObject(final, out);
    case State::kObject:
      return StepObject(final, out);
    case State::kAfterObject:
      return StepAfterObject(final, out);
    case State::kDropping:
      buf_.clear();
      return false;
  }
  return false;
}

void ToolCallParser::EmitContent(std::string_view text, std::vector<ToolCallDelta>* out) {
  if (text.empty()) return;
  // Trailing whitespace waits for what follows: before or between calls it
  // is not content (and the result must not depend on how the text was cut).
  size_t keep = text.size();
  while (keep > 0 && IsSpace(text[keep - 1])) --keep;
  if (keep == 0) {
    spaces_.append(text.data(), text.size());
    return;
  }
  std::string piece = std::move(spaces_);
  spaces_.assign(text.data() + keep, text.size() - keep);
  piece.append(text.data(), keep);
  content_ += piece;
  out->push_back({ToolCallDelta::Kind::kContent, 0, std::move(piece), "", ""});
}

bool ToolCallParser::StepText(bool final, std::vector<ToolCallDelta>* out) {
  if (buf_.empty()) return false;
  const size_t pos = buf_.find(open_);
  if (pos != std::string::npos) {
    EmitContent(std::string_view(buf_).substr(0, pos), out);
    call_text_ = std::string(open_);
    buf_.erase(0, pos + open_.size());
    in_array_ = false;
    state_ = State::kBeforeObject;
    return true;
  }
  const size_t hold = final ? 0 : PartialMarkerAtEnd(buf_, open_);
  EmitContent(std::string_view(buf_).substr(0, buf_.size() - hold), out);
  buf_.erase(0, buf_.size() - hold);
  return false;
}

bool ToolCallParser::StepLeadIn(bool final, std::vector<ToolCallDelta>* out) {
  size_t i = 0;
  while (i < buf_.size() && IsSpace(buf_[i])) ++i;
  EmitContent(std::string_view(buf_).substr(0, i), out);  // held as spaces
  buf_.erase(0, i);
  if (buf_.empty()) return false;
  return StartLlama3Call(final);
}

// At a non-space byte where a Llama 3 call may start: a JSON object, or
// <|python_tag|> before one; anything else is plain text.
bool ToolCallParser::StartLlama3Call(bool final) {
  if (buf_[0] == '{') {
    call_text_.clear();
    scanner_ = CallObjectScanner();
    state_ = State::kObject;
    return true;
  }
  if (StartsWith(buf_, kPythonTag)) {
    call_text_ = std::string(kPythonTag);
    buf_.erase(0, kPythonTag.size());
    state_ = State::kBeforeObject;
    return true;
  }
  if (!final && IsProperPrefix(buf_, kPythonTag)) return false;
  state_ = State::kPlain;
  return true;
}

bool ToolCallParser::StepBeforeObject(bool final, std::vector<ToolCallDelta>* out) {
  size_t i = 0;
  while (i < buf_.size() && IsSpace(buf_[i])) ++i;
  call_text_.append(buf_, 0, i);
  buf_.erase(0, i);
  if (buf_.empty()) return false;
  if (options_.style == ToolCallStyle::kMistral && !in_array_ && buf_[0] == '[') {
    in_array_ = true;
    call_text_ += '[';
    buf_.erase(0, 1);
    return true;
  }
  if (buf_[0] == '{') {
    scanner_ = CallObjectScanner();
    state_ = State::kObject;
    return true;
  }
  Revert(out);  // an opening not followed by a call
  return true;
}

bool ToolCallParser::StepObject(bool final, std::vector<ToolCallDelta>* out) {
  if (buf_.empty()) return false;
  const size_t used = scanner_.Feed(buf_);
  buf_.erase(0, used);
  if (scanner_.broken()) {
    Revert(out);
    return true;
  }
  if (!announced_call_ && scanner_.has_name()) {
    if (!Known(scanner_.name())) {
      Revert(out);  // not one of the offered functions: text
      return true;
    }
    Announce(out);
  }
  if (announced_call_ && !scanner_.arguments_is_string()) {
    const std::string_view args = scanner_.arguments_so_far();
    if (args.size() > args_sent_) {
      out->push_back({ToolCallDelta::Kind::kArguments, announced_ - 1,
                      std::string(args.substr(args_sent_)), "", ""});
      args_sent_ = args.size();
    }
  }
  if (scanner_.complete()) {
    ObjectDone(out);
    return true;
  }
  return used > 0;
}

void ToolCallParser::Announce(std::vector<ToolCallDelta>* out) {
  current_id_ = options_.make_id ? options_.make_id() : std::string();
  out->push_back({ToolCallDelta::Kind::kCallStart, announced_, "", current_id_, scanner_.name()});
  ++announced_;
  announced_call_ = true;
  args_sent_ = 0;
}

void ToolCallParser::ObjectDone(std::vector<ToolCallDelta>* out) {
  const nlohmann::ordered_json j = nlohmann::ordered_json::parse(scanner_.text(), nullptr,
                                                                 /*allow_exceptions=*/false);
  bool valid = announced_call_ && j.is_object();
  std::string arguments;
  if (valid) {
    if (!scanner_.has_arguments()) {
      arguments = "{}";
    } else if (scanner_.arguments_is_string()) {
      const nlohmann::ordered_json& a = j.contains("arguments") ? j["arguments"] : j["parameters"];
      valid = a.is_string();
      if (valid) arguments = a.get<std::string>();
    } else {
      arguments = std::string(scanner_.arguments_so_far());
    }
    // OpenAI's arguments are always a JSON object.
    valid = valid && nlohmann::json::parse(arguments, nullptr, /*allow_exceptions=*/false).is_object();
  }
  if (!valid) {
    Revert(out);
    return;
  }
  // What the stream has not seen yet: arguments that came as a string, or
  // none at all.
  if (args_sent_ == 0 && !arguments.empty()) {
    out->push_back({ToolCallDelta::Kind::kArguments, announced_ - 1, arguments, "", ""});
  }
  calls_.push_back({current_id_, scanner_.name(), std::move(arguments)});
  call_text_.clear();
  scanner_ = CallObjectScanner();
  announced_call_ = false;
  args_sent_ = 0;
  state_ = options_.parallel ? State::kAfterObject : State::kDropping;
}

bool ToolCallParser::StepAfterObject(bool final, std::vector<ToolCallDelta>* out) {
  switch (options_.style) {
    case ToolCallStyle::kHermes:
      if (!SkipSpaces(&buf_)) return false;
      if (StartsWith(buf_, kHermesClose)) {
        buf_.erase(0, kHermesClose.size());
        state_ = State::kText;
        return true;
      }
      if (!final && IsProperPrefix(buf_, kHermesClose)) return false;
      state_ = State::kText;  // no closing tag: what follows is text again
      return true;
    case ToolCallStyle::kMistral:
      if (!SkipSpaces(&buf_)) return false;
      if (in_array_ && buf_[0] == ',') {
        buf_.erase(0, 1);
        call_text_.clear();
        state_ = State::kBeforeObject;
        return true;
      }
      if (in_array_ && buf_[0] == ']') buf_.erase(0, 1);
      in_array_ = false;
      state_ = State::kText;
      return true;
    case ToolCallStyle::kLlama3Json:
      while (!buf_.empty() && (IsSpace(buf_[0]) || buf_[0] == ';')) buf_.erase(0, 1);
      if (buf_.empty()) return false;
      return StartLlama3Call(final);
  }
  return false;
}

void ToolCallParser::Revert(std::vector<ToolCallDelta>* out) {
  const std::string raw = call_text_ + scanner_.text();
  if (announced_call_) {
    content_ += raw;  // the stream announced it; the final reply keeps it as text
  } else {
    EmitContent(raw, out);
  }
  call_text_.clear();
  scanner_ = CallObjectScanner();
  announced_call_ = false;
  args_sent_ = 0;
  in_array_ = false;
  state_ = options_.style == ToolCallStyle::kLlama3Json ? State::kPlain : State::kText;
}

}  // namespace shardlm
