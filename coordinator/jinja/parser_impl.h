// Internal to the parser: the recursive-descent parser shared by
// parser.cc (statements) and expr_parser.cc (expressions).
#ifndef SHARDLM_COORDINATOR_JINJA_PARSER_IMPL_H_
#define SHARDLM_COORDINATOR_JINJA_PARSER_IMPL_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "coordinator/jinja/ast.h"
#include "coordinator/jinja/lexer.h"

namespace shardlm::jinja {

// Methods return null (an empty body) after the first error, which stays in
// error(): callers check and unwind.
class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  // Statements until one of `end_tags` opens a block (its name is consumed
  // and stored in *found) or, with no end tags, the end of the template.
  Body ParseBody(const std::vector<std::string>& end_tags, std::string* found);
  const absl::Status& error() const { return error_; }

  // Expressions (expr_parser.cc).
  ExprPtr ParseTuple(bool condexpr);
  ExprPtr ParseExpression(bool condexpr = true);

 private:
  static StmtPtr MakeStmt(Stmt::Kind kind, int line);
  StmtPtr ParseStatement();
  // After the body of an if/for closed by `end`: the else body through
  // {% end_tag %} when `end` is "else", then the closing block's '%}'.
  bool ParseElseAndEnd(const std::string& end, const std::string& end_tag, Stmt* s);
  StmtPtr ParseIf(int line);
  StmtPtr ParseFor(int line);
  StmtPtr ParseSet(int line);
  StmtPtr ParseMacro(int line);
  StmtPtr ParseCallBlock(int line);
  // "(a, b=1)" of a macro or call block: names into targets, defaults.
  bool ParseParameters(Stmt* s);

  ExprPtr ParseCondExpr();
  ExprPtr ParseOr();
  ExprPtr ParseAnd();
  // Left-associative `a <keyword> b <keyword> c`, each operand from `operand`.
  ExprPtr ParseKeywordChain(const char* keyword, Expr::Kind kind, ExprPtr (Parser::*operand)());
  ExprPtr ParseNot();
  ExprPtr ParseCompare();
  // level 0: + -, 1: ~, 2: * / // %, 3: **.
  ExprPtr ParseBinary(int level);
  ExprPtr ParseUnary(bool with_filter);
  ExprPtr ParsePrimary();
  ExprPtr ParsePostfix(ExprPtr e);
  ExprPtr ParseFilterExpr(ExprPtr e);
  ExprPtr ParseSubscript(ExprPtr e);
  // At '(': a call of `callee` with the arguments through ')'.
  ExprPtr ParseCall(ExprPtr callee);
  // After '(': positional and keyword arguments into `call`, through ')'.
  bool ParseCallArgs(Expr* call);

  // Bound on depth_: templates nest a handful of levels; the bound keeps
  // parsing, evaluating and destroying the tree well within the stack.
  static constexpr int kMaxDepth = 100;

  // An operator applied to an already parsed operand deepens the tree as a
  // parenthesis would: Deepen() counts it in depth_ (false past the bound)
  // until the chain ends, so a+a+a+... is bounded like (((a))).
  class Chain {
   public:
    explicit Chain(Parser* parser) : parser_(parser) {}
    Chain(const Chain&) = delete;
    Chain& operator=(const Chain&) = delete;
    ~Chain() { parser_->depth_ -= links_; }
    bool Deepen() {
      ++links_;
      return ++parser_->depth_ <= kMaxDepth;
    }

   private:
    Parser* parser_;
    int links_ = 0;
  };

  const Token& Peek(size_t ahead = 0) const;
  const Token& Next();
  bool IsOp(const char* op, size_t ahead = 0) const;
  bool IsName(const char* name, size_t ahead = 0) const;
  // Consumes the operator or fails.
  bool Expect(const char* op);
  bool ExpectBlockEnd();
  std::nullptr_t Fail(const std::string& msg);
  static ExprPtr Make(Expr::Kind kind, int line);

  std::vector<Token> tokens_;
  size_t pos_ = 0;
  int depth_ = 0;  // nesting of expressions and blocks, bounded
  int loops_ = 0;  // enclosing for loops (break/continue need one)
  absl::Status error_;
};

}  // namespace shardlm::jinja

#endif  // SHARDLM_COORDINATOR_JINJA_PARSER_IMPL_H_
