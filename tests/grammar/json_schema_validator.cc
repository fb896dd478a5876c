#include "tests/grammar/json_schema_validator.h"

#include <cmath>
#include <regex>

namespace shardlm::testing {
namespace {

using json = nlohmann::json;

size_t CodePoints(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

bool IsType(const json& v, const std::string& t) {
  if (t == "object") return v.is_object();
  if (t == "array") return v.is_array();
  if (t == "string") return v.is_string();
  if (t == "boolean") return v.is_boolean();
  if (t == "null") return v.is_null();
  if (t == "number") return v.is_number();
  if (t == "integer") {
    return v.is_number_integer() ||
           (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>());
  }
  return false;
}

bool FormatOk(const std::string& format, const std::string& s) {
  static const std::regex date(R"(\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01]))");
  static const std::regex time(R"(([01]\d|2[0-3]):[0-5]\d:[0-5]\d(\.\d+)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d))");
  static const std::regex uuid(
      R"([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})");
  if (format == "date") return std::regex_match(s, date);
  if (format == "time") return std::regex_match(s, time);
  if (format == "uuid") return std::regex_match(s, uuid);
  if (format == "date-time") {
    const size_t t = s.find_first_of("Tt");
    return t != std::string::npos && std::regex_match(s.substr(0, t), date) &&
           std::regex_match(s.substr(t + 1), time);
  }
  return true;  // other formats are annotations
}

class Validator {
 public:
  explicit Validator(const json& root) : root_(root) {}

  std::string Check(const json& s, const json& v, const std::string& at) {
    if (s.is_boolean()) return s.get<bool>() ? "" : at + ": schema false";
    if (auto it = s.find("$ref"); it != s.end()) {
      const std::string r = *it;
      if (r == "#") return Check(root_, v, at);
      for (const char* c : {"$defs", "definitions"}) {
        const std::string prefix = std::string("#/") + c + "/";
        if (r.rfind(prefix, 0) == 0) return Check(root_[c][r.substr(prefix.size())], v, at);
      }
      return at + ": unresolvable $ref " + r;
    }
    if (auto it = s.find("const"); it != s.end() && *it != v) return at + ": not the const";
    if (auto it = s.find("enum"); it != s.end()) {
      bool found = false;
      for (const json& e : *it) found |= e == v;
      if (!found) return at + ": not in enum";
    }
    if (auto it = s.find("type"); it != s.end()) {
      bool ok = false;
      if (it->is_string()) ok = IsType(v, *it);
      for (const json& t : it->is_array() ? *it : json::array()) ok |= IsType(v, t);
      if (!ok) return at + ": wrong type for " + it->dump() + ": " + v.dump();
    }
    if (auto it = s.find("anyOf"); it != s.end()) {
      bool ok = false;
      for (const json& b : *it) ok |= Check(b, v, at).empty();
      if (!ok) return at + ": fits no anyOf branch";
    }
    if (auto it = s.find("oneOf"); it != s.end()) {
      int n = 0;
      for (const json& b : *it) n += Check(b, v, at).empty();
      if (n != 1) return at + ": fits " + std::to_string(n) + " oneOf branches";
    }
    if (auto it = s.find("allOf"); it != s.end()) {
      for (const json& b : *it) {
        if (std::string e = Check(b, v, at); !e.empty()) return e;
      }
    }
    if (v.is_string()) {
      const std::string str = v;
      if (s.contains("minLength") && CodePoints(str) < s["minLength"].get<size_t>()) {
        return at + ": shorter than minLength";
      }
      if (s.contains("maxLength") && CodePoints(str) > s["maxLength"].get<size_t>()) {
        return at + ": longer than maxLength";
      }
      if (s.contains("format") && !FormatOk(s["format"], str)) return at + ": bad format";
    }
    if (v.is_array()) {
      if (s.contains("minItems") && v.size() < s["minItems"].get<size_t>()) {
        return at + ": fewer than minItems";
      }
      if (s.contains("maxItems") && v.size() > s["maxItems"].get<size_t>()) {
        return at + ": more than maxItems";
      }
      size_t first = 0;
      if (auto it = s.find("prefixItems"); it != s.end()) {
        for (; first < it->size() && first < v.size(); ++first) {
          if (std::string e = Check((*it)[first], v[first], at + "/" + std::to_string(first));
              !e.empty()) {
            return e;
          }
        }
      }
      if (auto it = s.find("items"); it != s.end()) {
        for (size_t i = first; i < v.size(); ++i) {
          if (std::string e = Check(*it, v[i], at + "/" + std::to_string(i)); !e.empty()) return e;
        }
      }
    }
    if (v.is_object()) {
      for (const json& r : s.value("required", json::array())) {
        if (!v.contains(r.get<std::string>())) return at + ": missing " + r.dump();
      }
      const json props = s.value("properties", json::object());
      for (const auto& [k, x] : v.items()) {
        if (props.contains(k)) {
          if (std::string e = Check(props[k], x, at + "/" + k); !e.empty()) return e;
        } else if (s.contains("additionalProperties")) {
          if (std::string e = Check(s["additionalProperties"], x, at + "/" + k); !e.empty()) {
            return e;
          }
        }
      }
    }
    return "";
  }

 private:
  const json& root_;
};

}  // namespace

std::string ValidateJsonSchema(const json& schema, const json& value) {
  return Validator(schema).Check(schema, value, "#");
}

}  // namespace shardlm::testing
