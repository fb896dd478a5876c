#include "coordinator/grammar/json_schema_to_grammar.h"

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "coordinator/grammar/gbnf_parser.h"

namespace shardlm {
namespace {

using json = nlohmann::ordered_json;  // properties in the order the schema lists them

// Rules every JSON grammar may use. Whitespace is at most one space after
// ':' and ',' (compact output; a model cannot stall on whitespace), numbers
// have at most 16 integer, 15 fraction and 2 exponent digits, so every value
// ends and fits a double (any JSON parser reads it).
constexpr std::pair<const char*, const char*> kPrimitives[] = {
    {"space", R"(" "?)"},
    {"char", R"([^"\\\x7F\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4}))"},
    {"string", R"("\"" char* "\"")"},
    {"boolean", R"("true" | "false")"},
    {"null", R"("null")"},
    {"integer", R"("-"? ([0-9] | [1-9] [0-9]{0,15}))"},
    {"number", R"("-"? ([0-9] | [1-9] [0-9]{0,15}) ("." [0-9]{1,15})? ([eE] [-+]? [0-9]{1,2})?)"},
    {"value", R"(object | array | string | number | boolean | null)"},
    {"object", R"("{" ( string ":" space value ( "," space string ":" space value )* )? "}")"},
    {"array", R"("[" ( value ( "," space value )* )? "]")"},
    // RFC 3339 (JSON Schema's date, time, date-time) and RFC 4122 text.
    {"date", R"([0-9]{4} "-" ( "0" [1-9] | "1" [0-2] ) "-" ( "0" [1-9] | [1-2] [0-9] | "3" [0-1] ))"},
    {"time", R"(( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ":" [0-5] [0-9] ( "." [0-9]{1,6} )? ( "Z" | [+-] ( [01] [0-9] | "2" [0-3] ) ":" [0-5] [0-9] ))"},
    {"uuid", R"([0-9a-f]{8} "-" [0-9a-f]{4} "-" [0-9a-f]{4} "-" [0-9a-f]{4} "-" [0-9a-f]{12})"},
};

// Validation keywords the converter cannot honour: a schema using them is
// refused rather than producing output it would not accept.
const std::set<std::string>& UnsupportedKeywords() {
  static const auto* k = new std::set<std::string>{
      "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf",
      "minProperties", "maxProperties", "patternProperties", "propertyNames",
      "dependentRequired", "dependentSchemas", "dependencies", "if", "then", "else", "not",
      "contains", "minContains", "maxContains", "uniqueItems", "unevaluatedProperties",
      "unevaluatedItems", "$dynamicRef", "$recursiveRef", "contentSchema"};
  return *k;
}

std::string Sanitize(std::string_view name) {
  std::string out;
  for (char c : name) {
    const bool keep = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    out += keep ? c : (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : '-';
  }
  // Returned rather than assigned: GCC 12 flags `out = "x"` here with a
  // false -Wrestrict.
  return out.empty() ? std::string("x") : out;
}

std::string JsonPointerEscape(std::string_view key) {
  std::string out;
  for (char c : key) out += c == '~' ? "~0" : c == '/' ? "~1" : std::string(1, c);
  return out;
}

}  // namespace

// Turns one schema (and what it references) into rules of a builder.
class SchemaConverter {
 public:
  SchemaConverter(SchemaGrammarBuilder* b, const json& root) : b_(b), root_(root) {}

  // The GBNF expression of values fitting `s` (at JSON pointer `path`).
  absl::StatusOr<std::string> Visit(const json& s, const std::string& path,
                                    const std::string& name) {
    if (++depth_ > kMaxDepth) {
      return Error(path, "", "nested too deeply");
    }
    absl::StatusOr<std::string> out = VisitInner(s, path, name);
    --depth_;
    return out;
  }

 private:
  static constexpr int kMaxDepth = 64;

  static absl::Status Error(const std::string& path, const std::string& keyword,
                            const std::string& what) {
    return absl::InvalidArgumentError(absl::StrCat(
        keyword.empty() ? "" : absl::StrCat("keyword '", keyword, "' "), "at '",
        path.empty() ? "#" : absl::StrCat("#", path), "': ", what));
  }

  std::string Primitive(const std::string& name) {
    for (const auto& [n, body] : kPrimitives) {
      if (name == n) {
        b_->rules_.emplace(n, body);
        // Dependencies of the composite primitives.
        if (name == "string") Primitive("char");
        if (name == "value" || name == "object" || name == "array") {
          for (const char* dep : {"space", "char", "string", "boolean", "null", "number",
                                  "value", "object", "array"}) {
            b_->rules_.emplace(dep, Body(dep));
          }
        }
        break;
      }
    }
    return name;
  }
  static std::string Body(const std::string& name) {
    for (const auto& [n, body] : kPrimitives) {
      if (name == n) return body;
    }
    return "";
  }

  // A fresh rule name based on `name` (the body is set later).
  std::string NewRule(const std::string& name) {
    std::string n = Sanitize(name);
    for (int i = 1; b_->rules_.count(n) != 0 || Body(n) != "" || n == "root"; ++i) {
      n = absl::StrCat(Sanitize(name), "-", i);
    }
    b_->rules_[n] = "";
    return n;
  }
  std::string AddRule(const std::string& name, std::string body) {
    const std::string n = NewRule(name);
    b_->rules_[n] = std::move(body);
    return n;
  }

  absl::StatusOr<std::string> VisitInner(const json& s, const std::string& path,
                                         const std::string& name) {
    if (s.is_boolean()) {
      if (s.get<bool>()) return Primitive("value");
      return Error(path, "", "the schema false admits no value");
    }
    if (!s.is_object()) return Error(path, "", "a schema must be an object or a boolean");
    for (const auto& [key, unused] : s.items()) {
      if (UnsupportedKeywords().count(key) != 0) {
        return Error(path, key, "is not supported by structured output");
      }
    }
    if (auto it = s.find("$ref"); it != s.end()) return Ref(*it, path);
    if (auto it = s.find("const"); it != s.end()) return GbnfLiteral(it->dump());
    if (auto it = s.find("enum"); it != s.end()) {
      if (!it->is_array() || it->empty()) return Error(path, "enum", "must be a non-empty array");
      std::vector<std::string> alts;
      for (const json& v : *it) alts.push_back(GbnfLiteral(v.dump()));
      return absl::StrCat("( ", absl::StrJoin(alts, " | "), " )");
    }
    for (const char* key : {"anyOf", "oneOf"}) {
      if (auto it = s.find(key); it != s.end()) {
        if (!it->is_array() || it->empty()) return Error(path, key, "must be a non-empty array");
        std::vector<std::string> alts;
        for (size_t i = 0; i < it->size(); ++i) {
          // Keywords beside anyOf (a shared "type", "description") apply to
          // every branch: merge them in.
          json branch = (*it)[i];
          if (branch.is_object()) {
            for (const auto& [k, v] : s.items()) {
              if (k != key && !branch.contains(k)) branch[k] = v;
            }
          }
          absl::StatusOr<std::string> alt =
              Visit(branch, absl::StrCat(path, "/", key, "/", i), absl::StrCat(name, "-", i));
          if (!alt.ok()) return alt.status();
          alts.push_back(*alt);
        }
        return AddRule(name, absl::StrJoin(alts, " | "));
      }
    }
    if (auto it = s.find("allOf"); it != s.end()) {
      if (!it->is_array() || it->size() != 1) {
        return Error(path, "allOf", "only an allOf of exactly one schema is supported");
      }
      return Visit((*it)[0], path + "/allOf/0", name);
    }
    json type = s.contains("type") ? s["type"] : json();
    if (type.is_null()) {
      if (s.contains("properties") || s.contains("additionalProperties") ||
          s.contains("required")) {
        type = "object";
      } else if (s.contains("items") || s.contains("prefixItems") || s.contains("minItems") ||
                 s.contains("maxItems")) {
        type = "array";
      } else if (s.contains("minLength") || s.contains("maxLength") || s.contains("format")) {
        type = "string";
      } else {
        return Primitive("value");
      }
    }
    if (type.is_array()) {
      if (type.empty()) return Error(path, "type", "an empty list admits no value");
      std::vector<std::string> alts;
      for (const json& t : type) {
        json one = s;
        one["type"] = t;
        absl::StatusOr<std::string> alt = Visit(one, path, name);
        if (!alt.ok()) return alt.status();
        alts.push_back(*alt);
      }
      return AddRule(name, absl::StrJoin(alts, " | "));
    }
    if (!type.is_string()) return Error(path, "type", "must be a string or a list of strings");
    const std::string t = type.get<std::string>();
    if (t == "object") return Object(s, path, name);
    if (t == "array") return Array(s, path, name);
    if (t == "string") return String(s, path, name);
    if (t == "integer" || t == "number" || t == "boolean" || t == "null") return Primitive(t);
    return Error(path, "type", absl::StrCat("unknown type '", t, "'"));
  }

  absl::StatusOr<std::string> Ref(const json& ref, const std::string& path) {
    if (!ref.is_string()) return Error(path, "$ref", "must be a string");
    const std::string r = ref.get<std::string>();
    if (auto it = refs_.find(r); it != refs_.end()) return it->second;
    const json* target = nullptr;
    std::string def_name = "root-ref";
    if (r == "#") {
      target = &root_;
    } else {
      for (const char* prefix : {"#/$defs/", "#/definitions/"}) {
        const std::string p(prefix);
        if (r.rfind(p, 0) == 0) {
          const std::string key = r.substr(p.size());
          const std::string container = p.substr(2, p.size() - 3);
          if (root_.contains(container) && root_[container].is_object() &&
              root_[container].contains(key)) {
            target = &root_[container][key];
            def_name = key;
          }
        }
      }
    }
    if (target == nullptr) {
      return Error(path, "$ref",
                   absl::StrCat("'", r, "' is not \"#\" or a local #/$defs/NAME that exists"));
    }
    // Name the rule before visiting, so recursive references resolve to it.
    const std::string rule = NewRule(def_name);
    refs_[r] = rule;
    absl::StatusOr<std::string> body = Visit(*target, r.substr(1), def_name);
    if (!body.ok()) return body.status();
    b_->rules_[rule] = *body;
    return rule;
  }

  absl::StatusOr<std::string> Object(const json& s, const std::string& path,
                                     const std::string& name) {
    const json empty = json::object();
    const json& props = s.contains("properties") ? s["properties"] : empty;
    if (!props.is_object()) return Error(path, "properties", "must be an object");
    std::vector<std::string> required;
    if (auto it = s.find("required"); it != s.end()) {
      if (!it->is_array()) return Error(path, "required", "must be an array of names");
      for (const json& r : *it) {
        if (!r.is_string()) return Error(path, "required", "must be an array of names");
        if (std::find(required.begin(), required.end(), r.get<std::string>()) == required.end()) {
          required.push_back(r.get<std::string>());
        }
      }
    }
    const json* additional = s.contains("additionalProperties") ? &s["additionalProperties"]
                                                                 : nullptr;
    // "key": value pairs as llama.cpp orders them: the required ones first,
    // in the order "properties" lists them (then any required key it does
    // not describe), then the optional ones in that order.
    auto pair = [&](const std::string& key, const json& sub) -> absl::StatusOr<std::string> {
      absl::StatusOr<std::string> v = Visit(
          sub, absl::StrCat(path, "/properties/", JsonPointerEscape(key)), name + "-" + key);
      if (!v.ok()) return v.status();
      Primitive("space");
      return absl::StrCat(GbnfLiteral(json(key).dump()), " \":\" space ", *v);
    };
    std::vector<std::string> req, opt;
    for (const auto& [key, sub] : props.items()) {
      if (std::find(required.begin(), required.end(), key) == required.end()) continue;
      absl::StatusOr<std::string> p = pair(key, sub);
      if (!p.ok()) return p.status();
      req.push_back(*p);
    }
    for (const std::string& key : required) {
      if (props.contains(key)) {
        continue;
      } else if (additional != nullptr && additional->is_boolean() && !additional->get<bool>()) {
        return Error(path, "required",
                     absl::StrCat("'", key, "' is required but additionalProperties is false"));
      } else {
        // Required but not described: any value fits.
        req.push_back(absl::StrCat(GbnfLiteral(json(key).dump()), " \":\" space ", Primitive("value")));
      }
    }
    for (const auto& [key, sub] : props.items()) {
      if (std::find(required.begin(), required.end(), key) != required.end()) continue;
      absl::StatusOr<std::string> p = pair(key, sub);
      if (!p.ok()) return p.status();
      opt.push_back(*p);
    }
    // A free-form map (additionalProperties true or a schema, no
    // properties): any keys. With properties listed, only those are
    // generated (a subset of what the schema allows, always valid).
    if (props.empty() && required.empty() &&
        (additional == nullptr || !additional->is_boolean() || additional->get<bool>())) {
      std::string value = Primitive("value");
      if (additional != nullptr && additional->is_object()) {
        absl::StatusOr<std::string> v =
            Visit(*additional, path + "/additionalProperties", name + "-value");
        if (!v.ok()) return v.status();
        value = *v;
      }
      Primitive("string");
      Primitive("space");
      const std::string kv = AddRule(name + "-kv", absl::StrCat("string \":\" space ", value));
      return AddRule(name, absl::StrCat("\"{\" ( ", kv, " ( \",\" space ", kv, " )* )? \"}\""));
    }
    Primitive("space");
    std::string body = "\"{\" ";
    if (!req.empty()) {
      body += absl::StrJoin(req, " \",\" space ");
      for (const std::string& o : opt) absl::StrAppend(&body, " ( \",\" space ", o, " )?");
    } else if (!opt.empty()) {
      // No required key: whichever optional key comes first has no comma.
      std::vector<std::string> alts;
      for (size_t i = 0; i < opt.size(); ++i) {
        std::string alt = opt[i];
        for (size_t j = i + 1; j < opt.size(); ++j) {
          absl::StrAppend(&alt, " ( \",\" space ", opt[j], " )?");
        }
        alts.push_back(alt);
      }
      const std::string rest = AddRule(name + "-props", absl::StrJoin(alts, " | "));
      absl::StrAppend(&body, rest, "?");
    }
    body += " \"}\"";
    return AddRule(name, body);
  }

  absl::StatusOr<int> Count(const json& s, const char* key, const std::string& path, int dflt) {
    if (!s.contains(key)) return dflt;
    const json& v = s[key];
    if (!v.is_number_integer() || v.get<int64_t>() < 0) {
      return Error(path, key, "must be a non-negative integer");
    }
    if (v.get<int64_t>() > kMaxGrammarRepeat) {
      return Error(path, key, absl::StrCat("above ", kMaxGrammarRepeat, " is not supported"));
    }
    return static_cast<int>(v.get<int64_t>());
  }

  absl::StatusOr<std::string> Array(const json& s, const std::string& path,
                                    const std::string& name) {
    absl::StatusOr<int> min = Count(s, "minItems", path, 0);
    if (!min.ok()) return min.status();
    absl::StatusOr<int> max = Count(s, "maxItems", path, -1);
    if (!max.ok()) return max.status();
    if (*max >= 0 && *max < *min) return Error(path, "maxItems", "is below minItems");
    Primitive("space");
    if (auto it = s.find("prefixItems"); it != s.end()) {
      if (!it->is_array()) return Error(path, "prefixItems", "must be an array of schemas");
      const int n = static_cast<int>(it->size());
      if (*min > n || (*max >= 0 && *max < n)) {
        return Error(path, "prefixItems", "only tuples of exactly their prefixItems are supported");
      }
      std::vector<std::string> items;
      for (int i = 0; i < n; ++i) {
        absl::StatusOr<std::string> v = Visit((*it)[i], absl::StrCat(path, "/prefixItems/", i),
                                              absl::StrCat(name, "-", i));
        if (!v.ok()) return v.status();
        items.push_back(*v);
      }
      return AddRule(name, absl::StrCat("\"[\" ", absl::StrJoin(items, " \",\" space "), " \"]\""));
    }
    std::string item = Primitive("value");
    if (auto it = s.find("items"); it != s.end()) {
      if (it->is_boolean() && !it->get<bool>()) {
        if (*min > 0) return Error(path, "minItems", "items is false: the array must be empty");
        return std::string("\"[\" \"]\"");
      }
      absl::StatusOr<std::string> v = Visit(*it, path + "/items", name + "-item");
      if (!v.ok()) return v.status();
      item = *v;
    }
    if (*max == 0) return std::string("\"[\" \"]\"");
    const std::string more = absl::StrCat("( \",\" space ", item, " )");
    const std::string rest =
        *max < 0 ? absl::StrCat(more, "{", std::max(0, *min - 1), ",}")
                 : absl::StrCat(more, "{", std::max(0, *min - 1), ",", *max - 1, "}");
    std::string list = absl::StrCat(item, " ", rest);
    if (*min == 0) list = absl::StrCat("( ", list, " )?");
    return AddRule(name, absl::StrCat("\"[\" ", list, " \"]\""));
  }

  absl::StatusOr<std::string> String(const json& s, const std::string& path,
                                     const std::string& name) {
    if (auto it = s.find("format"); it != s.end() && it->is_string()) {
      const std::string f = it->get<std::string>();
      if (f == "date" || f == "time" || f == "uuid") {
        return AddRule(name, absl::StrCat("\"\\\"\" ", Primitive(f), " \"\\\"\""));
      }
      if (f == "date-time") {
        Primitive("date");
        Primitive("time");
        return AddRule(name, "\"\\\"\" date \"T\" time \"\\\"\"");
      }
      // Other formats (email, uri, ...) are annotations in JSON Schema
      // 2020-12: not enforced, any string is generated.
    }
    absl::StatusOr<int> min = Count(s, "minLength", path, 0);
    if (!min.ok()) return min.status();
    absl::StatusOr<int> max = Count(s, "maxLength", path, -1);
    if (!max.ok()) return max.status();
    if (*max >= 0 && *max < *min) return Error(path, "maxLength", "is below minLength");
    if (*min == 0 && *max < 0) return Primitive("string");
    Primitive("char");
    return AddRule(name, absl::StrCat("\"\\\"\" char{", *min, ",", *max < 0 ? "" : absl::StrCat(*max),
                                      "} \"\\\"\""));
  }

  SchemaGrammarBuilder* b_;
  const json& root_;
  std::map<std::string, std::string> refs_;  // $ref -> rule
  int depth_ = 0;
};

absl::StatusOr<std::string> SchemaGrammarBuilder::AddSchema(const json& schema,
                                                            std::string_view name) {
  SchemaConverter c(this, schema);
  return c.Visit(schema, "", std::string(name));
}

std::string SchemaGrammarBuilder::AnyValue() {
  SchemaConverter c(this, json::object());
  return *c.Visit(json::object(), "", "value");
}

std::string SchemaGrammarBuilder::AnyObject() {
  AnyValue();
  return "object";
}

std::string SchemaGrammarBuilder::Build(std::string_view root_body) const {
  std::string out = absl::StrCat("root ::= ", std::string(root_body), "\n");
  for (const auto& [name, body] : rules_) absl::StrAppend(&out, name, " ::= ", body, "\n");
  return out;
}

absl::StatusOr<std::string> JsonSchemaToGbnf(const json& schema) {
  SchemaGrammarBuilder b;
  absl::StatusOr<std::string> root = b.AddSchema(schema, "root-value");
  if (!root.ok()) return root.status();
  return b.Build(*root);
}

absl::StatusOr<GrammarPtr> CompileJsonSchema(const json& schema) {
  absl::StatusOr<std::string> gbnf = JsonSchemaToGbnf(schema);
  if (!gbnf.ok()) return gbnf.status();
  absl::StatusOr<GrammarPtr> g = ParseGbnf(*gbnf);
  if (!g.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the schema's grammar is too large or invalid: ", g.status().message()));
  }
  return g;
}

GrammarPtr JsonObjectGrammar() {
  static const GrammarPtr* g = [] {
    SchemaGrammarBuilder b;
    const std::string object = b.AnyObject();
    return new GrammarPtr(*ParseGbnf(b.Build(object)));
  }();
  return *g;
}

}  // namespace shardlm
