// Expression evaluation (Interpreter::Eval): Python semantics for values,
// Jinja2's for Undefined — printing, testing and iterating it is fine, using
// it as an object (attribute, subscript, call, arithmetic) raises.
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "coordinator/jinja/filters.h"
#include "coordinator/jinja/interpreter.h"
#include "coordinator/jinja/methods.h"
#include "coordinator/jinja/operators.h"

namespace shardlm::jinja {

absl::StatusOr<CallArgs> Interpreter::EvalArgs(const Expr& e, size_t first, Scope* scope) {
  CallArgs args;
  for (size_t i = first; i < e.args.size(); ++i) {
    absl::StatusOr<Value> v = Eval(*e.args[i], scope);
    if (!v.ok()) return v.status();
    args.positional.push_back(*std::move(v));
  }
  for (const auto& [k, expr] : e.kwargs) {
    absl::StatusOr<Value> v = Eval(*expr, scope);
    if (!v.ok()) return v.status();
    args.keyword.emplace_back(k, *std::move(v));
  }
  return args;
}

absl::StatusOr<Value> Interpreter::EvalCall(const Expr& e, Scope* scope) {
  absl::StatusOr<Value> callee = Eval(*e.args[0], scope);
  if (!callee.ok()) return callee.status();
  if (callee->is_undefined()) return UndefinedError(*callee);
  if (!callee->is_function()) {
    return absl::InvalidArgumentError(
        absl::StrCat("TypeError: '", TypeName(*callee), "' object is not callable"));
  }
  absl::StatusOr<CallArgs> args = EvalArgs(e, 1, scope);
  if (!args.ok()) return args.status();
  absl::StatusOr<Value> result = callee->function()(*args);
  if (!result.ok()) return AtLine(result.status(), e.line);
  return result;
}

namespace {

// Eval frames alive at once; each is a few hundred bytes of stack.
constexpr int kMaxEvalDepth = 2000;

}  // namespace

absl::StatusOr<Value> Interpreter::Eval(const Expr& e, Scope* scope) {
  if (eval_depth_ >= kMaxEvalDepth) {
    return absl::ResourceExhaustedError(absl::StrCat("chat template line ", e.line,
                                                     ": expressions and macro calls nested over ",
                                                     kMaxEvalDepth, " deep"));
  }
  ++eval_depth_;
  absl::StatusOr<Value> v = EvalNode(e, scope);
  --eval_depth_;
  return v;
}

absl::StatusOr<Value> Interpreter::EvalNode(const Expr& e, Scope* scope) {
  using K = Expr::Kind;
  switch (e.kind) {
    case K::kLiteral:
      return e.literal;
    case K::kName:
      return Lookup(e.name, scope);
    case K::kList:
    case K::kTuple: {
      absl::StatusOr<CallArgs> items = EvalArgs(e, 0, scope);
      if (!items.ok()) return items.status();
      return Value::List(std::move(items->positional), e.kind == K::kTuple);
    }
    case K::kDict: {
      Dict d;
      for (size_t i = 0; i < e.args.size(); ++i) {
        absl::StatusOr<Value> k = Eval(*e.args[i], scope);
        if (!k.ok()) return k.status();
        if (!k->is_string()) {
          return absl::UnimplementedError(absl::StrCat(
              "chat template line ", e.line, ": dict keys other than strings are not supported"));
        }
        absl::StatusOr<Value> v = Eval(*e.args2[i], scope);
        if (!v.ok()) return v.status();
        d.Set(k->str(), *std::move(v));
      }
      return Value::MakeDict(std::move(d));
    }
    case K::kGetAttr:
    case K::kGetItem:
    case K::kSlice: {
      absl::StatusOr<Value> obj = Eval(*e.args[0], scope);
      if (!obj.ok()) return obj.status();
      if (obj->is_undefined()) return AtLine(UndefinedError(*obj), e.line);
      if (e.kind == K::kGetAttr) return GetAttr(*obj, e.name);
      Value parts[3];
      for (size_t i = 1; i < e.args.size(); ++i) {
        if (e.args[i] == nullptr) continue;
        absl::StatusOr<Value> p = Eval(*e.args[i], scope);
        if (!p.ok()) return p.status();
        parts[i - 1] = *std::move(p);
      }
      if (e.kind == K::kGetItem) return GetItem(*obj, parts[0]);
      absl::StatusOr<Value> sliced = Slice(*obj, parts[0], parts[1], parts[2]);
      if (!sliced.ok()) return AtLine(sliced.status(), e.line);
      return sliced;
    }
    case K::kCall:
      return EvalCall(e, scope);
    case K::kFilter:
    case K::kTest: {
      absl::StatusOr<Value> input = Eval(*e.args[0], scope);
      if (!input.ok()) return input.status();
      absl::StatusOr<CallArgs> args = EvalArgs(e, 1, scope);
      if (!args.ok()) return args.status();
      if (e.kind == K::kFilter) {
        absl::StatusOr<Value> v = ApplyFilter(e.name, *input, *args);
        if (!v.ok()) return AtLine(v.status(), e.line);
        return v;
      }
      absl::StatusOr<bool> pass = ApplyTest(e.name, *input, *args);
      if (!pass.ok()) return AtLine(pass.status(), e.line);
      return Value::Bool(*pass != e.negated);
    }
    case K::kNot: {
      absl::StatusOr<Value> v = Eval(*e.args[0], scope);
      if (!v.ok()) return v.status();
      return Value::Bool(!Truthy(*v));
    }
    case K::kNeg:
    case K::kPos: {
      absl::StatusOr<Value> v = Eval(*e.args[0], scope);
      if (!v.ok()) return v.status();
      if (v->is_undefined()) return AtLine(UndefinedError(*v), e.line);
      if (!v->is_number()) {
        return absl::InvalidArgumentError(
            absl::StrCat("chat template line ", e.line, ": TypeError: bad operand type for unary ",
                         e.kind == K::kNeg ? "-" : "+", ": '", TypeName(*v), "'"));
      }
      if (e.kind == K::kPos) return *v;
      if (v->kind() == Value::Kind::kFloat) return Value::Float(-v->number_value());
      if (v->int_value() == INT64_MIN) {
        return absl::InvalidArgumentError(
            absl::StrCat("chat template line ", e.line, ": integer overflow in unary -"));
      }
      return Value::Int(-v->int_value());
    }
    case K::kBinary: {
      absl::StatusOr<Value> a = Eval(*e.args[0], scope);
      if (!a.ok()) return a.status();
      absl::StatusOr<Value> b = Eval(*e.args[1], scope);
      if (!b.ok()) return b.status();
      absl::StatusOr<Value> r = BinaryOp(e.name, *a, *b);
      if (!r.ok()) return AtLine(r.status(), e.line);
      return r;
    }
    case K::kCompare: {
      absl::StatusOr<Value> left = Eval(*e.args[0], scope);
      if (!left.ok()) return left.status();
      for (size_t i = 0; i < e.ops.size(); ++i) {
        absl::StatusOr<Value> right = Eval(*e.args[i + 1], scope);
        if (!right.ok()) return right.status();
        absl::StatusOr<bool> r = CompareOp(e.ops[i], *left, *right);
        if (!r.ok()) return AtLine(r.status(), e.line);
        if (!*r) return Value::Bool(false);
        left = std::move(right);
      }
      return Value::Bool(true);
    }
    case K::kAnd:
    case K::kOr: {
      // Python returns the deciding operand, not a bool.
      absl::StatusOr<Value> a = Eval(*e.args[0], scope);
      if (!a.ok()) return a.status();
      if (Truthy(*a) == (e.kind == K::kOr)) return a;
      return Eval(*e.args[1], scope);
    }
    case K::kCondExpr: {
      absl::StatusOr<Value> c = Eval(*e.args[0], scope);
      if (!c.ok()) return c.status();
      if (Truthy(*c)) return Eval(*e.args[1], scope);
      if (e.args[2] == nullptr) return Value::Undefined("the if expression has no else");
      return Eval(*e.args[2], scope);
    }
  }
  return absl::InternalError("unknown expression");
}

}  // namespace shardlm::jinja
