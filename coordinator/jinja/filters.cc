#include "coordinator/jinja/filters.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "coordinator/jinja/methods.h"
#include "coordinator/jinja/operators.h"
#include "coordinator/jinja/py_string.h"

namespace shardlm::jinja {
namespace {

// The arguments after the first `skip` positional ones, for select/reject
// and friends that pass them on to a test.
CallArgs Rest(const CallArgs& args, size_t skip) {
  CallArgs rest;
  for (size_t i = skip; i < args.positional.size(); ++i)
    rest.positional.push_back(args.positional[i]);
  rest.keyword = args.keyword;
  return rest;
}

std::string StringArg(const CallArgs& args, size_t i, const char* name, const std::string& def) {
  const Value* v = args.Get(i, name);
  return v == nullptr || v->is_undefined() ? def : ToStr(*v);
}

absl::StatusOr<Value> Length(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return Value::Int(0);
    case Value::Kind::kString:
      return Value::Int(static_cast<int64_t>(CodePointCount(v.str())));
    case Value::Kind::kList:
      return Value::Int(static_cast<int64_t>(v.list().size()));
    case Value::Kind::kDict:
      if (!v.is_namespace()) return Value::Int(static_cast<int64_t>(v.dict().items.size()));
      break;
    default:
      break;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("TypeError: object of type '", TypeName(v), "' has no len()"));
}

// select/reject (attr empty) and selectattr/rejectattr.
absl::StatusOr<Value> Select(const Value& input, const CallArgs& args, bool by_attr, bool keep) {
  auto items = Iterate(input);
  if (!items.ok()) return items.status();
  std::string attr;
  size_t next = 0;
  if (by_attr) {
    const Value* a = args.Get(0, "attribute");
    if (a == nullptr || !a->is_string()) {
      return absl::InvalidArgumentError("selectattr/rejectattr need an attribute name");
    }
    attr = a->str();
    next = 1;
  }
  const Value* test = args.Get(next, "test");
  const CallArgs test_args = Rest(args, next + 1);
  std::vector<Value> out;
  for (const Value& item : *items) {
    Value v = item;
    if (by_attr) {
      if (item.is_undefined()) return UndefinedError(item);
      v = GetAttr(item, attr);
    }
    bool pass = Truthy(v);
    if (test != nullptr) {
      absl::StatusOr<bool> r = ApplyTest(ToStr(*test), v, test_args);
      if (!r.ok()) return r.status();
      pass = *r;
    }
    if (pass == keep) out.push_back(item);
  }
  return Value::List(std::move(out));
}

absl::StatusOr<Value> Map(const Value& input, const CallArgs& args) {
  auto items = Iterate(input);
  if (!items.ok()) return items.status();
  const Value* attr = nullptr;
  for (const auto& [k, v] : args.keyword) {
    if (k == "attribute") attr = &v;
  }
  std::vector<Value> out;
  for (const Value& item : *items) {
    if (attr != nullptr) {
      Value v = item.is_undefined() ? item : GetAttr(item, ToStr(*attr));
      if (v.is_undefined()) {
        for (const auto& [k, d] : args.keyword) {
          if (k == "default") v = d;
        }
      }
      out.push_back(v);
      continue;
    }
    if (args.positional.empty()) return absl::InvalidArgumentError("map needs a filter name");
    absl::StatusOr<Value> v = ApplyFilter(ToStr(args.positional[0]), item, Rest(args, 1));
    if (!v.ok()) return v.status();
    out.push_back(*std::move(v));
  }
  return Value::List(std::move(out));
}

// sort(reverse=false, case_sensitive=false, attribute=none): stable, by
// Python's <, strings compared lowercased unless case_sensitive.
absl::StatusOr<Value> Sort(const Value& input, const CallArgs& args) {
  auto items = Iterate(input);
  if (!items.ok()) return items.status();
  const Value* reverse = args.Get(0, "reverse");
  const Value* case_sensitive = args.Get(1, "case_sensitive");
  const Value* attribute = args.Get(2, "attribute");
  auto key = [&](const Value& v) {
    Value k = attribute != nullptr && !attribute->is_none() && !v.is_undefined()
                  ? GetAttr(v, ToStr(*attribute))
                  : v;
    if (k.is_string() && (case_sensitive == nullptr || !Truthy(*case_sensitive))) {
      k = Value::String(PyLower(k.str()));
    }
    return k;
  };
  std::vector<std::pair<Value, Value>> keyed;
  for (const Value& v : *items) keyed.emplace_back(key(v), v);
  absl::Status error;
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& a, const auto& b) {
    absl::StatusOr<bool> less = CompareOp("<", a.first, b.first);
    if (!less.ok()) {
      if (error.ok()) error = less.status();
      return false;
    }
    return *less;
  });
  if (!error.ok()) return error;
  std::vector<Value> out;
  for (auto& [k, v] : keyed) out.push_back(std::move(v));
  if (reverse != nullptr && Truthy(*reverse)) std::reverse(out.begin(), out.end());
  return Value::List(std::move(out));
}

// indent(width=4, first=false, blank=false), Jinja2's algorithm: every line
// after the first gets the indentation, blank lines only with `blank`.
Value Indent(const std::string& s, const CallArgs& args) {
  const Value* width = args.Get(0, "width");
  const Value* first = args.Get(1, "first");
  const Value* blank = args.Get(2, "blank");
  std::string pad(4, ' ');
  if (width != nullptr && width->is_string()) pad = width->str();
  if (width != nullptr && width->is_int()) {
    pad.assign(static_cast<size_t>(std::clamp<int64_t>(width->int_value(), 0, 256)), ' ');
  }
  const std::vector<std::string> lines = PySplitLines(s + "\n");
  std::string out;
  for (size_t i = 0; i < lines.size(); ++i) {
    if (i > 0) out += "\n";
    const bool indent = i > 0 && (!lines[i].empty() || (blank != nullptr && Truthy(*blank)));
    out += (indent ? pad : "") + lines[i];
  }
  if (first != nullptr && Truthy(*first)) out = pad + out;
  return Value::String(std::move(out));
}

absl::StatusOr<Value> ToJsonFilter(const Value& input, const CallArgs& args) {
  int indent = -1;
  if (const Value* v = args.Get(0, "indent"); v != nullptr && !v->is_none()) {
    if (!v->is_int()) return absl::InvalidArgumentError("tojson: indent must be an integer");
    indent = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(v->int_value(), 64)));
  }
  for (const auto& [k, v] : args.keyword) {
    if ((k == "separators" && !v.is_none()) ||
        ((k == "ensure_ascii" || k == "sort_keys") && Truthy(v))) {
      return absl::UnimplementedError(absl::StrCat("tojson: ", k, " is not supported"));
    }
  }
  absl::StatusOr<std::string> json = ToJson(input, indent);
  if (!json.ok()) return json.status();
  return Value::String(*std::move(json));
}

// int(d) for a float, when it fits (Python's int is unbounded; ours not).
absl::StatusOr<Value> FloatToInt(double d) {
  if (!std::isfinite(d) || d >= 9.2e18 || d <= -9.2e18) {
    return absl::InvalidArgumentError("int: the number does not fit in 64 bits");
  }
  return Value::Int(static_cast<int64_t>(d));
}

absl::StatusOr<Value> ToNumber(const Value& input, const CallArgs& args, bool integer) {
  const Value* def = args.Get(0, "default");
  Value fallback = def != nullptr ? *def : integer ? Value::Int(0) : Value::Float(0);
  if (input.is_number()) {
    if (!integer) return Value::Float(input.number_value());
    if (input.kind() == Value::Kind::kFloat) return FloatToInt(input.number_value());
    return Value::Int(input.int_value());
  }
  if (!input.is_string()) return fallback;
  const std::string s = PyStrip(input.str(), std::nullopt, true, true);
  char* end = nullptr;
  if (integer) {
    const long long v = std::strtoll(s.c_str(), &end, 10);
    if (!s.empty() && end == s.c_str() + s.size()) return Value::Int(v);
  }
  const double d = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size()) return fallback;
  return integer ? FloatToInt(d) : absl::StatusOr<Value>(Value::Float(d));
}

}  // namespace

absl::StatusOr<Value> ApplyFilter(const std::string& name, const Value& input,
                                  const CallArgs& args) {
  if (name == "safe") return input;  // no autoescaping: Markup is a str
  if (name == "default" || name == "d") {
    const Value* def = args.Get(0, "default_value");
    const Value* boolean = args.Get(1, "boolean");
    const bool use =
        input.is_undefined() || (boolean != nullptr && Truthy(*boolean) && !Truthy(input));
    return use ? (def != nullptr ? *def : Value::String("")) : input;
  }
  if (name == "length" || name == "count") return Length(input);
  if (name == "string") return Value::String(ToStr(input));
  if (name == "tojson") return ToJsonFilter(input, args);
  if (name == "items") {
    if (input.is_undefined()) return Value::List({});
    if (!input.is_dict() || input.is_namespace()) {
      return absl::InvalidArgumentError(
          absl::StrCat("items: can only get item pairs from a mapping, not ", TypeName(input)));
    }
    return DictItems(input);
  }
  if (name == "list") {
    auto items = Iterate(input);
    if (!items.ok()) return items.status();
    return Value::List(*std::move(items));
  }
  if (name == "select" || name == "reject") return Select(input, args, false, name == "select");
  if (name == "selectattr" || name == "rejectattr") {
    return Select(input, args, true, name == "selectattr");
  }
  if (name == "map") return Map(input, args);
  if (name == "sort") return Sort(input, args);
  if (name == "join") {
    auto items = Iterate(input);
    if (!items.ok()) return items.status();
    const std::string sep = StringArg(args, 0, "d", "");
    const Value* attr = args.Get(1, "attribute");
    std::string out;
    for (size_t i = 0; i < items->size(); ++i) {
      if (i > 0) out += sep;
      out += ToStr(attr != nullptr ? GetAttr((*items)[i], ToStr(*attr)) : (*items)[i]);
    }
    return Value::String(std::move(out));
  }
  if (name == "first" || name == "last") {
    auto items = Iterate(input);
    if (!items.ok()) return items.status();
    if (items->empty())
      return Value::Undefined(absl::StrCat("No ", name, " item, sequence was empty."));
    return name == "first" ? items->front() : items->back();
  }
  if (name == "reverse") {
    if (input.is_string()) {
      return Slice(input, Value(), Value(), Value::Int(-1));
    }
    auto items = Iterate(input);
    if (!items.ok()) return items.status();
    return Value::List(std::vector<Value>(items->rbegin(), items->rend()));
  }
  if (name == "unique") {
    auto items = Iterate(input);
    if (!items.ok()) return items.status();
    std::vector<Value> out;
    for (const Value& v : *items) {
      bool seen = false;
      for (const Value& o : out) seen = seen || Equals(o, v);
      if (!seen) out.push_back(v);
    }
    return Value::List(std::move(out));
  }
  const std::string s = ToStr(input);
  if (name == "trim") {
    const Value* chars = args.Get(0, "chars");
    return Value::String(PyStrip(s,
                                 chars != nullptr && chars->is_string()
                                     ? std::optional<std::string>(chars->str())
                                     : std::nullopt,
                                 true, true));
  }
  if (name == "indent") return Indent(s, args);
  if (name == "upper") return Value::String(PyUpper(s));
  if (name == "lower") return Value::String(PyLower(s));
  if (name == "title") return Value::String(PyTitle(s));
  if (name == "capitalize") return Value::String(PyCapitalize(s));
  if (name == "replace") {
    const Value* count = args.Get(2, "count");
    return Value::String(
        PyReplace(s, StringArg(args, 0, "old", ""), StringArg(args, 1, "new", ""),
                  count != nullptr && count->is_number() ? count->int_value() : -1));
  }
  if (name == "int" || name == "float") return ToNumber(input, args, name == "int");
  if (name == "abs") {
    if ((input.is_int() || input.is_bool()) && input.int_value() != INT64_MIN) {
      return Value::Int(std::llabs(input.int_value()));
    }
    if (input.is_number()) return Value::Float(std::fabs(input.number_value()));
    return absl::InvalidArgumentError(
        absl::StrCat("TypeError: bad operand type for abs(): '", TypeName(input), "'"));
  }
  return absl::UnimplementedError(absl::StrCat("no filter named '", name, "'"));
}

absl::StatusOr<bool> ApplyTest(const std::string& name, const Value& input, const CallArgs& args) {
  using K = Value::Kind;
  if (name == "defined") return !input.is_undefined();
  if (name == "undefined") return input.is_undefined();
  if (name == "none") return input.is_none();
  if (name == "boolean") return input.is_bool();
  if (name == "true") return input.is_bool() && input.bool_value();
  if (name == "false") return input.is_bool() && !input.bool_value();
  if (name == "integer") return input.kind() == K::kInt;
  if (name == "float") return input.kind() == K::kFloat;
  if (name == "number") return input.is_number();
  if (name == "string") return input.is_string();
  if (name == "mapping") return input.is_dict() && !input.is_namespace();
  if (name == "callable") return input.is_function();
  // Jinja2's Undefined iterates (as nothing) and has a length: both true.
  if (name == "iterable" || name == "sequence") {
    return input.is_undefined() || input.is_string() || input.is_list() ||
           (input.is_dict() && !input.is_namespace());
  }
  if (name == "lower" || name == "upper") {
    if (!input.is_string()) return false;
    return input.str() == (name == "lower" ? PyLower(input.str()) : PyUpper(input.str()));
  }
  if (name == "odd" || name == "even" || name == "divisibleby") {
    if (!input.is_number() || input.kind() == K::kFloat) {
      return absl::InvalidArgumentError(absl::StrCat("test '", name, "' needs an integer"));
    }
    int64_t d = 2;
    if (name == "divisibleby") {
      const Value* n = args.Get(0, "num");
      if (n == nullptr || !n->is_number() || n->int_value() == 0) {
        return absl::InvalidArgumentError("divisibleby needs a non-zero integer");
      }
      d = n->int_value();
    }
    const int64_t r = input.int_value() % d;
    return name == "odd" ? r != 0 : r == 0;
  }
  static const std::pair<const char*, const char*> kCompare[] = {
      {"eq", "=="}, {"equalto", "=="}, {"==", "=="},      {"ne", "!="},
      {"!=", "!="}, {"lt", "<"},       {"lessthan", "<"}, {"<", "<"},
      {"le", "<="}, {"<=", "<="},      {"gt", ">"},       {"greaterthan", ">"},
      {">", ">"},   {"ge", ">="},      {">=", ">="},      {"in", "in"}};
  for (const auto& [test, op] : kCompare) {
    if (name != test) continue;
    const Value* other = args.Get(0, "other");
    if (other == nullptr)
      return absl::InvalidArgumentError(absl::StrCat("test '", name, "' needs an argument"));
    return CompareOp(op, input, *other);
  }
  if (name == "sameas") {
    const Value* other = args.Get(0, "other");
    if (other == nullptr) return absl::InvalidArgumentError("test 'sameas' needs an argument");
    if (input.kind() != other->kind()) return false;
    if (input.is_list()) return &input.list() == &other->list();
    if (input.is_dict()) return &input.dict() == &other->dict();
    return Equals(input, *other);
  }
  return absl::UnimplementedError(absl::StrCat("no test named '", name, "'"));
}

}  // namespace shardlm::jinja
