#include "coordinator/jinja/interpreter.h"

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "coordinator/jinja/filters.h"
#include "coordinator/jinja/methods.h"
#include "coordinator/jinja/operators.h"

namespace shardlm::jinja {

absl::Status AtLine(const absl::Status& status, int line) {
  if (status.ok() || absl::StartsWith(status.message(), "chat template line ")) return status;
  return absl::Status(status.code(),
                      absl::StrCat("chat template line ", line, ": ", status.message()));
}

namespace {

// loop.cycle(a, b, ...): the argument for this iteration, round robin.
absl::StatusOr<Value> LoopCycle(int64_t index, const CallArgs& args) {
  if (args.positional.empty()) {
    return absl::InvalidArgumentError("loop.cycle needs at least one argument");
  }
  return args.positional[static_cast<size_t>(index) % args.positional.size()];
}

}  // namespace

Interpreter::Interpreter(const Dict& variables, const RenderOptions& options) : options_(options) {
  AddGlobals();
  for (const auto& [k, v] : variables.items) globals_.vars[k] = v;
  root_.parent = &globals_;
}

absl::StatusOr<std::string> Interpreter::Run(const Body& body) {
  std::string out;
  absl::StatusOr<Flow> flow = Exec(body, &root_, &out);
  if (!flow.ok()) return flow.status();
  return out;
}

absl::Status Interpreter::Step(int line) {
  if (++steps_ > options_.max_steps) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "chat template line ", line, ": rendering took more than ", options_.max_steps, " steps"));
  }
  return absl::OkStatus();
}

absl::Status Interpreter::Append(std::string_view text, std::string* out) {
  output_bytes_ += text.size();
  if (output_bytes_ > options_.max_output_bytes) {
    return absl::ResourceExhaustedError(
        absl::StrCat("chat template output over ", options_.max_output_bytes, " bytes"));
  }
  out->append(text);
  return absl::OkStatus();
}

Value Interpreter::Lookup(const std::string& name, Scope* scope) const {
  for (const Scope* s = scope; s != nullptr; s = s->parent) {
    auto it = s->vars.find(name);
    if (it != s->vars.end()) return it->second;
  }
  return Value::Undefined(absl::StrCat("'", name, "' is undefined"));
}

absl::StatusOr<Interpreter::Flow> Interpreter::Exec(const Body& body, Scope* scope,
                                                    std::string* out) {
  for (const StmtPtr& s : body) {
    absl::StatusOr<Flow> flow = ExecStmt(*s, scope, out);
    if (!flow.ok()) return AtLine(flow.status(), s->line);
    if (*flow != Flow::kNormal) return flow;
  }
  return Flow::kNormal;
}

absl::StatusOr<Interpreter::Flow> Interpreter::ExecStmt(const Stmt& s, Scope* scope,
                                                        std::string* out) {
  if (absl::Status st = Step(s.line); !st.ok()) return st;
  switch (s.kind) {
    case Stmt::Kind::kText:
      if (absl::Status st = Append(s.text, out); !st.ok()) return st;
      return Flow::kNormal;
    case Stmt::Kind::kOutput: {
      absl::StatusOr<Value> v = Eval(*s.expr, scope);
      if (!v.ok()) return v.status();
      if (absl::Status st = Append(ToStr(*v), out); !st.ok()) return st;
      return Flow::kNormal;
    }
    case Stmt::Kind::kIf:
      for (size_t i = 0; i < s.conditions.size(); ++i) {
        absl::StatusOr<Value> c = Eval(*s.conditions[i], scope);
        if (!c.ok()) return c.status();
        if (Truthy(*c)) return Exec(s.bodies[i], scope, out);
      }
      return Exec(s.else_body, scope, out);
    case Stmt::Kind::kFor:
      if (absl::Status st = ExecFor(s, scope, out); !st.ok()) return st;
      return Flow::kNormal;
    case Stmt::Kind::kSet:
    case Stmt::Kind::kSetBlock:
      if (absl::Status st = ExecSet(s, scope); !st.ok()) return st;
      return Flow::kNormal;
    case Stmt::Kind::kMacro: {
      const Stmt* macro = &s;
      scope->vars[s.name] = Value::MakeFunction(
          s.name, [this, macro](const CallArgs& args) { return CallMacro(*macro, args); });
      return Flow::kNormal;
    }
    case Stmt::Kind::kBreak:
      return Flow::kBreak;
    case Stmt::Kind::kContinue:
      return Flow::kContinue;
    case Stmt::Kind::kGeneration:
      return Exec(s.body, scope, out);
    case Stmt::Kind::kCallBlock:
      if (absl::Status st = ExecCallBlock(s, scope, out); !st.ok()) return st;
      return Flow::kNormal;
  }
  return absl::InternalError("unknown statement");
}

absl::Status Interpreter::ExecSet(const Stmt& s, Scope* scope) {
  Value value;
  if (s.kind == Stmt::Kind::kSetBlock) {
    std::string text;
    absl::StatusOr<Flow> flow = Exec(s.body, scope, &text);
    if (!flow.ok()) return flow.status();
    value = Value::String(std::move(text));
  } else {
    absl::StatusOr<Value> v = Eval(*s.expr, scope);
    if (!v.ok()) return v.status();
    value = *std::move(v);
  }
  if (s.attr.empty()) {
    scope->vars[s.targets[0]] = std::move(value);
    return absl::OkStatus();
  }
  const Value ns = Lookup(s.targets[0], scope);
  if (!ns.is_namespace()) {
    return absl::InvalidArgumentError(
        absl::StrCat("TemplateRuntimeError: cannot assign attribute on non-namespace object '",
                     s.targets[0], "'"));
  }
  ns.dict().Set(s.attr, std::move(value));
  return absl::OkStatus();
}

absl::Status Interpreter::ExecFor(const Stmt& s, Scope* scope, std::string* out) {
  absl::StatusOr<Value> iterable = Eval(*s.expr, scope);
  if (!iterable.ok()) return iterable.status();
  absl::StatusOr<std::vector<Value>> all = Iterate(*iterable);
  if (!all.ok()) return all.status();
  auto bind = [&](const Value& item, Scope* target) -> absl::Status {
    if (s.targets.size() == 1) {
      target->vars[s.targets[0]] = item;
      return absl::OkStatus();
    }
    absl::StatusOr<std::vector<Value>> parts = Iterate(item);
    if (!parts.ok()) return parts.status();
    if (parts->size() != s.targets.size()) {
      return absl::InvalidArgumentError(absl::StrCat("ValueError: cannot unpack ", parts->size(),
                                                     " values into ", s.targets.size(),
                                                     " loop variables"));
    }
    for (size_t i = 0; i < parts->size(); ++i) target->vars[s.targets[i]] = (*parts)[i];
    return absl::OkStatus();
  };
  // A loop filter runs before the loop, so loop.length/last count only
  // the items it keeps (as in Jinja2).
  std::vector<Value> items;
  for (const Value& item : *all) {
    if (absl::Status st = Step(s.line); !st.ok()) return st;
    if (s.filter == nullptr) {
      items.push_back(item);
      continue;
    }
    Scope probe{{}, scope};
    if (absl::Status st = bind(item, &probe); !st.ok()) return st;
    absl::StatusOr<Value> keep = Eval(*s.filter, &probe);
    if (!keep.ok()) return keep.status();
    if (Truthy(*keep)) items.push_back(item);
  }
  const int64_t n = static_cast<int64_t>(items.size());
  for (int64_t i = 0; i < n; ++i) {
    if (absl::Status st = Step(s.line); !st.ok()) return st;
    Scope iteration{{}, scope};
    if (absl::Status st = bind(items[i], &iteration); !st.ok()) return st;
    Dict loop;
    loop.items = {{"index", Value::Int(i + 1)},    {"index0", Value::Int(i)},
                  {"revindex", Value::Int(n - i)}, {"revindex0", Value::Int(n - i - 1)},
                  {"first", Value::Bool(i == 0)},  {"last", Value::Bool(i == n - 1)},
                  {"length", Value::Int(n)},       {"depth", Value::Int(1)},
                  {"depth0", Value::Int(0)}};
    if (i > 0) loop.items.emplace_back("previtem", items[i - 1]);
    if (i + 1 < n) loop.items.emplace_back("nextitem", items[i + 1]);
    loop.items.emplace_back("cycle", Value::MakeFunction("loop.cycle", [i](const CallArgs& a) {
                              return LoopCycle(i, a);
                            }));
    iteration.vars["loop"] = Value::MakeDict(std::move(loop));
    absl::StatusOr<Flow> flow = Exec(s.body, &iteration, out);
    if (!flow.ok()) return flow.status();
    if (*flow == Flow::kBreak) break;
  }
  if (n == 0) {
    absl::StatusOr<Flow> flow = Exec(s.else_body, scope, out);
    if (!flow.ok()) return flow.status();
  }
  return absl::OkStatus();
}

absl::Status Interpreter::ExecCallBlock(const Stmt& s, Scope* scope, std::string* out) {
  absl::StatusOr<Value> callee = Eval(*s.expr->args[0], scope);
  if (!callee.ok()) return callee.status();
  if (!callee->is_function()) {
    return absl::InvalidArgumentError(
        absl::StrCat("{% call %} needs a macro, not ", TypeName(*callee)));
  }
  absl::StatusOr<CallArgs> args = EvalArgs(*s.expr, 1, scope);
  if (!args.ok()) return args.status();
  // caller() renders the block in the scope of the call site, which lives
  // only until the call returns: a caller() kept past that fails.
  auto alive = std::make_shared<bool>(true);
  args->keyword.emplace_back(
      "caller", Value::MakeFunction("caller", [this, &s, scope, alive](const CallArgs& a) {
        if (!*alive) {
          return absl::StatusOr<Value>(
              absl::FailedPreconditionError("caller() used after its {% call %} block"));
        }
        Scope block{{}, scope};
        for (size_t i = 0; i < s.targets.size(); ++i) {
          const Value* v = a.Get(i, s.targets[i]);
          block.vars[s.targets[i]] = v != nullptr ? *v : Value::Undefined(s.targets[i]);
        }
        std::string text;
        absl::StatusOr<Flow> flow = Exec(s.body, &block, &text);
        if (!flow.ok()) return absl::StatusOr<Value>(flow.status());
        return absl::StatusOr<Value>(Value::String(std::move(text)));
      }));
  absl::StatusOr<Value> result = callee->function()(*args);
  *alive = false;
  if (!result.ok()) return result.status();
  return Append(ToStr(*result), out);
}

absl::StatusOr<Value> Interpreter::CallMacro(const Stmt& macro, const CallArgs& args) {
  if (call_depth_ >= options_.max_call_depth) {
    return absl::ResourceExhaustedError(absl::StrCat("macro '", macro.name, "' nested more than ",
                                                     options_.max_call_depth, " calls deep"));
  }
  if (args.positional.size() > macro.targets.size()) {
    return absl::InvalidArgumentError(absl::StrCat("TypeError: macro '", macro.name,
                                                   "' takes not more than ", macro.targets.size(),
                                                   " argument(s)"));
  }
  Scope scope{{}, &root_};
  for (size_t i = 0; i < macro.targets.size(); ++i) {
    const std::string& param = macro.targets[i];
    if (const Value* v = args.Get(i, param)) {
      scope.vars[param] = *v;
    } else if (macro.defaults[i] != nullptr) {
      absl::StatusOr<Value> def = Eval(*macro.defaults[i], &scope);
      if (!def.ok()) return AtLine(def.status(), macro.line);
      scope.vars[param] = *std::move(def);
    } else {
      scope.vars[param] =
          Value::Undefined(absl::StrCat("parameter '", param, "' was not provided"));
    }
  }
  for (const auto& [k, v] : args.keyword) {
    if (k == "caller") {  // from a {% call %} block
      scope.vars["caller"] = v;
      continue;
    }
    bool known = false;
    for (const std::string& p : macro.targets) known = known || p == k;
    if (!known) {
      return absl::InvalidArgumentError(
          absl::StrCat("TypeError: macro '", macro.name, "' takes no keyword argument '", k, "'"));
    }
  }
  ++call_depth_;
  std::string text;
  absl::StatusOr<Flow> flow = Exec(macro.body, &scope, &text);
  --call_depth_;
  if (!flow.ok()) return flow.status();
  return Value::String(std::move(text));
}

}  // namespace shardlm::jinja
