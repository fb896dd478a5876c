#include "coordinator/jinja/lexer.h"

#include <cstdlib>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace shardlm::jinja {
namespace {

bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

// Jinja2 turns every \r\n and \r of the source into \n (newline_sequence)
// and drops one trailing newline (keep_trailing_newline=False) before lexing.
std::string Normalize(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      out.push_back('\n');
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      out.push_back(source[i]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

void AppendUtf8(uint32_t c, std::string* out) {
  if (c < 0x80) {
    out->push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out->push_back(static_cast<char>(0xc0 | (c >> 6)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3f)));
  } else if (c < 0x10000) {
    out->push_back(static_cast<char>(0xe0 | (c >> 12)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3f)));
  } else {
    out->push_back(static_cast<char>(0xf0 | (c >> 18)));
    out->push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3f)));
    out->push_back(static_cast<char>(0x80 | (c & 0x3f)));
  }
}

class Lexer {
 public:
  explicit Lexer(std::string_view source) : src_(Normalize(source)) {}

  absl::StatusOr<std::vector<Token>> Run() {
    bool line_starting = true;
    while (pos_ < src_.size()) {
      size_t tag = pos_;
      while (true) {
        tag = src_.find('{', tag);
        if (tag == std::string::npos || tag + 1 >= src_.size()) break;
        const char k = src_[tag + 1];
        if (k == '{' || k == '%' || k == '#') break;
        ++tag;
      }
      if (tag == std::string::npos || tag + 1 >= src_.size()) {
        Emit(Token::Type::kText, src_.substr(pos_));
        Advance(src_.size());
        break;
      }
      const char kind = src_[tag + 1];
      const char control = tag + 2 < src_.size() ? src_[tag + 2] : '\0';
      std::string text = src_.substr(pos_, tag - pos_);
      if (control == '-') {
        while (!text.empty() && IsSpace(text.back())) text.pop_back();
      } else if (control != '+' && kind != '{') {
        // lstrip_blocks: a block or comment tag alone on its line loses the
        // spaces before it (not a {{ }}).
        const size_t l_pos = text.rfind('\n') + 1;  // npos + 1 == 0
        if ((l_pos > 0 || line_starting) && l_pos < text.size() &&
            text.find_first_not_of(" \t\f\v\r", l_pos) == std::string::npos) {
          text.resize(l_pos);
        }
      }
      if (!text.empty()) Emit(Token::Type::kText, text);
      Advance(tag);
      pos_ = tag + 2 + ((control == '-' || control == '+') ? 1 : 0);
      absl::Status st = kind == '#' ? Comment() : Tag(kind);
      if (!st.ok()) return st;
      line_starting = pos_ > 0 && src_[pos_ - 1] == '\n';
    }
    Emit(Token::Type::kEnd, "");
    return std::move(tokens_);
  }

 private:
  void Emit(Token::Type type, std::string value) {
    tokens_.push_back({type, std::move(value), line_});
  }
  // Moves to `to`, counting lines.
  void Advance(size_t to) {
    for (; pos_ < to; ++pos_) {
      if (src_[pos_] == '\n') ++line_;
    }
  }
  absl::Status Error(std::string msg) const {
    return absl::FailedPreconditionError(absl::StrCat("chat template line ", line_, ": ", msg));
  }

  // After a tag: `-` eats all following whitespace, else trim_blocks eats
  // one newline after a block or comment tag.
  void AfterTag(bool minus, bool block) {
    if (minus) {
      size_t p = pos_;
      while (p < src_.size() && IsSpace(src_[p])) ++p;
      Advance(p);
    } else if (block && pos_ < src_.size() && src_[pos_] == '\n') {
      Advance(pos_ + 1);
    }
  }

  absl::Status Comment() {
    const size_t end = src_.find("#}", pos_);
    if (end == std::string::npos) return Error("unterminated comment {# ... #}");
    const bool minus = end > pos_ && src_[end - 1] == '-';
    const bool plus = end > pos_ && src_[end - 1] == '+';
    Advance(end + 2);
    AfterTag(minus, !plus);
    return absl::OkStatus();
  }

  absl::Status Tag(char kind) {
    const bool block = kind == '%';
    Emit(block ? Token::Type::kBlockBegin : Token::Type::kVarBegin, "");
    const char close = block ? '%' : '}';
    int depth = 0;
    while (true) {
      size_t p = pos_;
      while (p < src_.size() && IsSpace(src_[p])) ++p;
      Advance(p);
      if (pos_ >= src_.size()) return Error(block ? "unterminated {% tag" : "unterminated {{ tag");
      const char c = src_[pos_];
      if (depth == 0) {
        // The closing delimiter, with optional whitespace control.
        const char ctl = (c == '-' || (c == '+' && block)) ? c : '\0';
        const size_t at = pos_ + (ctl ? 1 : 0);
        if (at + 1 < src_.size() && src_[at] == close && src_[at + 1] == '}') {
          Emit(block ? Token::Type::kBlockEnd : Token::Type::kVarEnd, "");
          Advance(at + 2);
          AfterTag(ctl == '-', block && ctl != '+');
          return absl::OkStatus();
        }
      }
      if (c == '\'' || c == '"') {
        if (absl::Status st = String(c); !st.ok()) return st;
      } else if (absl::ascii_isdigit(static_cast<unsigned char>(c))) {
        Number();
      } else if (absl::ascii_isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t e = pos_;
        while (e < src_.size() &&
               (absl::ascii_isalnum(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) {
          ++e;
        }
        Emit(Token::Type::kName, src_.substr(pos_, e - pos_));
        pos_ = e;
      } else {
        static constexpr const char* kTwo[] = {"//", "**", "==", "!=", "<=", ">="};
        std::string op;
        for (const char* two : kTwo) {
          if (src_.compare(pos_, 2, two) == 0) op = two;
        }
        if (op.empty()) {
          if (std::string_view("+-*/%~<>=()[]{},.:|").find(c) == std::string_view::npos) {
            return Error(absl::StrCat("unexpected character '", std::string(1, c), "'"));
          }
          op = std::string(1, c);
        }
        if (op == "(" || op == "[" || op == "{") ++depth;
        if ((op == ")" || op == "]" || op == "}") && depth > 0) --depth;
        Emit(Token::Type::kOperator, op);
        pos_ += op.size();
      }
    }
  }

  void Number() {
    size_t e = pos_;
    auto digits = [&] {
      while (e < src_.size() &&
             (absl::ascii_isdigit(static_cast<unsigned char>(src_[e])) || src_[e] == '_')) {
        ++e;
      }
    };
    digits();
    bool is_float = false;
    if (e + 1 < src_.size() && src_[e] == '.' &&
        absl::ascii_isdigit(static_cast<unsigned char>(src_[e + 1]))) {
      is_float = true;
      ++e;
      digits();
    }
    if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
      size_t f = e + 1;
      if (f < src_.size() && (src_[f] == '+' || src_[f] == '-')) ++f;
      if (f < src_.size() && absl::ascii_isdigit(static_cast<unsigned char>(src_[f]))) {
        is_float = true;
        e = f;
        digits();
      }
    }
    std::string text;
    for (size_t i = pos_; i < e; ++i) {
      if (src_[i] != '_') text.push_back(src_[i]);
    }
    Emit(is_float ? Token::Type::kFloat : Token::Type::kInt, text);
    pos_ = e;
  }

  // A string literal with Python's escapes (Jinja2 decodes them with
  // "unicode-escape"); an unknown escape keeps its backslash.
  absl::Status String(char quote) {
    const int start_line = line_;
    std::string value;
    size_t p = pos_ + 1;
    while (true) {
      if (p >= src_.size()) {
        line_ = start_line;
        return Error("unterminated string literal");
      }
      const char c = src_[p];
      if (c == quote) break;
      if (c != '\\' || p + 1 >= src_.size()) {
        value.push_back(c);
        ++p;
        continue;
      }
      const char e = src_[p + 1];
      p += 2;
      switch (e) {
        case 'n':
          value.push_back('\n');
          break;
        case 't':
          value.push_back('\t');
          break;
        case 'r':
          value.push_back('\r');
          break;
        case 'b':
          value.push_back('\b');
          break;
        case 'f':
          value.push_back('\f');
          break;
        case 'v':
          value.push_back('\v');
          break;
        case 'a':
          value.push_back('\a');
          break;
        case '0':
          value.push_back('\0');
          break;
        case '\\':
          value.push_back('\\');
          break;
        case '\'':
          value.push_back('\'');
          break;
        case '"':
          value.push_back('"');
          break;
        case '\n':
          break;  // a line continuation
        case 'x':
        case 'u':
        case 'U': {
          const size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          const std::string hex = src_.substr(p, n);
          char* end = nullptr;
          const unsigned long cp = std::strtoul(hex.c_str(), &end, 16);
          if (hex.size() != n || end != hex.c_str() + n) {
            return Error("truncated \\x, \\u or \\U escape in a string literal");
          }
          AppendUtf8(static_cast<uint32_t>(cp), &value);
          p += n;
          break;
        }
        default:
          value.push_back('\\');
          value.push_back(e);
      }
    }
    Emit(Token::Type::kString, value);
    Advance(p + 1);
    return absl::OkStatus();
  }

  std::string src_;
  size_t pos_ = 0;
  int line_ = 1;
  std::vector<Token> tokens_;
};

}  // namespace

absl::StatusOr<std::vector<Token>> Tokenize(std::string_view source) { return Lexer(source).Run(); }

}  // namespace shardlm::jinja
