// The values a chat template computes with: Python's objects as Jinja2 sees
// them (None, bool, int, float, str, list/tuple, dict in insertion order)
// plus Jinja's Undefined, namespace() objects and callables (macros, globals,
// bound string/dict methods). Lists and dicts are shared by reference, as in
// Python, so `set ns.x = ...` inside a loop or macro changes the one object.
#ifndef SHARDLM_COORDINATOR_JINJA_VALUE_H_
#define SHARDLM_COORDINATOR_JINJA_VALUE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "nlohmann/json.hpp"

namespace shardlm::jinja {

class Value;

// Arguments of a call: positional, then keyword (in call order).
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;

  // The argument at `index` or named `name`, else nullptr.
  const Value* Get(size_t index, std::string_view name) const;
};

using Function = std::function<absl::StatusOr<Value>(const CallArgs&)>;

// Keys are strings: the JSON the templates receive has no other keys, and a
// dict literal with a non-string key is refused when built.
struct Dict {
  std::vector<std::pair<std::string, Value>> items;

  const Value* Find(std::string_view key) const;
  void Set(std::string key, Value value);
};

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kFunction };

  // Undefined; `name` says what was missing, for error messages.
  Value() = default;
  static Value Undefined(std::string name);
  static Value None();
  static Value Bool(bool b);
  static Value Int(int64_t i);
  static Value Float(double d);
  static Value String(std::string s);
  static Value List(std::vector<Value> items, bool tuple = false);
  static Value MakeDict(Dict dict = {});
  static Value Namespace(Dict dict = {});
  static Value MakeFunction(std::string name, Function fn);
  // JSON objects keep their key order (ordered_json); numbers keep int/float.
  static Value FromJson(const nlohmann::ordered_json& json);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kFloat || is_bool(); }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_function() const { return kind_ == Kind::kFunction; }
  bool is_tuple() const { return is_list() && tuple_; }
  bool is_namespace() const { return is_dict() && namespace_; }

  bool bool_value() const { return b_; }
  int64_t int_value() const { return is_bool() ? (b_ ? 1 : 0) : i_; }
  double number_value() const { return kind_ == Kind::kFloat ? f_ : int_value(); }
  // The string, or for Undefined the name of what was missing.
  const std::string& str() const { return s_; }
  std::vector<Value>& list() const { return *list_; }
  Dict& dict() const { return *dict_; }
  const Function& function() const { return *fn_; }

 private:
  explicit Value(Kind kind) : kind_(kind) {}

  Kind kind_ = Kind::kUndefined;
  bool b_ = false;
  bool tuple_ = false;
  bool namespace_ = false;
  int64_t i_ = 0;
  double f_ = 0;
  std::string s_;
  std::shared_ptr<std::vector<Value>> list_;
  std::shared_ptr<Dict> dict_;
  std::shared_ptr<Function> fn_;
};

// Python's bool(): Undefined, None, False, 0, "", [] and {} are false.
bool Truthy(const Value& v);
// Python's str() (what `{{ }}` prints and `|string` returns); Undefined is "".
std::string ToStr(const Value& v);
// Python's repr(), used by str() of lists and dicts.
std::string Repr(const Value& v);
// Python's float repr: shortest round-trip digits ("21.5", "1.0", "1e+16").
std::string FormatFloat(double d);
// Python's ==: by value for lists and dicts; 1 == 1.0 == True. Undefined
// equals only Undefined.
bool Equals(const Value& a, const Value& b);
// Python's type name for error messages ("str", "dict", "undefined").
std::string TypeName(const Value& v);

// json.dumps(v, ensure_ascii=False, indent=indent) with input key order —
// Hugging Face's `tojson`. indent < 0: one line with ", " and ": ".
absl::StatusOr<std::string> ToJson(const Value& v, int indent);

}  // namespace shardlm::jinja

#endif  // SHARDLM_COORDINATOR_JINJA_VALUE_H_
