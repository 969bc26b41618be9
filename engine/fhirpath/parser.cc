// FHIRPath lexer and recursive-descent parser (grammar of FHIRPath N1 with its operator
// precedence), and compile(): syntax plus the static checks of function names and arities.
// Thread-safety: no shared state.
#include <algorithm>
#include <cctype>
#include <cstring>

#include "engine/fhirpath/internal.h"

namespace switchboard::fhirpath {

// Defined in eval.cc: error text when `name` is not a function taking `argc` arguments.
std::optional<std::string> checkFunction(std::string_view name, std::size_t argc, int& id);

namespace {

using detail::ExprKind;
using detail::ExprNode;
using NodePtr = std::unique_ptr<ExprNode>;

enum class Tok {
  kEnd,
  kIdent,
  kDelimIdent,
  kString,
  kNumber,
  kLong,
  kTemporal,
  kVariable,
  kSpecial,
  kPunct
};

struct Token {
  Tok kind = Tok::kEnd;
  std::string text;  // identifier, string value, number text, operator, temporal text (w/o @)
  std::size_t offset = 0;
  bool spaceBefore = false;
};

struct SyntaxError {
  std::size_t offset;
  std::string message;
};

class Lexer {
 public:
  explicit Lexer(std::string_view s) : s_(s) {}

  // Tokenizes everything; returns false with error_ set on failure.
  bool run(std::vector<Token>& out) {
    while (true) {
      bool space = skipSpace();
      if (error_) return false;
      Token t;
      t.offset = i_;
      t.spaceBefore = space;
      if (i_ >= s_.size()) {
        out.push_back(t);
        return true;
      }
      if (!next(t)) return false;
      out.push_back(std::move(t));
    }
  }

  std::optional<SyntaxError> error_;

 private:
  bool skipSpace() {
    bool any = false;
    while (i_ < s_.size()) {
      char c = s_[i_];
      if (std::isspace(static_cast<unsigned char>(c))) {
        ++i_;
        any = true;
      } else if (c == '/' && i_ + 1 < s_.size() && s_[i_ + 1] == '/') {
        while (i_ < s_.size() && s_[i_] != '\n') ++i_;
        any = true;
      } else if (c == '/' && i_ + 1 < s_.size() && s_[i_ + 1] == '*') {
        std::size_t start = i_;
        auto end = s_.find("*/", i_ + 2);
        if (end == std::string_view::npos) {
          error_ = SyntaxError{start, "unterminated comment"};
          return any;
        }
        i_ = end + 2;
        any = true;
      } else {
        break;
      }
    }
    return any;
  }

  bool fail(std::size_t at, std::string msg) {
    error_ = SyntaxError{at, std::move(msg)};
    return false;
  }

  bool readQuoted(char quote, std::string& out) {
    std::size_t start = i_;
    ++i_;
    while (i_ < s_.size() && s_[i_] != quote) {
      char c = s_[i_];
      if (c == '\\') {
        if (i_ + 1 >= s_.size()) break;
        char e = s_[i_ + 1];
        i_ += 2;
        switch (e) {
          case '\'':
            out += '\'';
            break;
          case '"':
            out += '"';
            break;
          case '`':
            out += '`';
            break;
          case '\\':
            out += '\\';
            break;
          case '/':
            out += '/';
            break;
          case 'f':
            out += '\f';
            break;
          case 'n':
            out += '\n';
            break;
          case 'r':
            out += '\r';
            break;
          case 't':
            out += '\t';
            break;
          case 'u': {
            if (i_ + 4 > s_.size()) return fail(i_ - 2, "bad \\u escape");
            unsigned cp = 0;
            for (int k = 0; k < 4; ++k) {
              char h = s_[i_ + k];
              if (!std::isxdigit(static_cast<unsigned char>(h))) return fail(i_, "bad \\u escape");
              cp = cp * 16 + (std::isdigit(static_cast<unsigned char>(h))
                                  ? h - '0'
                                  : (std::tolower(static_cast<unsigned char>(h)) - 'a' + 10));
            }
            i_ += 4;
            if (cp < 0x80) {
              out += static_cast<char>(cp);
            } else if (cp < 0x800) {
              out += static_cast<char>(0xC0 | (cp >> 6));
              out += static_cast<char>(0x80 | (cp & 0x3F));
            } else {
              out += static_cast<char>(0xE0 | (cp >> 12));
              out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
              out += static_cast<char>(0x80 | (cp & 0x3F));
            }
            break;
          }
          default:
            return fail(i_ - 2, std::string("invalid escape \\") + e);
        }
        continue;
      }
      out += c;
      ++i_;
    }
    if (i_ >= s_.size()) return fail(start, "unterminated string");
    ++i_;
    return true;
  }

  bool digits(std::size_t n) {
    if (i_ + n > s_.size()) return false;
    for (std::size_t k = 0; k < n; ++k)
      if (!std::isdigit(static_cast<unsigned char>(s_[i_ + k]))) return false;
    return true;
  }

  // After '@': date, dateTime or time text. Sets out.text to the literal without '@' and
  // marks times with a leading 'T'.
  bool readTemporal(Token& t) {
    std::size_t start = i_;
    ++i_;  // '@'
    auto readTime = [&]() {
      if (!digits(2)) return false;
      i_ += 2;
      if (i_ < s_.size() && s_[i_] == ':' && digits_at(i_ + 1, 2)) {
        i_ += 3;
        if (i_ < s_.size() && s_[i_] == ':' && digits_at(i_ + 1, 2)) {
          i_ += 3;
          if (i_ < s_.size() && s_[i_] == '.' && digits_at(i_ + 1, 1)) {
            ++i_;
            while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
          }
        }
      }
      return true;
    };
    if (i_ < s_.size() && s_[i_] == 'T') {
      ++i_;
      if (!readTime()) return fail(start, "malformed time literal");
      // A timezone on a time literal is not allowed; leave it for the parser to reject.
      if (i_ < s_.size() && (s_[i_] == 'Z' || s_[i_] == '+' || s_[i_] == '-') &&
          (s_[i_] == 'Z' || digits_at(i_ + 1, 2))) {
        return fail(i_, "a time literal cannot have a timezone");
      }
      t.kind = Tok::kTemporal;
      t.text = std::string(s_.substr(start + 1, i_ - start - 1));
      return true;
    }
    if (!digits(4)) return fail(start, "malformed date literal");
    i_ += 4;
    if (i_ < s_.size() && s_[i_] == '-' && digits_at(i_ + 1, 2)) {
      i_ += 3;
      if (i_ < s_.size() && s_[i_] == '-' && digits_at(i_ + 1, 2)) i_ += 3;
    }
    if (i_ < s_.size() && s_[i_] == 'T') {
      ++i_;
      if (digits(2)) {
        readTime();
        if (i_ < s_.size() && s_[i_] == 'Z') {
          ++i_;
        } else if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-') && digits_at(i_ + 1, 2) &&
                   i_ + 3 < s_.size() && s_[i_ + 3] == ':') {
          i_ += 6;
        }
      }
    }
    t.kind = Tok::kTemporal;
    t.text = std::string(s_.substr(start + 1, i_ - start - 1));
    return true;
  }

  bool digits_at(std::size_t at, std::size_t n) const {
    if (at + n > s_.size()) return false;
    for (std::size_t k = 0; k < n; ++k)
      if (!std::isdigit(static_cast<unsigned char>(s_[at + k]))) return false;
    return true;
  }

  bool next(Token& t) {
    char c = s_[i_];
    if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
      std::size_t start = i_;
      while (i_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '_'))
        ++i_;
      t.kind = Tok::kIdent;
      t.text = std::string(s_.substr(start, i_ - start));
      return true;
    }
    if (std::isdigit(static_cast<unsigned char>(c))) {
      std::size_t start = i_;
      while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
      if (i_ + 1 < s_.size() && s_[i_] == '.' &&
          std::isdigit(static_cast<unsigned char>(s_[i_ + 1]))) {
        ++i_;
        while (i_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_]))) ++i_;
      }
      t.kind = Tok::kNumber;
      t.text = std::string(s_.substr(start, i_ - start));
      if (i_ < s_.size() && s_[i_] == 'L' && t.text.find('.') == std::string::npos) {
        ++i_;
        t.kind = Tok::kLong;
      }
      return true;
    }
    if (c == '\'') {
      t.kind = Tok::kString;
      return readQuoted('\'', t.text);
    }
    if (c == '`') {
      t.kind = Tok::kDelimIdent;
      return readQuoted('`', t.text);
    }
    if (c == '@') return readTemporal(t);
    if (c == '%') {
      ++i_;
      t.kind = Tok::kVariable;
      if (i_ < s_.size() && (s_[i_] == '\'' || s_[i_] == '`')) return readQuoted(s_[i_], t.text);
      std::size_t start = i_;
      while (i_ < s_.size() && (std::isalnum(static_cast<unsigned char>(s_[i_])) || s_[i_] == '_'))
        ++i_;
      if (i_ == start) return fail(start - 1, "expected a name after '%'");
      t.text = std::string(s_.substr(start, i_ - start));
      return true;
    }
    if (c == '$') {
      std::size_t start = i_;
      ++i_;
      while (i_ < s_.size() && std::isalpha(static_cast<unsigned char>(s_[i_]))) ++i_;
      t.kind = Tok::kSpecial;
      t.text = std::string(s_.substr(start, i_ - start));
      if (t.text != "$this" && t.text != "$index" && t.text != "$total")
        return fail(start, "unknown special variable " + t.text);
      return true;
    }
    static const char* const kTwo[] = {"<=", ">=", "!=", "!~"};
    for (const char* op : kTwo) {
      if (s_.substr(i_).starts_with(op)) {
        t.kind = Tok::kPunct;
        t.text = op;
        i_ += 2;
        return true;
      }
    }
    if (std::strchr(".,()[]{}+-*/&|=~<>", c)) {
      t.kind = Tok::kPunct;
      t.text = std::string(1, c);
      ++i_;
      return true;
    }
    return fail(i_, std::string("unexpected character '") + c + "'");
  }

  std::string_view s_;
  std::size_t i_ = 0;
};

bool isCalendarWord(const std::string& w) { return calendarUnit(w).has_value(); }

class Parser {
 public:
  Parser(std::string_view text, std::vector<Token> toks) : text_(text), toks_(std::move(toks)) {}

  NodePtr parseAll() {
    NodePtr e = parseExpr(0);
    if (error_ || !e) return nullptr;
    if (peek().kind != Tok::kEnd) {
      err(peek().offset, "unexpected '" + describe(peek()) + "'");
      return nullptr;
    }
    return e;
  }

  std::optional<SyntaxError> error_;

 private:
  const Token& peek(std::size_t k = 0) const { return toks_[std::min(pos_ + k, toks_.size() - 1)]; }
  Token take() { return toks_[std::min(pos_++, toks_.size() - 1)]; }
  bool isPunct(const char* p, std::size_t k = 0) const {
    return peek(k).kind == Tok::kPunct && peek(k).text == p;
  }
  bool isWord(const char* w) const { return peek().kind == Tok::kIdent && peek().text == w; }

  std::string describe(const Token& t) const {
    if (t.kind == Tok::kEnd) return "end of expression";
    return std::string(text_.substr(t.offset, std::min<std::size_t>(20, text_.size() - t.offset)));
  }

  void err(std::size_t offset, std::string msg) {
    if (!error_) error_ = SyntaxError{offset, std::move(msg)};
  }

  NodePtr make(ExprKind kind, std::size_t offset) {
    if (++nodes_ > kMaxNodes && !error_)
      err(offset, "expression too long (more than " + std::to_string(kMaxNodes) + " terms)");
    auto n = std::make_unique<ExprNode>();
    n->kind = kind;
    setPos(*n, offset);
    return n;
  }

  void setPos(ExprNode& n, std::size_t offset) {
    std::size_t line = 1, col = 1;
    for (std::size_t i = 0; i < offset && i < text_.size(); ++i) {
      if (text_[i] == '\n') {
        ++line;
        col = 1;
      } else {
        ++col;
      }
    }
    n.line = line;
    n.column = col;
  }

  // Binary operator at the current token: precedence (0 = none).
  int binaryPrecedence(std::string& op) const {
    const Token& t = peek();
    if (t.kind == Tok::kPunct) {
      op = t.text;
      if (op == "*" || op == "/") return 10;
      if (op == "+" || op == "-" || op == "&") return 9;
      if (op == "|") return 7;
      if (op == "<" || op == ">" || op == "<=" || op == ">=") return 6;
      if (op == "=" || op == "~" || op == "!=" || op == "!~") return 5;
      return 0;
    }
    if (t.kind == Tok::kIdent) {
      op = t.text;
      if (op == "div" || op == "mod") return 10;
      if (op == "is" || op == "as") return 8;
      if (op == "in" || op == "contains") return 4;
      if (op == "and") return 3;
      if (op == "or" || op == "xor") return 2;
      if (op == "implies") return 1;
    }
    return 0;
  }

  NodePtr parseExpr(int minPrec) {
    struct DepthGuard {
      int& d;
      explicit DepthGuard(int& x) : d(x) { ++d; }
      ~DepthGuard() { --d; }
    } guard(depth_);
    if (depth_ > kMaxDepth) {
      err(peek().offset, "expression nested too deeply");
      return nullptr;
    }
    NodePtr left = parseUnary();
    if (!left) return nullptr;
    while (!error_) {
      std::string op;
      int prec = binaryPrecedence(op);
      if (prec == 0 || prec < minPrec) break;
      Token opTok = take();
      if (op == "is" || op == "as") {
        auto n = make(ExprKind::kTypeOp, opTok.offset);
        n->name = op;
        auto type = parseTypeSpecifier();
        if (!type) return nullptr;
        n->typeName = *type;
        n->children.push_back(std::move(left));
        left = std::move(n);
        continue;
      }
      NodePtr right = parseExpr(prec + 1);
      if (!right) return nullptr;
      auto n = make(ExprKind::kBinary, opTok.offset);
      n->name = op;
      n->children.push_back(std::move(left));
      n->children.push_back(std::move(right));
      left = std::move(n);
    }
    return error_ ? nullptr : std::move(left);
  }

  std::optional<std::string> parseTypeSpecifier() {
    std::string name;
    auto part = [&]() -> bool {
      const Token& t = peek();
      if (t.kind != Tok::kIdent && t.kind != Tok::kDelimIdent) {
        err(t.offset, "expected a type name, found '" + describe(t) + "'");
        return false;
      }
      name += take().text;
      return true;
    };
    if (!part()) return std::nullopt;
    while (isPunct(".") && (peek(1).kind == Tok::kIdent || peek(1).kind == Tok::kDelimIdent)) {
      take();
      name += ".";
      if (!part()) return std::nullopt;
    }
    return name;
  }

  NodePtr parseUnary() {
    if (isPunct("+") || isPunct("-")) {
      Token op = take();
      ++depth_;
      if (depth_ > kMaxDepth) {
        err(op.offset, "expression nested too deeply");
        return nullptr;
      }
      NodePtr operand = parseUnary();
      --depth_;
      if (!operand) return nullptr;
      // Fold a sign into a numeric literal: -1 is an Integer literal.
      if (operand->kind == ExprKind::kLiteral && op.text == "-") {
        const Node& v = operand->value;
        if (v.kind() == Node::Kind::kInteger) {
          operand->value = Node::integer(-v.integerValue());
          return operand;
        }
        if (v.kind() == Node::Kind::kDecimal) {
          operand->value = Node::decimal(decNeg(v.decimalValue()));
          return operand;
        }
        if (v.kind() == Node::Kind::kQuantity) {
          Quantity q = v.quantityValue();
          q.value = decNeg(q.value);
          operand->value = Node::quantity(q);
          return operand;
        }
      }
      auto n = make(ExprKind::kUnary, op.offset);
      n->name = op.text;
      n->children.push_back(std::move(operand));
      return n;
    }
    return parsePostfix();
  }

  NodePtr parsePostfix() {
    NodePtr e = parseTerm();
    while (e && !error_) {
      if (isPunct(".")) {
        Token dot = take();
        NodePtr inv = parseInvocation(false);
        if (!inv) return nullptr;
        auto n = make(ExprKind::kDot, dot.offset);
        n->children.push_back(std::move(e));
        n->children.push_back(std::move(inv));
        e = std::move(n);
      } else if (isPunct("[")) {
        Token open = take();
        NodePtr index = parseExpr(0);
        if (!index) return nullptr;
        if (!isPunct("]")) {
          err(peek().offset, "expected ']'");
          return nullptr;
        }
        take();
        auto n = make(ExprKind::kIndexer, open.offset);
        n->children.push_back(std::move(e));
        n->children.push_back(std::move(index));
        e = std::move(n);
      } else {
        break;
      }
    }
    return error_ ? nullptr : std::move(e);
  }

  NodePtr parseInvocation(bool root) {
    const Token& t = peek();
    if (t.kind == Tok::kSpecial) {
      Token s = take();
      auto n = make(s.text == "$this"    ? ExprKind::kThis
                    : s.text == "$index" ? ExprKind::kIndex
                                         : ExprKind::kTotal,
                    s.offset);
      return n;
    }
    if (t.kind != Tok::kIdent && t.kind != Tok::kDelimIdent) {
      err(t.offset, "expected a name, found '" + describe(t) + "'");
      return nullptr;
    }
    Token id = take();
    if (id.kind == Tok::kIdent && isPunct("(")) {
      take();
      auto n = make(ExprKind::kFunction, id.offset);
      n->name = id.text;
      if (!isPunct(")")) {
        while (true) {
          NodePtr arg = parseExpr(0);
          if (!arg) return nullptr;
          n->children.push_back(std::move(arg));
          if (isPunct(",")) {
            take();
            continue;
          }
          break;
        }
      }
      if (!isPunct(")")) {
        err(peek().offset, "expected ')' to close " + id.text + "(");
        return nullptr;
      }
      take();
      if (auto problem = checkFunction(n->name, n->children.size(), n->fnId)) {
        err(id.offset, *problem);
        return nullptr;
      }
      // Type arguments are type specifiers, not expressions.
      if ((n->name == "is" || n->name == "as" || n->name == "ofType") && n->children.size() == 1) {
        auto type = typeNameOf(*n->children[0]);
        if (!type) {
          err(id.offset, n->name + "() expects a type name");
          return nullptr;
        }
        n->typeName = *type;
      }
      return n;
    }
    auto n = make(ExprKind::kMember, id.offset);
    n->name = id.text;
    n->root = root;
    return n;
  }

  static std::optional<std::string> typeNameOf(const ExprNode& e) {
    if (e.kind == ExprKind::kMember) return e.name;
    if (e.kind == ExprKind::kDot && e.children[1]->kind == ExprKind::kMember) {
      auto left = typeNameOf(*e.children[0]);
      if (left) return *left + "." + e.children[1]->name;
    }
    return std::nullopt;
  }

  NodePtr parseTerm() {
    const Token& t = peek();
    switch (t.kind) {
      case Tok::kEnd:
        err(t.offset, "unexpected end of expression");
        return nullptr;
      case Tok::kString: {
        Token s = take();
        auto n = make(ExprKind::kLiteral, s.offset);
        n->value = Node::string(s.text);
        return n;
      }
      case Tok::kLong: {
        Token s = take();
        auto n = make(ExprKind::kLiteral, s.offset);
        n->value = Node::integer(std::stoll(s.text));
        return n;
      }
      case Tok::kNumber: {
        Token s = take();
        auto n = make(ExprKind::kLiteral, s.offset);
        bool isDec = s.text.find('.') != std::string::npos;
        if (!isDec) {
          errno = 0;
          char* end = nullptr;
          long long v = std::strtoll(s.text.c_str(), &end, 10);
          if (errno == ERANGE) {
            err(s.offset, "integer literal out of range");
            return nullptr;
          }
          n->value = Node::integer(v);
        } else {
          auto d = Decimal::parse(s.text);
          if (!d) {
            err(s.offset, "malformed number");
            return nullptr;
          }
          n->value = Node::decimal(*d);
        }
        // Quantity literal: number followed by a unit string or calendar keyword.
        if (peek().kind == Tok::kString ||
            (peek().kind == Tok::kIdent && isCalendarWord(peek().text))) {
          Token unit = take();
          Quantity q;
          q.value = isDec ? *Decimal::parse(s.text) : Decimal::fromInt(std::stoll(s.text));
          q.unit = unit.text;
          n->value = Node::quantity(q);
        }
        return n;
      }
      case Tok::kTemporal: {
        Token s = take();
        auto n = make(ExprKind::kLiteral, s.offset);
        std::optional<Temporal> v;
        if (s.text.starts_with("T")) {
          v = Temporal::parse(std::string_view(s.text).substr(1), TemporalKind::kTime);
        } else if (s.text.find('T') != std::string::npos) {
          std::string txt = s.text;
          if (txt.back() == 'T') {
            txt.pop_back();
            v = Temporal::parse(txt, TemporalKind::kDate);
            if (v) v->kind = TemporalKind::kDateTime;
          } else {
            v = Temporal::parse(txt, TemporalKind::kDateTime);
          }
        } else {
          v = Temporal::parse(s.text, TemporalKind::kDate);
        }
        if (!v) {
          err(s.offset, "malformed date/time literal @" + s.text);
          return nullptr;
        }
        n->value = Node::temporal(*v);
        return n;
      }
      case Tok::kVariable: {
        Token s = take();
        auto n = make(ExprKind::kVariable, s.offset);
        n->name = s.text;
        return n;
      }
      case Tok::kPunct: {
        if (t.text == "(") {
          take();
          NodePtr e = parseExpr(0);
          if (!e) return nullptr;
          if (!isPunct(")")) {
            err(peek().offset, "expected ')'");
            return nullptr;
          }
          take();
          return e;
        }
        if (t.text == "{") {
          Token open = take();
          if (!isPunct("}")) {
            err(peek().offset, "expected '}' (only the empty collection {} is a literal)");
            return nullptr;
          }
          take();
          return make(ExprKind::kEmpty, open.offset);
        }
        err(t.offset, "unexpected '" + t.text + "'");
        return nullptr;
      }
      case Tok::kIdent:
        if (t.text == "true" || t.text == "false") {
          Token s = take();
          auto n = make(ExprKind::kLiteral, s.offset);
          n->value = Node::boolean(s.text == "true");
          return n;
        }
        return parseInvocation(true);
      default:
        return parseInvocation(true);
    }
  }

  // Bounds keep evaluation's recursion well inside a thread's stack.
  static constexpr int kMaxDepth = 200;
  static constexpr int kMaxNodes = 4000;
  int nodes_ = 0;
  std::string_view text_;
  std::vector<Token> toks_;
  std::size_t pos_ = 0;
  int depth_ = 0;
};

Error syntaxError(std::string_view text, const SyntaxError& e) {
  std::size_t line = 1, col = 1;
  for (std::size_t i = 0; i < e.offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  std::string loc = std::to_string(line) + ":" + std::to_string(col);
  return Error(ErrorCode::kInvalid, "FHIRPath syntax error at " + loc + ": " + e.message, loc);
}

}  // namespace

Result<std::unique_ptr<ExprNode>> parseExpression(std::string_view text) {
  Lexer lexer(text);
  std::vector<Token> toks;
  if (!lexer.run(toks)) return std::unexpected(syntaxError(text, *lexer.error_));
  Parser parser(text, std::move(toks));
  auto root = parser.parseAll();
  if (!root) return std::unexpected(syntaxError(text, *parser.error_));
  return root;
}

namespace {

// Depth of the syntax tree, computed without recursion.
std::size_t treeDepth(const ExprNode& root) {
  std::size_t deepest = 0;
  std::vector<std::pair<const ExprNode*, std::size_t>> stack{{&root, 1}};
  while (!stack.empty()) {
    auto [n, d] = stack.back();
    stack.pop_back();
    deepest = std::max(deepest, d);
    for (const auto& c : n->children) stack.push_back({c.get(), d + 1});
  }
  return deepest;
}

}  // namespace

namespace {

bool isFunction(const ExprNode& n, std::initializer_list<std::string_view> names) {
  if (n.kind != ExprKind::kFunction) return false;
  for (auto name : names)
    if (n.name == name) return true;
  return false;
}

// Whether `n` (the input of an ordered operation) yields an unordered collection.
bool yieldsUnordered(const ExprNode* n) {
  while (n) {
    const ExprNode* last = n->kind == ExprKind::kDot ? n->children[1].get() : n;
    if (isFunction(*last, {"children", "descendants"})) return true;
    if (n->kind == ExprKind::kDot && isFunction(*last, {"where", "select", "ofType", "distinct"})) {
      n = n->children[0].get();
      continue;
    }
    return false;
  }
  return false;
}

std::optional<Error> checkOrdered(const ExprNode& root) {
  std::vector<const ExprNode*> stack{&root};
  while (!stack.empty()) {
    const ExprNode* n = stack.back();
    stack.pop_back();
    const ExprNode* input = nullptr;
    const ExprNode* at = n;
    if (n->kind == ExprKind::kDot &&
        isFunction(*n->children[1], {"first", "last", "tail", "skip", "take"})) {
      input = n->children[0].get();
      at = n->children[1].get();
    } else if (n->kind == ExprKind::kIndexer) {
      input = n->children[0].get();
    }
    if (input && yieldsUnordered(input)) {
      std::string loc = std::to_string(at->line) + ":" + std::to_string(at->column);
      return Error(ErrorCode::kInvalid,
                   "FHIRPath semantic error at " + loc +
                       ": an order-dependent operation is applied to an unordered collection "
                       "(children() or descendants())",
                   loc);
    }
    for (const auto& c : n->children) stack.push_back(c.get());
  }
  return std::nullopt;
}

}  // namespace

Result<Expression> compile(std::string_view text) { return compile(text, CompileOptions()); }

Result<Expression> compile(std::string_view text, const CompileOptions& options) {
  auto root = parseExpression(text);
  if (!root) return std::unexpected(root.error());
  // Evaluation recurses along the tree: keep it far inside any thread's stack.
  constexpr std::size_t kMaxTreeDepth = 256;
  if (treeDepth(**root) > kMaxTreeDepth)
    return fail(ErrorCode::kInvalid,
                "FHIRPath expression too deeply nested (more than " +
                    std::to_string(kMaxTreeDepth) + " levels of operators and paths)",
                "1:1");
  if (options.checkOrderedFunctions) {
    if (auto problem = checkOrdered(**root)) return std::unexpected(*problem);
  }
  Expression e;
  e.text_ = std::string(text);
  e.root_ = std::shared_ptr<const ExprNode>(std::move(*root));
  return e;
}

}  // namespace switchboard::fhirpath
