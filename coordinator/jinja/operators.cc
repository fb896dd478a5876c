#include "coordinator/jinja/operators.h"

#include <cmath>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "coordinator/jinja/py_string.h"

namespace shardlm::jinja {
namespace {

absl::Status TypeError(const std::string& op, const Value& a, const Value& b) {
  return absl::InvalidArgumentError(absl::StrCat("TypeError: unsupported operand type(s) for ", op,
                                                 ": '", TypeName(a), "' and '", TypeName(b), "'"));
}

bool IsFloat(const Value& v) { return v.kind() == Value::Kind::kFloat; }

// Python's floor division and modulo (the result takes the divisor's sign).
int64_t FloorDiv(int64_t a, int64_t b) {
  int64_t q = a / b;
  if ((a % b != 0) && ((a < 0) != (b < 0))) --q;
  return q;
}

absl::StatusOr<Value> Repeat(const Value& seq, int64_t n) {
  constexpr int64_t kMaxBytes = int64_t{1} << 24;
  n = std::max<int64_t>(n, 0);
  if (seq.is_string()) {
    if (!seq.str().empty() && n > kMaxBytes / static_cast<int64_t>(seq.str().size())) {
      return absl::ResourceExhaustedError("string repetition too large");
    }
    std::string out;
    for (int64_t i = 0; i < n; ++i) out += seq.str();
    return Value::String(std::move(out));
  }
  if (!seq.list().empty() && n > kMaxBytes / static_cast<int64_t>(seq.list().size())) {
    return absl::ResourceExhaustedError("list repetition too large");
  }
  std::vector<Value> out;
  for (int64_t i = 0; i < n; ++i) out.insert(out.end(), seq.list().begin(), seq.list().end());
  return Value::List(std::move(out), seq.is_tuple());
}

absl::StatusOr<Value> Arithmetic(const std::string& op, const Value& a, const Value& b) {
  if (op == "+") {
    if (a.is_string() && b.is_string()) return Value::String(a.str() + b.str());
    if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
      std::vector<Value> out = a.list();
      out.insert(out.end(), b.list().begin(), b.list().end());
      return Value::List(std::move(out), a.is_tuple());
    }
    if (a.is_string()) {
      return absl::InvalidArgumentError(
          absl::StrCat("TypeError: can only concatenate str (not \"", TypeName(b), "\") to str"));
    }
  }
  if (op == "*") {
    if ((a.is_string() || a.is_list()) && b.is_number() && !IsFloat(b)) {
      return Repeat(a, b.int_value());
    }
    if ((b.is_string() || b.is_list()) && a.is_number() && !IsFloat(a)) {
      return Repeat(b, a.int_value());
    }
  }
  if (!a.is_number() || !b.is_number()) {
    if (op == "%" && a.is_string()) {
      return absl::UnimplementedError("printf-style string formatting (%) is not supported");
    }
    return TypeError(op, a, b);
  }
  const bool real = IsFloat(a) || IsFloat(b) || op == "/";
  if ((op == "/" || op == "//" || op == "%") && b.number_value() == 0) {
    return absl::InvalidArgumentError("ZeroDivisionError: division by zero");
  }
  if (real) {
    const double x = a.number_value(), y = b.number_value();
    if (op == "+") return Value::Float(x + y);
    if (op == "-") return Value::Float(x - y);
    if (op == "*") return Value::Float(x * y);
    if (op == "/") return Value::Float(x / y);
    if (op == "//") return Value::Float(std::floor(x / y));
    if (op == "%") return Value::Float(x - std::floor(x / y) * y);
    if (op == "**") return Value::Float(std::pow(x, y));
  } else {
    // Python ints never overflow; ours are 64-bit, so an overflow is an
    // error rather than a wrong (or undefined) result.
    const int64_t x = a.int_value(), y = b.int_value();
    int64_t r = 0;
    bool overflow = false;
    if (op == "+") {
      overflow = __builtin_add_overflow(x, y, &r);
    } else if (op == "-") {
      overflow = __builtin_sub_overflow(x, y, &r);
    } else if (op == "*") {
      overflow = __builtin_mul_overflow(x, y, &r);
    } else if (op == "//" || op == "%") {
      overflow = x == INT64_MIN && y == -1;
      if (!overflow) r = op == "//" ? FloorDiv(x, y) : x - FloorDiv(x, y) * y;
    } else if (op == "**") {
      if (y < 0) return Value::Float(std::pow(static_cast<double>(x), static_cast<double>(y)));
      r = 1;
      for (int64_t i = 0; i < y && !overflow; ++i) {
        overflow = __builtin_mul_overflow(r, x, &r);
        if (r == 0 || r == 1) break;  // 0**n, 1**n
      }
      if (!overflow && x == -1) r = (y % 2 == 0) ? 1 : -1;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("unknown operator ", op));
    }
    if (overflow) {
      return absl::InvalidArgumentError(
          absl::StrCat("integer overflow in ", op, " (past 64 bits)"));
    }
    return Value::Int(r);
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown operator ", op));
}

absl::StatusOr<bool> Contains(const Value& container, const Value& item) {
  switch (container.kind()) {
    case Value::Kind::kUndefined:
      return false;  // Undefined iterates as empty
    case Value::Kind::kString:
      if (!item.is_string()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "TypeError: 'in <string>' requires string as left operand, not ", TypeName(item)));
      }
      return container.str().find(item.str()) != std::string::npos;
    case Value::Kind::kList:
      for (const Value& v : container.list()) {
        if (Equals(v, item)) return true;
      }
      return false;
    case Value::Kind::kDict:
      if (container.is_namespace()) break;
      return item.is_string() && container.dict().Find(item.str()) != nullptr;
    default:
      break;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("TypeError: argument of type '", TypeName(container), "' is not iterable"));
}

}  // namespace

absl::Status UndefinedError(const Value& undefined) {
  return absl::InvalidArgumentError(absl::StrCat("UndefinedError: ", undefined.str()));
}

absl::StatusOr<Value> BinaryOp(const std::string& op, const Value& a, const Value& b) {
  if (op == "~") return Value::String(ToStr(a) + ToStr(b));
  if (a.is_undefined()) return UndefinedError(a);
  if (b.is_undefined()) return UndefinedError(b);
  return Arithmetic(op, a, b);
}

absl::StatusOr<bool> CompareOp(const std::string& op, const Value& a, const Value& b) {
  if (op == "==") return Equals(a, b);
  if (op == "!=") return !Equals(a, b);
  if (op == "in") return Contains(b, a);
  if (op == "notin") {
    absl::StatusOr<bool> in = Contains(b, a);
    if (!in.ok()) return in.status();
    return !*in;
  }
  int cmp = 0;
  if (a.is_number() && b.is_number()) {
    if (IsFloat(a) || IsFloat(b)) {
      cmp = a.number_value() < b.number_value() ? -1 : a.number_value() > b.number_value() ? 1 : 0;
    } else {
      cmp = a.int_value() < b.int_value() ? -1 : a.int_value() > b.int_value() ? 1 : 0;
    }
  } else if (a.is_string() && b.is_string()) {
    // UTF-8 byte order is code point order, Python's str order.
    cmp = a.str().compare(b.str());
  } else if (a.is_list() && b.is_list() && a.is_tuple() == b.is_tuple()) {
    // Lexicographic: the first unequal items decide, else the length.
    const auto& x = a.list();
    const auto& y = b.list();
    size_t i = 0;
    while (i < x.size() && i < y.size() && Equals(x[i], y[i])) ++i;
    if (i < x.size() && i < y.size()) return CompareOp(op, x[i], y[i]);
    cmp = x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
  } else {
    if (a.is_undefined()) return UndefinedError(a);
    if (b.is_undefined()) return UndefinedError(b);
    return absl::InvalidArgumentError(absl::StrCat("TypeError: '", op,
                                                   "' not supported between instances of '",
                                                   TypeName(a), "' and '", TypeName(b), "'"));
  }
  if (op == "<") return cmp < 0;
  if (op == "<=") return cmp <= 0;
  if (op == ">") return cmp > 0;
  if (op == ">=") return cmp >= 0;
  return absl::InvalidArgumentError(absl::StrCat("unknown comparison ", op));
}

}  // namespace shardlm::jinja
