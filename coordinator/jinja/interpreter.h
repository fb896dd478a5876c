// Walks a parsed template: statements write to an output string,
// expressions evaluate to Values. Scopes follow Jinja2: a for loop body gets
// a fresh scope per iteration (its `set`s do not leak), an if does not, a
// macro call sees the template's top-level variables at call time.
#ifndef SHARDLM_COORDINATOR_JINJA_INTERPRETER_H_
#define SHARDLM_COORDINATOR_JINJA_INTERPRETER_H_

#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "coordinator/jinja/ast.h"
#include "coordinator/jinja/template.h"
#include "coordinator/jinja/value.h"

namespace shardlm::jinja {

class Interpreter {
 public:
  Interpreter(const Dict& variables, const RenderOptions& options);
  Interpreter(const Interpreter&) = delete;
  Interpreter& operator=(const Interpreter&) = delete;

  absl::StatusOr<std::string> Run(const Body& body);

 private:
  struct Scope {
    absl::flat_hash_map<std::string, Value> vars;
    Scope* parent = nullptr;
  };
  enum class Flow { kNormal, kBreak, kContinue };

  absl::StatusOr<Flow> Exec(const Body& body, Scope* scope, std::string* out);
  absl::StatusOr<Flow> ExecStmt(const Stmt& s, Scope* scope, std::string* out);
  absl::Status ExecFor(const Stmt& s, Scope* scope, std::string* out);
  // {% set %}: a block set renders its body to a string, not to the output.
  absl::Status ExecSet(const Stmt& s, Scope* scope);
  // Eval with a bound on its recursion (expressions inside macro calls
  // inside expressions...): a recursive macro fails cleanly, well before
  // the thread's stack runs out.
  absl::StatusOr<Value> Eval(const Expr& e, Scope* scope);
  absl::StatusOr<Value> EvalNode(const Expr& e, Scope* scope);
  absl::StatusOr<Value> EvalCall(const Expr& e, Scope* scope);
  absl::StatusOr<CallArgs> EvalArgs(const Expr& e, size_t first, Scope* scope);
  absl::StatusOr<Value> CallMacro(const Stmt& macro, const CallArgs& args);
  absl::Status ExecCallBlock(const Stmt& s, Scope* scope, std::string* out);
  Value Lookup(const std::string& name, Scope* scope) const;
  absl::Status Append(std::string_view text, std::string* out);
  absl::Status Step(int line);
  void AddGlobals();

  RenderOptions options_;
  Scope globals_;
  Scope root_;
  int64_t steps_ = 0;
  int call_depth_ = 0;
  int eval_depth_ = 0;
  size_t output_bytes_ = 0;  // all text produced, macro output included
};

// Prefixes "chat template line N: " unless the message already names one.
absl::Status AtLine(const absl::Status& status, int line);

}  // namespace shardlm::jinja

#endif  // SHARDLM_COORDINATOR_JINJA_INTERPRETER_H_
