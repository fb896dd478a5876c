#include "coordinator/tool_calls/call_object_scanner.h"

#include <nlohmann/json.hpp>

namespace shardlm {
namespace {

bool IsSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

// A complete JSON string literal, decoded; false if it is not one.
bool DecodeString(std::string_view literal, std::string* out) {
  const nlohmann::json j = nlohmann::json::parse(literal, nullptr, /*allow_exceptions=*/false);
  if (!j.is_string()) return false;
  *out = j.get<std::string>();
  return true;
}

bool IsArgumentsKey(const std::string& key) { return key == "arguments" || key == "parameters"; }

}  // namespace

std::string_view CallObjectScanner::arguments_so_far() const {
  if (args_begin_ == std::string::npos) return {};
  const size_t end = args_end_ == std::string::npos ? text_.size() : args_end_;
  return std::string_view(text_).substr(args_begin_, end - args_begin_);
}

size_t CallObjectScanner::Feed(std::string_view text) {
  size_t used = 0;
  while (used < text.size() && phase_ != Phase::kDone && phase_ != Phase::kBroken) {
    text_ += text[used];
    Step(text[used]);
    if (phase_ == Phase::kBroken) {
      text_.pop_back();  // the byte is not the object's
      break;
    }
    ++used;
  }
  return used;
}

void CallObjectScanner::EndValue(size_t end) {
  if (key_ == "name" && value_is_string_) {
    has_name_ = DecodeString(std::string_view(text_).substr(token_begin_, end - token_begin_),
                             &name_);
  } else if (IsArgumentsKey(key_) && args_begin_ == token_begin_) {
    // Trailing spaces after a number or literal are not the value's.
    while (end > args_begin_ && IsSpace(text_[end - 1])) --end;
    args_end_ = end;
  }
  phase_ = Phase::kAfterValue;
}

void CallObjectScanner::Step(char c) {
  const size_t pos = text_.size() - 1;  // where c is
  if (in_string_) {
    if (escape_) {
      escape_ = false;
    } else if (c == '\\') {
      escape_ = true;
    } else if (c == '"') {
      in_string_ = false;
      if (depth_ == 1 && phase_ == Phase::kKey) {
        if (!DecodeString(std::string_view(text_).substr(token_begin_, pos + 1 - token_begin_),
                          &key_)) {
          phase_ = Phase::kBroken;
          return;
        }
        phase_ = Phase::kColon;
      } else if (depth_ == 1 && phase_ == Phase::kValue && value_is_string_) {
        EndValue(pos + 1);
      }
    }
    return;
  }
  switch (phase_) {
    case Phase::kOpen:
      if (c != '{') {
        phase_ = Phase::kBroken;
        return;
      }
      depth_ = 1;
      phase_ = Phase::kKey;
      return;
    case Phase::kKey:
      if (IsSpace(c)) return;
      if (c == '}') {  // {} or a trailing comma: let the final parse judge
        depth_ = 0;
        phase_ = Phase::kDone;
        return;
      }
      if (c != '"') {
        phase_ = Phase::kBroken;
        return;
      }
      token_begin_ = pos;
      in_string_ = true;
      return;
    case Phase::kColon:
      if (IsSpace(c)) return;
      phase_ = c == ':' ? Phase::kValueStart : Phase::kBroken;
      return;
    case Phase::kValueStart:
      if (IsSpace(c)) return;
      if (c == ',' || c == '}' || c == ']' || c == ':') {
        phase_ = Phase::kBroken;
        return;
      }
      token_begin_ = pos;
      value_is_string_ = c == '"';
      value_is_container_ = c == '{' || c == '[';
      if (IsArgumentsKey(key_) && args_begin_ == std::string::npos) {
        args_begin_ = pos;
        args_is_string_ = value_is_string_;
      }
      phase_ = Phase::kValue;
      if (value_is_string_) in_string_ = true;
      if (value_is_container_) ++depth_;
      return;
    case Phase::kValue:
      if (c == '"') {
        in_string_ = true;
        return;
      }
      if (c == '{' || c == '[') {
        ++depth_;
        return;
      }
      if (c == '}' || c == ']') {
        if (depth_ > 1) {
          --depth_;
          if (depth_ == 1 && value_is_container_) EndValue(pos + 1);
          return;
        }
        // A scalar value ends at the object's '}'.
        if (c == ']') {
          phase_ = Phase::kBroken;
          return;
        }
        EndValue(pos);
        depth_ = 0;
        phase_ = Phase::kDone;
        return;
      }
      if (c == ',' && depth_ == 1) {
        EndValue(pos);
        phase_ = Phase::kKey;
      }
      return;
    case Phase::kAfterValue:
      if (IsSpace(c)) return;
      if (c == ',') {
        phase_ = Phase::kKey;
      } else if (c == '}') {
        depth_ = 0;
        phase_ = Phase::kDone;
      } else {
        phase_ = Phase::kBroken;
      }
      return;
    case Phase::kDone:
    case Phase::kBroken:
      return;
  }
}

}  // namespace shardlm
