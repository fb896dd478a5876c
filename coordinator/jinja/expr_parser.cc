// Expressions, with Jinja2's precedence (lowest first): a if c else b, or,
// and, not, comparisons (chained, `in`, `not in`), + -, ~, * / // %, **,
// unary - +, then postfix . [] () and | filters / `is` tests — so
// `'a' + x | trim` is `'a' + (x | trim)` and `n|length - 1` is `(n|length) - 1`.
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "coordinator/jinja/parser_impl.h"

namespace shardlm::jinja {
ExprPtr Parser::Make(Expr::Kind kind, int line) {
  auto e = std::make_unique<Expr>();
  e->kind = kind;
  e->line = line;
  return e;
}

ExprPtr Parser::ParseTuple(bool condexpr) {
  const int line = Peek().line;
  ExprPtr first = ParseExpression(condexpr);
  if (!first || !IsOp(",")) return first;
  ExprPtr tuple = Make(Expr::Kind::kTuple, line);
  tuple->args.push_back(std::move(first));
  while (IsOp(",")) {
    Next();
    const Token& t = Peek();
    if (t.type == Token::Type::kVarEnd || t.type == Token::Type::kBlockEnd || IsOp(")")) break;
    ExprPtr e = ParseExpression(condexpr);
    if (!e) return nullptr;
    tuple->args.push_back(std::move(e));
  }
  return tuple;
}

ExprPtr Parser::ParseExpression(bool condexpr) {
  if (++depth_ > kMaxDepth) return Fail("expression too long or nested too deeply");
  ExprPtr e = condexpr ? ParseCondExpr() : ParseOr();
  --depth_;
  return e;
}

ExprPtr Parser::ParseCondExpr() {
  ExprPtr e = ParseOr();
  Chain chain(this);
  while (e && IsName("if")) {
    if (!chain.Deepen()) return Fail("expression too long or nested too deeply");
    const int line = Next().line;
    ExprPtr c = Make(Expr::Kind::kCondExpr, line);
    ExprPtr cond = ParseOr();
    if (!cond) return nullptr;
    c->args.push_back(std::move(cond));
    c->args.push_back(std::move(e));
    if (IsName("else")) {
      Next();
      ExprPtr other = ParseExpression(true);
      if (!other) return nullptr;
      c->args.push_back(std::move(other));
    } else {
      c->args.push_back(nullptr);
    }
    e = std::move(c);
  }
  return e;
}

ExprPtr Parser::ParseOr() { return ParseKeywordChain("or", Expr::Kind::kOr, &Parser::ParseAnd); }

ExprPtr Parser::ParseAnd() { return ParseKeywordChain("and", Expr::Kind::kAnd, &Parser::ParseNot); }

ExprPtr Parser::ParseKeywordChain(const char* keyword, Expr::Kind kind,
                                  ExprPtr (Parser::*operand)()) {
  ExprPtr e = (this->*operand)();
  Chain chain(this);
  while (e && IsName(keyword)) {
    if (!chain.Deepen()) return Fail("expression too long or nested too deeply");
    ExprPtr o = Make(kind, Next().line);
    ExprPtr r = (this->*operand)();
    if (!r) return nullptr;
    o->args.push_back(std::move(e));
    o->args.push_back(std::move(r));
    e = std::move(o);
  }
  return e;
}

ExprPtr Parser::ParseNot() {
  if (IsName("not")) {
    ExprPtr n = Make(Expr::Kind::kNot, Next().line);
    if (++depth_ > kMaxDepth) return Fail("expression too long or nested too deeply");
    ExprPtr operand = ParseNot();
    --depth_;
    if (!operand) return nullptr;
    n->args.push_back(std::move(operand));
    return n;
  }
  return ParseCompare();
}

ExprPtr Parser::ParseCompare() {
  ExprPtr e = ParseBinary(0);
  if (!e) return nullptr;
  ExprPtr cmp;
  while (true) {
    std::string op;
    if (IsOp("==") || IsOp("!=") || IsOp("<") || IsOp("<=") || IsOp(">") || IsOp(">=")) {
      op = Next().value;
    } else if (IsName("in")) {
      Next();
      op = "in";
    } else if (IsName("not") && IsName("in", 1)) {
      Next();
      Next();
      op = "notin";
    } else {
      break;
    }
    if (!cmp) {
      cmp = Make(Expr::Kind::kCompare, e->line);
      cmp->args.push_back(std::move(e));
    }
    ExprPtr r = ParseBinary(0);
    if (!r) return nullptr;
    cmp->ops.push_back(op);
    cmp->args.push_back(std::move(r));
  }
  return cmp ? std::move(cmp) : std::move(e);
}

ExprPtr Parser::ParseBinary(int level) {
  // Left-associative levels, loosest first; below the last comes unary.
  static const std::vector<std::vector<std::string>> kLevels = {
      {"+", "-"}, {"~"}, {"*", "/", "//", "%"}, {"**"}};
  auto operand = [&] {
    return level + 1 < static_cast<int>(kLevels.size()) ? ParseBinary(level + 1) : ParseUnary(true);
  };
  ExprPtr e = operand();
  Chain chain(this);
  while (e) {
    if (!chain.Deepen()) return Fail("expression too long or nested too deeply");
    const std::string* found = nullptr;
    for (const std::string& op : kLevels[level]) {
      if (IsOp(op.c_str())) found = &op;
    }
    if (found == nullptr) break;
    ExprPtr b = Make(Expr::Kind::kBinary, Next().line);
    b->name = *found;
    ExprPtr r = operand();
    if (!r) return nullptr;
    b->args.push_back(std::move(e));
    b->args.push_back(std::move(r));
    e = std::move(b);
  }
  return e;
}

ExprPtr Parser::ParseUnary(bool with_filter) {
  if (++depth_ > kMaxDepth) return Fail("expression too long or nested too deeply");
  ExprPtr e;
  if (IsOp("-") || IsOp("+")) {
    const bool neg = IsOp("-");
    e = Make(neg ? Expr::Kind::kNeg : Expr::Kind::kPos, Next().line);
    ExprPtr operand = ParseUnary(false);
    if (!operand) return nullptr;
    e->args.push_back(std::move(operand));
  } else {
    e = ParsePrimary();
  }
  if (e) e = ParsePostfix(std::move(e));
  if (e && with_filter) e = ParseFilterExpr(std::move(e));
  --depth_;
  return e;
}

ExprPtr Parser::ParsePrimary() {
  const Token& t = Peek();
  const int line = t.line;
  switch (t.type) {
    case Token::Type::kName: {
      const std::string name = Next().value;
      ExprPtr e = Make(Expr::Kind::kLiteral, line);
      if (name == "true" || name == "True") {
        e->literal = Value::Bool(true);
      } else if (name == "false" || name == "False") {
        e->literal = Value::Bool(false);
      } else if (name == "none" || name == "None") {
        e->literal = Value::None();
      } else {
        e->kind = Expr::Kind::kName;
        e->name = name;
      }
      return e;
    }
    case Token::Type::kString: {
      // Adjacent literals concatenate, as in Python.
      std::string s;
      while (Peek().type == Token::Type::kString) s += Next().value;
      ExprPtr e = Make(Expr::Kind::kLiteral, line);
      e->literal = Value::String(std::move(s));
      return e;
    }
    case Token::Type::kInt: {
      ExprPtr e = Make(Expr::Kind::kLiteral, line);
      e->literal = Value::Int(std::strtoll(Next().value.c_str(), nullptr, 10));
      return e;
    }
    case Token::Type::kFloat: {
      ExprPtr e = Make(Expr::Kind::kLiteral, line);
      e->literal = Value::Float(std::strtod(Next().value.c_str(), nullptr));
      return e;
    }
    default:
      break;
  }
  if (IsOp("(")) {
    Next();
    if (IsOp(")")) {
      Next();
      return Make(Expr::Kind::kTuple, line);
    }
    ExprPtr e = ParseTuple(true);
    if (!e || !Expect(")")) return nullptr;
    return e;
  }
  if (IsOp("[") || IsOp("{")) {
    const bool dict = IsOp("{");
    Next();
    ExprPtr e = Make(dict ? Expr::Kind::kDict : Expr::Kind::kList, line);
    const char* close = dict ? "}" : "]";
    while (!IsOp(close)) {
      ExprPtr item = ParseExpression();
      if (!item) return nullptr;
      e->args.push_back(std::move(item));
      if (dict) {
        if (!Expect(":")) return nullptr;
        ExprPtr value = ParseExpression();
        if (!value) return nullptr;
        e->args2.push_back(std::move(value));
      }
      if (!IsOp(",")) break;
      Next();
    }
    if (!Expect(close)) return nullptr;
    return e;
  }
  if (t.type == Token::Type::kVarEnd || t.type == Token::Type::kBlockEnd) {
    return Fail("expected an expression before the end of the tag");
  }
  return Fail(absl::StrCat("unexpected '", t.value, "' in an expression"));
}

ExprPtr Parser::ParsePostfix(ExprPtr e) {
  Chain chain(this);
  while (e) {
    if (!chain.Deepen()) return Fail("expression too long or nested too deeply");
    if (IsOp(".")) {
      const int line = Next().line;
      const Token& t = Next();
      if (t.type == Token::Type::kName) {
        ExprPtr a = Make(Expr::Kind::kGetAttr, line);
        a->name = t.value;
        a->args.push_back(std::move(e));
        e = std::move(a);
      } else if (t.type == Token::Type::kInt) {
        ExprPtr a = Make(Expr::Kind::kGetItem, line);
        a->args.push_back(std::move(e));
        ExprPtr index = Make(Expr::Kind::kLiteral, line);
        index->literal = Value::Int(std::strtoll(t.value.c_str(), nullptr, 10));
        a->args.push_back(std::move(index));
        e = std::move(a);
      } else {
        return Fail("expected an attribute name after '.'");
      }
    } else if (IsOp("[")) {
      e = ParseSubscript(std::move(e));
    } else if (IsOp("(")) {
      e = ParseCall(std::move(e));
      if (!e) return nullptr;
    } else {
      break;
    }
  }
  return e;
}

ExprPtr Parser::ParseSubscript(ExprPtr e) {
  const int line = Next().line;  // '['
  ExprPtr parts[3];
  bool slice = false;
  for (int i = 0; i < 3; ++i) {
    if (!IsOp(":") && !IsOp("]")) {
      parts[i] = ParseExpression();
      if (!parts[i]) return nullptr;
    }
    if (!IsOp(":") || i == 2) break;
    Next();
    slice = true;
  }
  if (!Expect("]")) return nullptr;
  if (!slice) {
    if (!parts[0]) return Fail("empty subscript []");
    ExprPtr g = Make(Expr::Kind::kGetItem, line);
    g->args.push_back(std::move(e));
    g->args.push_back(std::move(parts[0]));
    return g;
  }
  ExprPtr s = Make(Expr::Kind::kSlice, line);
  s->args.push_back(std::move(e));
  for (ExprPtr& p : parts) s->args.push_back(std::move(p));
  return s;
}

ExprPtr Parser::ParseFilterExpr(ExprPtr e) {
  Chain chain(this);
  while (e) {
    if (!chain.Deepen()) return Fail("expression too long or nested too deeply");
    if (IsOp("|")) {
      const int line = Next().line;
      if (Peek().type != Token::Type::kName) return Fail("expected a filter name after '|'");
      ExprPtr f = Make(Expr::Kind::kFilter, line);
      f->name = Next().value;
      f->args.push_back(std::move(e));
      if (IsOp("(")) {
        Next();
        if (!ParseCallArgs(f.get())) return nullptr;
      }
      e = std::move(f);
    } else if (IsName("is")) {
      const int line = Next().line;
      ExprPtr t = Make(Expr::Kind::kTest, line);
      if (IsName("not")) {
        Next();
        t->negated = true;
      }
      if (Peek().type != Token::Type::kName) return Fail("expected a test name after 'is'");
      t->name = Next().value;
      t->args.push_back(std::move(e));
      const Token& a = Peek();
      if (IsOp("(")) {
        Next();
        if (!ParseCallArgs(t.get())) return nullptr;
      } else if ((a.type == Token::Type::kName || a.type == Token::Type::kString ||
                  a.type == Token::Type::kInt || a.type == Token::Type::kFloat || IsOp("[") ||
                  IsOp("{")) &&
                 !IsName("else") && !IsName("or") && !IsName("and")) {
        // One argument without parentheses: `x is divisibleby 3`.
        if (IsName("is")) return Fail("tests cannot be chained with 'is'");
        ExprPtr arg = ParsePrimary();
        if (arg) arg = ParsePostfix(std::move(arg));
        if (!arg) return nullptr;
        t->args.push_back(std::move(arg));
      }
      e = std::move(t);
    } else if (IsOp("(")) {
      e = ParseCall(std::move(e));
      if (!e) return nullptr;
    } else {
      break;
    }
  }
  return e;
}

ExprPtr Parser::ParseCall(ExprPtr callee) {
  ExprPtr call = Make(Expr::Kind::kCall, Next().line);  // '('
  call->args.push_back(std::move(callee));
  if (!ParseCallArgs(call.get())) return nullptr;
  return call;
}

bool Parser::ParseCallArgs(Expr* call) {
  while (!IsOp(")")) {
    if (IsOp("*") || IsOp("**")) {
      Fail("*args and **kwargs in calls are not supported");
      return false;
    }
    if (Peek().type == Token::Type::kName && IsOp("=", 1)) {
      std::string key = Next().value;
      Next();
      ExprPtr value = ParseExpression();
      if (!value) return false;
      call->kwargs.emplace_back(std::move(key), std::move(value));
    } else {
      if (!call->kwargs.empty()) {
        Fail("a positional argument follows keyword arguments");
        return false;
      }
      ExprPtr value = ParseExpression();
      if (!value) return false;
      call->args.push_back(std::move(value));
    }
    if (!IsOp(",")) break;
    Next();
  }
  return Expect(")");
}

}  // namespace shardlm::jinja
