// The parsed template: expressions and statements, each with its source line
// (errors name it). One node type per level keeps the tree small to walk;
// the fields a kind does not use stay empty.
#ifndef SHARDLM_COORDINATOR_JINJA_AST_H_
#define SHARDLM_COORDINATOR_JINJA_AST_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "coordinator/jinja/value.h"

namespace shardlm::jinja {

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,   // literal
    kName,      // name
    kList,      // args
    kTuple,     // args
    kDict,      // kwargs: key expressions in args, values in args2
    kGetAttr,   // args[0].name
    kGetItem,   // args[0][args[1]]
    kSlice,     // args[0][args[1]:args[2]:args[3]] (null parts omitted)
    kCall,      // args[0](args[1:], kwargs)
    kFilter,    // args[0] | name(args[1:], kwargs)
    kTest,      // args[0] is [not] name(args[1:])
    kNot,       // not args[0]
    kNeg,       // -args[0]
    kPos,       // +args[0]
    kBinary,    // args[0] name args[1]: + - * / // % ** ~
    kCompare,   // args[0] ops[0] args[1] ops[1] args[2] ...
    kAnd,       // args[0] and args[1]
    kOr,        // args[0] or args[1]
    kCondExpr,  // args[1] if args[0] else args[2] (args[2] may be null)
  };
  Kind kind;
  int line = 0;
  Value literal;
  std::string name;
  bool negated = false;
  std::vector<ExprPtr> args;
  std::vector<ExprPtr> args2;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum class Kind {
    kText,      // text
    kOutput,    // {{ expr }}
    kIf,        // conditions[i] -> bodies[i]; else_body
    kFor,       // for targets in expr [if filter]: body, else_body
    kSet,       // set targets[0][.attr] = expr
    kSetBlock,  // set targets[0] %}body{% endset
    kMacro,     // macro name(targets = defaults): body
    kBreak,
    kContinue,
    kGeneration,  // HF's {% generation %}: body, rendered as is
    kCallBlock,   // call(targets) expr %}body{% endcall: expr's macro gets caller()
  };
  Kind kind;
  int line = 0;
  std::string text;
  std::string name;
  std::string attr;
  ExprPtr expr;
  ExprPtr filter;
  std::vector<std::string> targets;
  std::vector<ExprPtr> defaults;  // macro parameters' defaults (null: none)
  std::vector<ExprPtr> conditions;
  std::vector<Body> bodies;
  Body body;
  Body else_body;
};

}  // namespace shardlm::jinja

#endif  // SHARDLM_COORDINATOR_JINJA_AST_H_
