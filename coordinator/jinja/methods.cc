#include "coordinator/jinja/methods.h"

#include <optional>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "coordinator/jinja/py_string.h"

namespace shardlm::jinja {
namespace {

Value NoAttribute(const Value& obj, const std::string& name) {
  return Value::Undefined(
      absl::StrCat("'", TypeName(obj), " object' has no attribute '", name, "'"));
}

absl::StatusOr<std::optional<std::string>> OptionalString(const CallArgs& args, size_t i,
                                                          const char* name) {
  const Value* v = args.Get(i, name);
  if (v == nullptr || v->is_none()) return std::optional<std::string>();
  if (!v->is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat("TypeError: ", name, " must be str or None, not ", TypeName(*v)));
  }
  return std::optional<std::string>(v->str());
}

absl::StatusOr<std::string> RequiredString(const CallArgs& args, size_t i, const char* name,
                                           const char* method) {
  const Value* v = args.Get(i, name);
  if (v == nullptr || !v->is_string()) {
    return absl::InvalidArgumentError(
        absl::StrCat("TypeError: str.", method, "() needs a str argument"));
  }
  return v->str();
}

int64_t IntArg(const CallArgs& args, size_t i, const char* name, int64_t def) {
  const Value* v = args.Get(i, name);
  return v != nullptr && v->is_number() ? v->int_value() : def;
}

// startswith/endswith accept a str or a tuple of them.
absl::StatusOr<Value> Affix(const std::string& s, const CallArgs& args, bool prefix) {
  const Value* v = args.Get(0, "prefix");
  std::vector<std::string> options;
  if (v != nullptr && v->is_string()) {
    options.push_back(v->str());
  } else if (v != nullptr && v->is_list()) {
    for (const Value& o : v->list()) {
      if (!o.is_string()) break;
      options.push_back(o.str());
    }
  }
  if (options.empty() && (v == nullptr || !v->is_list())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "TypeError: str.", prefix ? "startswith" : "endswith", "() needs a str or a tuple of str"));
  }
  for (const std::string& o : options) {
    if (prefix ? absl::StartsWith(s, o) : absl::EndsWith(s, o)) return Value::Bool(true);
  }
  return Value::Bool(false);
}

absl::StatusOr<Value> StrMethod(const std::string& s, const std::string& name,
                                const CallArgs& args) {
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    auto chars = OptionalString(args, 0, "chars");
    if (!chars.ok()) return chars.status();
    return Value::String(PyStrip(s, *chars, name != "rstrip", name != "lstrip"));
  }
  if (name == "split" || name == "rsplit") {
    auto sep = OptionalString(args, 0, "sep");
    if (!sep.ok()) return sep.status();
    if (*sep && (*sep)->empty()) return absl::InvalidArgumentError("ValueError: empty separator");
    const int64_t maxsplit = IntArg(args, 1, "maxsplit", -1);
    if (name == "rsplit" && maxsplit >= 0) {
      return absl::UnimplementedError("str.rsplit with maxsplit is not supported");
    }
    std::vector<Value> out;
    for (std::string& piece : PySplit(s, *sep, maxsplit)) out.push_back(Value::String(piece));
    return Value::List(std::move(out));
  }
  if (name == "splitlines") {
    std::vector<Value> out;
    for (std::string& line : PySplitLines(s)) out.push_back(Value::String(line));
    return Value::List(std::move(out));
  }
  if (name == "startswith" || name == "endswith") return Affix(s, args, name == "startswith");
  if (name == "upper") return Value::String(PyUpper(s));
  if (name == "lower") return Value::String(PyLower(s));
  if (name == "title") return Value::String(PyTitle(s));
  if (name == "capitalize") return Value::String(PyCapitalize(s));
  if (name == "replace") {
    auto from = RequiredString(args, 0, "old", "replace");
    if (!from.ok()) return from.status();
    auto to = RequiredString(args, 1, "new", "replace");
    if (!to.ok()) return to.status();
    return Value::String(PyReplace(s, *from, *to, IntArg(args, 2, "count", -1)));
  }
  if (name == "find" || name == "count") {
    auto sub = RequiredString(args, 0, "sub", name.c_str());
    if (!sub.ok()) return sub.status();
    if (name == "find") {
      const size_t at = s.find(*sub);
      if (at == std::string::npos) return Value::Int(-1);
      return Value::Int(static_cast<int64_t>(CodePointCount(s.substr(0, at))));
    }
    if (sub->empty()) return Value::Int(static_cast<int64_t>(CodePointCount(s)) + 1);
    int64_t n = 0;
    for (size_t at = s.find(*sub); at != std::string::npos; at = s.find(*sub, at + sub->size())) {
      ++n;
    }
    return Value::Int(n);
  }
  if (name == "join") {
    const Value* items = args.Get(0, "iterable");
    if (items == nullptr) return absl::InvalidArgumentError("TypeError: str.join() needs a list");
    auto list = Iterate(*items);
    if (!list.ok()) return list.status();
    std::string out;
    for (size_t i = 0; i < list->size(); ++i) {
      if (!(*list)[i].is_string()) {
        return absl::InvalidArgumentError(absl::StrCat("TypeError: sequence item ", i,
                                                       ": expected str instance, ",
                                                       TypeName((*list)[i]), " found"));
      }
      if (i > 0) out += s;
      out += (*list)[i].str();
    }
    return Value::String(std::move(out));
  }
  return absl::UnimplementedError(absl::StrCat("str.", name, "() is not supported"));
}

absl::StatusOr<Value> DictMethod(const Value& d, const std::string& name, const CallArgs& args) {
  if (name == "items") return DictItems(d);
  if (name == "keys" || name == "values") {
    std::vector<Value> out;
    for (const auto& [k, v] : d.dict().items) {
      out.push_back(name == "keys" ? Value::String(k) : v);
    }
    return Value::List(std::move(out));
  }
  // get(key, default=None)
  const Value* key = args.Get(0, "key");
  const Value* def = args.Get(1, "default");
  if (key != nullptr && key->is_string()) {
    if (const Value* v = d.dict().Find(key->str())) return *v;
  }
  return def != nullptr ? *def : Value::None();
}

constexpr const char* kStrMethods[] = {
    "strip", "lstrip", "rstrip",     "split",   "rsplit", "startswith", "endswith", "upper",
    "lower", "title",  "capitalize", "replace", "find",   "count",      "join",     "splitlines"};
constexpr const char* kDictMethods[] = {"items", "keys", "values", "get"};

// Python's slice.indices(): clamps start/stop for the step's direction.
std::vector<int64_t> SliceIndices(int64_t len, const Value& start, const Value& stop,
                                  int64_t step) {
  const int64_t lower = step < 0 ? -1 : 0;
  const int64_t upper = step < 0 ? len - 1 : len;
  auto clamp = [&](const Value& v, int64_t def) {
    if (v.is_undefined() || v.is_none()) return def;
    int64_t i = v.int_value();
    if (i < 0) i += len;
    return std::min(std::max(i, lower), upper);
  };
  const int64_t a = clamp(start, step < 0 ? upper : lower);
  const int64_t b = clamp(stop, step < 0 ? lower : upper);
  std::vector<int64_t> out;
  for (int64_t i = a; step > 0 ? i < b : i > b;) {
    out.push_back(i);
    if (__builtin_add_overflow(i, step, &i)) break;
  }
  return out;
}

}  // namespace

Value DictItems(const Value& dict) {
  std::vector<Value> out;
  for (const auto& [k, v] : dict.dict().items) {
    out.push_back(Value::List({Value::String(k), v}, /*tuple=*/true));
  }
  return Value::List(std::move(out));
}

absl::StatusOr<std::vector<Value>> Iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return std::vector<Value>();
    case Value::Kind::kList:
      return v.list();
    case Value::Kind::kDict:
      if (v.is_namespace()) break;
      {
        std::vector<Value> keys;
        for (const auto& [k, item] : v.dict().items) keys.push_back(Value::String(k));
        return keys;
      }
    case Value::Kind::kString: {
      std::vector<Value> chars;
      const std::vector<size_t> offs = CodePointOffsets(v.str());
      for (size_t i = 0; i + 1 < offs.size(); ++i) {
        chars.push_back(Value::String(v.str().substr(offs[i], offs[i + 1] - offs[i])));
      }
      return chars;
    }
    default:
      break;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("TypeError: '", TypeName(v), "' object is not iterable"));
}

Value GetAttr(const Value& obj, const std::string& name) {
  if (obj.is_dict() && !obj.is_namespace()) {
    for (const char* m : kDictMethods) {
      if (name == m) {
        return Value::MakeFunction(absl::StrCat("dict.", name), [obj, name](const CallArgs& a) {
          return DictMethod(obj, name, a);
        });
      }
    }
  }
  if (obj.is_dict()) {
    if (const Value* v = obj.dict().Find(name)) return *v;
    return NoAttribute(obj, name);
  }
  if (obj.is_string()) {
    for (const char* m : kStrMethods) {
      if (name == m) {
        return Value::MakeFunction(
            absl::StrCat("str.", name),
            [s = obj.str(), name](const CallArgs& a) { return StrMethod(s, name, a); });
      }
    }
  }
  return NoAttribute(obj, name);
}

Value GetItem(const Value& obj, const Value& key) {
  if ((obj.is_list() || obj.is_string()) && key.is_number() && key.kind() != Value::Kind::kFloat) {
    int64_t i = key.int_value();
    if (obj.is_list()) {
      const int64_t n = static_cast<int64_t>(obj.list().size());
      if (i < 0) i += n;
      if (i >= 0 && i < n) return obj.list()[i];
    } else {
      const std::vector<size_t> offs = CodePointOffsets(obj.str());
      const int64_t n = static_cast<int64_t>(offs.size()) - 1;
      if (i < 0) i += n;
      if (i >= 0 && i < n) return Value::String(obj.str().substr(offs[i], offs[i + 1] - offs[i]));
    }
    return Value::Undefined(absl::StrCat(TypeName(obj), " object has no element ", i));
  }
  if (obj.is_dict() && key.is_string()) {
    if (const Value* v = obj.dict().Find(key.str())) return *v;
  }
  // Jinja2 falls back to the attribute for a string key; any other failed
  // lookup (a list as a dict key included) is Undefined, not an error.
  if (key.is_string()) return GetAttr(obj, key.str());
  return Value::Undefined(absl::StrCat("'", TypeName(obj), " object' has no element ", Repr(key)));
}

absl::StatusOr<Value> Slice(const Value& obj, const Value& start, const Value& stop,
                            const Value& step) {
  for (const Value* part : {&start, &stop, &step}) {
    if (!part->is_undefined() && !part->is_none() &&
        (!part->is_number() || part->kind() == Value::Kind::kFloat)) {
      return absl::InvalidArgumentError("TypeError: slice indices must be integers or None");
    }
  }
  const int64_t st = step.is_undefined() || step.is_none() ? 1 : step.int_value();
  if (st == 0) return absl::InvalidArgumentError("ValueError: slice step cannot be zero");
  if (obj.is_list()) {
    std::vector<Value> out;
    for (int64_t i : SliceIndices(obj.list().size(), start, stop, st)) {
      out.push_back(obj.list()[i]);
    }
    return Value::List(std::move(out), obj.is_tuple());
  }
  if (obj.is_string()) {
    const std::vector<size_t> offs = CodePointOffsets(obj.str());
    std::string out;
    for (int64_t i : SliceIndices(offs.size() - 1, start, stop, st)) {
      out.append(obj.str(), offs[i], offs[i + 1] - offs[i]);
    }
    return Value::String(std::move(out));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("TypeError: '", TypeName(obj), "' object is not subscriptable"));
}

}  // namespace shardlm::jinja
