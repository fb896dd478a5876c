// Statements: {% if/elif/else %}, {% for %} (loop filter, else), {% set %}
// (plain, namespace attribute, block), {% macro %}, {% call %} blocks,
// {% break/continue %}
// (jinja2.ext.loopcontrols, which HF enables) and HF's {% generation %}.
#include "coordinator/jinja/parser.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "coordinator/jinja/parser_impl.h"

namespace shardlm::jinja {
const Token& Parser::Peek(size_t ahead) const {
  const size_t i = std::min(pos_ + ahead, tokens_.size() - 1);
  return tokens_[i];
}

const Token& Parser::Next() {
  const Token& t = tokens_[pos_];
  if (pos_ + 1 < tokens_.size()) ++pos_;
  return t;
}

bool Parser::IsOp(const char* op, size_t ahead) const {
  const Token& t = Peek(ahead);
  return t.type == Token::Type::kOperator && t.value == op;
}

bool Parser::IsName(const char* name, size_t ahead) const {
  const Token& t = Peek(ahead);
  return t.type == Token::Type::kName && t.value == name;
}

std::nullptr_t Parser::Fail(const std::string& msg) {
  if (error_.ok()) {
    error_ =
        absl::FailedPreconditionError(absl::StrCat("chat template line ", Peek().line, ": ", msg));
  }
  return nullptr;
}

bool Parser::Expect(const char* op) {
  if (IsOp(op)) {
    Next();
    return true;
  }
  const Token& t = Peek();
  Fail(absl::StrCat("expected '", op, "', found ",
                    t.type == Token::Type::kVarEnd || t.type == Token::Type::kBlockEnd
                        ? "the end of the tag"
                        : absl::StrCat("'", t.value, "'")));
  return false;
}

bool Parser::ExpectBlockEnd() {
  if (Peek().type == Token::Type::kBlockEnd) {
    Next();
    return true;
  }
  Fail(absl::StrCat("expected '%}', found '", Peek().value, "'"));
  return false;
}

Body Parser::ParseBody(const std::vector<std::string>& end_tags, std::string* found) {
  Body body;
  if (++depth_ > kMaxDepth) {
    Fail("blocks nested too deeply");
    return body;
  }
  while (error_.ok()) {
    const Token& t = Peek();
    if (t.type == Token::Type::kEnd) {
      if (!end_tags.empty()) Fail(absl::StrCat("missing {% ", end_tags.back(), " %}"));
      break;
    }
    if (t.type == Token::Type::kText) {
      StmtPtr s = MakeStmt(Stmt::Kind::kText, t.line);
      s->text = Next().value;
      body.push_back(std::move(s));
      continue;
    }
    if (t.type == Token::Type::kVarBegin) {
      StmtPtr s = MakeStmt(Stmt::Kind::kOutput, Next().line);
      s->expr = ParseTuple(true);
      if (!s->expr) break;
      if (Peek().type != Token::Type::kVarEnd) {
        Fail(absl::StrCat("expected '}}', found '", Peek().value, "'"));
        break;
      }
      Next();
      body.push_back(std::move(s));
      continue;
    }
    if (t.type != Token::Type::kBlockBegin) {
      Fail(absl::StrCat("unexpected '", t.value, "'"));
      break;
    }
    const Token& name = Peek(1);
    if (name.type == Token::Type::kName &&
        std::find(end_tags.begin(), end_tags.end(), name.value) != end_tags.end()) {
      Next();
      *found = Next().value;
      break;
    }
    StmtPtr s = ParseStatement();
    if (!s) break;
    body.push_back(std::move(s));
  }
  --depth_;
  return body;
}

StmtPtr Parser::ParseStatement() {
  const int line = Next().line;  // {%
  const Token& t = Peek();
  if (t.type != Token::Type::kName) return Fail("expected a tag name after '{%'");
  const std::string tag = Next().value;
  if (tag == "if") return ParseIf(line);
  if (tag == "for") return ParseFor(line);
  if (tag == "set") return ParseSet(line);
  if (tag == "macro") return ParseMacro(line);
  if (tag == "call") return ParseCallBlock(line);
  auto s = std::make_unique<Stmt>();
  s->line = line;
  if (tag == "break" || tag == "continue") {
    if (loops_ == 0) return Fail(absl::StrCat("'", tag, "' outside a for loop"));
    s->kind = tag == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue;
    if (!ExpectBlockEnd()) return nullptr;
    return s;
  }
  if (tag == "generation") {
    s->kind = Stmt::Kind::kGeneration;
    if (!ExpectBlockEnd()) return nullptr;
    std::string end;
    s->body = ParseBody({"endgeneration"}, &end);
    if (!error_.ok() || !ExpectBlockEnd()) return nullptr;
    return s;
  }
  return Fail(absl::StrCat("unsupported tag '{% ", tag, " %}'"));
}

StmtPtr Parser::MakeStmt(Stmt::Kind kind, int line) {
  auto s = std::make_unique<Stmt>();
  s->kind = kind;
  s->line = line;
  return s;
}

bool Parser::ParseElseAndEnd(const std::string& end, const std::string& end_tag, Stmt* s) {
  if (end == "else") {
    if (!ExpectBlockEnd()) return false;
    std::string found;
    s->else_body = ParseBody({end_tag}, &found);
    if (!error_.ok()) return false;
  }
  return ExpectBlockEnd();
}

StmtPtr Parser::ParseIf(int line) {
  StmtPtr s = MakeStmt(Stmt::Kind::kIf, line);
  while (true) {
    ExprPtr cond = ParseTuple(true);
    if (!cond || !ExpectBlockEnd()) return nullptr;
    s->conditions.push_back(std::move(cond));
    std::string end;
    s->bodies.push_back(ParseBody({"elif", "else", "endif"}, &end));
    if (!error_.ok()) return nullptr;
    if (end == "elif") continue;
    if (!ParseElseAndEnd(end, "endif", s.get())) return nullptr;
    return s;
  }
}

StmtPtr Parser::ParseFor(int line) {
  StmtPtr s = MakeStmt(Stmt::Kind::kFor, line);
  const bool parens = IsOp("(");
  if (parens) Next();
  while (true) {
    if (Peek().type != Token::Type::kName) return Fail("expected a loop variable name");
    s->targets.push_back(Next().value);
    if (!IsOp(",")) break;
    Next();
  }
  if (parens && !Expect(")")) return nullptr;
  if (!IsName("in")) return Fail("expected 'in' in the for tag");
  Next();
  s->expr = ParseTuple(false);
  if (!s->expr) return nullptr;
  if (IsName("if")) {
    Next();
    s->filter = ParseExpression();
    if (!s->filter) return nullptr;
  }
  if (IsName("recursive")) return Fail("recursive for loops are not supported");
  if (!ExpectBlockEnd()) return nullptr;
  ++loops_;
  std::string end;
  s->body = ParseBody({"endfor", "else"}, &end);
  --loops_;
  if (!error_.ok() || !ParseElseAndEnd(end, "endfor", s.get())) return nullptr;
  return s;
}

StmtPtr Parser::ParseSet(int line) {
  StmtPtr s = MakeStmt(Stmt::Kind::kSet, line);
  if (Peek().type != Token::Type::kName) return Fail("expected a variable name after 'set'");
  s->targets.push_back(Next().value);
  if (IsOp(".")) {
    Next();
    if (Peek().type != Token::Type::kName) return Fail("expected an attribute name after '.'");
    s->attr = Next().value;
  }
  if (IsOp(",")) return Fail("tuple assignment in {% set %} is not supported");
  if (IsOp("=")) {
    Next();
    s->expr = ParseTuple(true);
    if (!s->expr || !ExpectBlockEnd()) return nullptr;
    return s;
  }
  if (!s->attr.empty()) return Fail("expected '=' after the namespace attribute");
  if (IsOp("|")) return Fail("filters on a {% set %} block are not supported");
  if (!ExpectBlockEnd()) return nullptr;
  s->kind = Stmt::Kind::kSetBlock;
  std::string end;
  s->body = ParseBody({"endset"}, &end);
  if (!error_.ok() || !ExpectBlockEnd()) return nullptr;
  return s;
}

StmtPtr Parser::ParseMacro(int line) {
  StmtPtr s = MakeStmt(Stmt::Kind::kMacro, line);
  if (Peek().type != Token::Type::kName) return Fail("expected a macro name");
  s->name = Next().value;
  if (!ParseParameters(s.get()) || !ExpectBlockEnd()) return nullptr;
  // A loop around the definition does not make break legal inside it.
  const int loops = loops_;
  loops_ = 0;
  std::string end;
  s->body = ParseBody({"endmacro"}, &end);
  loops_ = loops;
  if (!error_.ok()) return nullptr;
  if (Peek().type == Token::Type::kName && Peek().value == s->name) Next();
  if (!ExpectBlockEnd()) return nullptr;
  return s;
}

bool Parser::ParseParameters(Stmt* s) {
  if (!Expect("(")) return false;
  while (!IsOp(")")) {
    if (Peek().type != Token::Type::kName) {
      Fail("expected a parameter name");
      return false;
    }
    s->targets.push_back(Next().value);
    ExprPtr def;
    if (IsOp("=")) {
      Next();
      def = ParseExpression();
      if (!def) return false;
    }
    s->defaults.push_back(std::move(def));
    if (!IsOp(",")) break;
    Next();
  }
  return Expect(")");
}

StmtPtr Parser::ParseCallBlock(int line) {
  StmtPtr s = MakeStmt(Stmt::Kind::kCallBlock, line);
  if (IsOp("(") && !ParseParameters(s.get())) return nullptr;
  s->expr = ParseExpression();
  if (!s->expr) return nullptr;
  if (s->expr->kind != Expr::Kind::kCall) return Fail("{% call %} needs a macro call");
  if (!ExpectBlockEnd()) return nullptr;
  const int loops = loops_;
  loops_ = 0;
  std::string end;
  s->body = ParseBody({"endcall"}, &end);
  loops_ = loops;
  if (!error_.ok() || !ExpectBlockEnd()) return nullptr;
  return s;
}

absl::StatusOr<Body> Parse(std::string_view source) {
  absl::StatusOr<std::vector<Token>> tokens = Tokenize(source);
  if (!tokens.ok()) return tokens.status();
  Parser parser(std::move(*tokens));
  std::string end;
  Body body = parser.ParseBody({}, &end);
  if (!parser.error().ok()) return parser.error();
  return body;
}

}  // namespace shardlm::jinja
