#include "coordinator/tool_calls/tool_request.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/base/field_error.h"
#include "coordinator/json_field.h"

namespace shardlm {
namespace {

using ojson = nlohmann::ordered_json;

using json_fields::Field;

// OpenAI's rule for function names.
bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
  });
}

absl::Status ParseTools(const ojson& tools, ToolRequest* out) {
  if (!tools.is_array()) return InvalidFieldError("tools", "must be an array of tools");
  for (size_t i = 0; i < tools.size(); ++i) {
    const std::string where = absl::StrCat("tools[", i, "]");
    const ojson& t = tools[i];
    const ojson* type = t.is_object() ? Field(t, "type") : nullptr;
    if (type == nullptr || *type != "function") {
      return InvalidFieldError(
          "tools", absl::StrCat(where, ".type must be \"function\" (the only kind of tool)"));
    }
    const ojson* f = Field(t, "function");
    if (f == nullptr || !f->is_object()) {
      return InvalidFieldError("tools", absl::StrCat(where, ".function must be an object"));
    }
    const ojson* name = Field(*f, "name");
    if (name == nullptr || !name->is_string() || !ValidName(name->get<std::string>())) {
      return InvalidFieldError(
          "tools", absl::StrCat(where,
                                ".function.name must be 1 to 64 letters, digits, '_' or '-'"));
    }
    ToolFunction fn;
    fn.name = name->get<std::string>();
    for (const ToolFunction& other : out->functions) {
      if (other.name == fn.name) {
        return InvalidFieldError("tools",
                                 absl::StrCat(where, ": the function '", fn.name,
                                              "' is defined twice"));
      }
    }
    const ojson* params = Field(*f, "parameters");
    if (params != nullptr && !params->is_object()) {
      return InvalidFieldError(
          "tools", absl::StrCat(where, ".function.parameters must be a JSON schema object"));
    }
    fn.parameters = params != nullptr
                        ? *params
                        : ojson{{"type", "object"}, {"properties", ojson::object()}};
    const ojson* desc = Field(*f, "description");
    if (desc != nullptr && !desc->is_string()) {
      return InvalidFieldError("tools",
                               absl::StrCat(where, ".function.description must be a string"));
    }
    out->functions.push_back(std::move(fn));
  }
  // An empty list is no tools (Llama 3's template would announce an empty
  // tool environment for `[]`).
  if (!tools.empty()) out->tools_json = tools.dump(-1, ' ', false, ojson::error_handler_t::replace);
  return absl::OkStatus();
}

absl::Status ParseChoice(const ojson& c, ToolRequest* out) {
  if (c.is_string()) {
    const std::string s = c.get<std::string>();
    if (s == "auto") {
      out->choice = ToolChoice::kAuto;
    } else if (s == "none") {
      out->choice = ToolChoice::kNone;
    } else if (s == "required") {
      out->choice = ToolChoice::kRequired;
    } else {
      return InvalidFieldError(
          "tool_choice", absl::StrCat("'", s, "' is not one of auto, none, required"));
    }
  } else {
    const ojson* type = c.is_object() ? Field(c, "type") : nullptr;
    const ojson* f = c.is_object() ? Field(c, "function") : nullptr;
    const ojson* name = f != nullptr && f->is_object() ? Field(*f, "name") : nullptr;
    if (type == nullptr || *type != "function" || name == nullptr || !name->is_string()) {
      return InvalidFieldError("tool_choice",
                               "must be \"auto\", \"none\", \"required\" or {\"type\": "
                               "\"function\", \"function\": {\"name\": \"...\"}}");
    }
    out->choice = ToolChoice::kNamed;
    out->choice_name = name->get<std::string>();
  }
  if ((out->choice == ToolChoice::kRequired || out->choice == ToolChoice::kNamed) &&
      out->functions.empty()) {
    return InvalidFieldError("tool_choice", "requires tools: the request offers none");
  }
  if (out->choice == ToolChoice::kNamed) {
    const std::vector<std::string> names = out->names();
    if (std::find(names.begin(), names.end(), out->choice_name) == names.end()) {
      return InvalidFieldError("tool_choice",
                               absl::StrCat("names the function '", out->choice_name,
                                            "', which is not in tools"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

const ToolFunction* ToolRequest::Forced() const {
  if (choice == ToolChoice::kRequired && functions.size() == 1) return &functions[0];
  if (choice != ToolChoice::kNamed) return nullptr;
  for (const ToolFunction& f : functions) {
    if (f.name == choice_name) return &f;
  }
  return nullptr;
}

std::vector<std::string> ToolRequest::names() const {
  std::vector<std::string> out;
  for (const ToolFunction& f : functions) out.push_back(f.name);
  return out;
}

absl::StatusOr<ToolRequest> ParseToolRequest(const ojson& body) {
  ToolRequest r;
  for (const char* legacy : {"functions", "function_call"}) {
    if (Field(body, legacy) != nullptr) {
      return InvalidFieldError(
          legacy, "the legacy function-calling fields are not supported: use tools and tool_choice");
    }
  }
  if (const ojson* tools = Field(body, "tools")) {
    if (absl::Status st = ParseTools(*tools, &r); !st.ok()) return st;
  }
  if (const ojson* choice = Field(body, "tool_choice")) {
    if (absl::Status st = ParseChoice(*choice, &r); !st.ok()) return st;
  }
  if (const ojson* parallel = Field(body, "parallel_tool_calls")) {
    if (!parallel->is_boolean()) {
      return InvalidFieldError("parallel_tool_calls", "must be true or false");
    }
    r.parallel = parallel->get<bool>();
  }
  return r;
}

}  // namespace shardlm
