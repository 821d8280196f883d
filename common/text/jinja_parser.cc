// Recursive-descent parser for Jinja templates, following the grammar and
// operator precedence of jinja2's parser.py.
#include <cerrno>
#include <cstdlib>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/text/jinja_ast.h"
#include "common/text/jinja_lexer.h"

namespace tpserve::text::jinja {
namespace {

using K = Token::Kind;
constexpr int kMaxNesting = 128;

class Parser {
 public:
  explicit Parser(std::vector<Token> toks) : t_(std::move(toks)) {}

  absl::StatusOr<std::unique_ptr<Program>> Run() {
    auto prog = std::make_unique<Program>();
    std::string end;
    if (auto st = ParseBody({}, &prog->body, &end); !st.ok()) return st;
    return prog;
  }

 private:
  const Token& Peek(size_t k = 0) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  bool IsOp(const char* op, size_t k = 0) const { return Peek(k).kind == K::kOp && Peek(k).text == op; }
  bool IsName(const char* n, size_t k = 0) const { return Peek(k).kind == K::kName && Peek(k).text == n; }

  absl::Status Error(const Token& t, const std::string& msg) const {
    return absl::InvalidArgumentError(
        absl::StrCat("template syntax error at ", t.pos.line, ":", t.pos.col, ": ", msg));
  }
  absl::Status Expect(const char* op) {
    if (!IsOp(op)) return Error(Peek(), absl::StrCat("expected '", op, "', got '", Describe(Peek()), "'"));
    ++i_;
    return absl::OkStatus();
  }
  absl::Status ExpectBlockEnd() {
    if (Peek().kind != K::kBlockEnd) return Error(Peek(), absl::StrCat("expected end of tag, got '", Describe(Peek()), "'"));
    ++i_;
    return absl::OkStatus();
  }
  static std::string Describe(const Token& t) {
    switch (t.kind) {
      case K::kEof: return "end of template";
      case K::kBlockEnd: return "%}";
      case K::kVarEnd: return "}}";
      default: return t.text;
    }
  }
  absl::StatusOr<std::string> ExpectName() {
    if (Peek().kind != K::kName) return Error(Peek(), absl::StrCat("expected a name, got '", Describe(Peek()), "'"));
    return t_[i_++].text;
  }

  // Parses statements until a block tag whose name is in `ends`; stores that
  // name in *end and leaves the tokens after it unconsumed.
  absl::Status ParseBody(const std::set<std::string>& ends, NodeList* out, std::string* end) {
    if (++depth_ > kMaxNesting) return Error(Peek(), "blocks nested too deeply");
    while (true) {
      const Token& tok = Peek();
      if (tok.kind == K::kEof) {
        --depth_;
        if (ends.empty()) return absl::OkStatus();
        return Error(tok, absl::StrCat("unexpected end of template, expected '", *ends.begin(), "'"));
      }
      if (tok.kind == K::kText) {
        auto n = NewNode(Node::Kind::kText, tok);
        n->text = tok.text;
        out->push_back(std::move(n));
        ++i_;
      } else if (tok.kind == K::kVarBegin) {
        ++i_;
        auto n = NewNode(Node::Kind::kOutput, tok);
        auto e = ParseExpr();
        if (!e.ok()) return e.status();
        n->expr = std::move(*e);
        if (Peek().kind != K::kVarEnd) return Error(Peek(), absl::StrCat("expected '}}', got '", Describe(Peek()), "'"));
        ++i_;
        out->push_back(std::move(n));
      } else if (tok.kind == K::kBlockBegin) {
        const Token& name = Peek(1);
        if (name.kind != K::kName) return Error(name, "expected a tag name");
        if (ends.count(name.text)) {
          *end = name.text;
          i_ += 2;
          --depth_;
          return absl::OkStatus();
        }
        i_ += 2;
        auto st = ParseTag(name, out);
        if (!st.ok()) return st;
      } else {
        return Error(tok, absl::StrCat("unexpected '", Describe(tok), "'"));
      }
    }
  }

  static std::unique_ptr<Node> NewNode(Node::Kind k, const Token& t) {
    auto n = std::make_unique<Node>();
    n->kind = k;
    n->pos = t.pos;
    return n;
  }

  absl::Status ParseTag(const Token& tag, NodeList* out) {
    const std::string& name = tag.text;
    std::string end;
    if (name == "if") {
      auto n = NewNode(Node::Kind::kIf, tag);
      while (true) {
        auto c = ParseExpr();
        if (!c.ok()) return c.status();
        n->conds.push_back(std::move(*c));
        if (auto st = ExpectBlockEnd(); !st.ok()) return st;
        n->bodies.emplace_back();
        if (auto st = ParseBody({"elif", "else", "endif"}, &n->bodies.back(), &end); !st.ok()) return st;
        if (end != "elif") break;
      }
      if (end == "else") {
        if (auto st = ExpectBlockEnd(); !st.ok()) return st;
        n->bodies.emplace_back();
        if (auto st = ParseBody({"endif"}, &n->bodies.back(), &end); !st.ok()) return st;
      }
      out->push_back(std::move(n));
      return ExpectBlockEnd();
    }
    if (name == "for") {
      auto n = NewNode(Node::Kind::kFor, tag);
      if (auto st = ParseTargets(&n->targets); !st.ok()) return st;
      if (!IsName("in")) return Error(Peek(), "expected 'in'");
      ++i_;
      auto it = ParseOr();
      if (!it.ok()) return it.status();
      n->expr = std::move(*it);
      if (IsName("if")) {
        ++i_;
        auto c = ParseOr();
        if (!c.ok()) return c.status();
        n->cond = std::move(*c);
      }
      if (IsName("recursive")) return Error(Peek(), "recursive loops are not supported");
      if (auto st = ExpectBlockEnd(); !st.ok()) return st;
      n->bodies.emplace_back();
      if (auto st = ParseBody({"else", "endfor"}, &n->bodies.back(), &end); !st.ok()) return st;
      n->bodies.emplace_back();
      if (end == "else") {
        if (auto st = ExpectBlockEnd(); !st.ok()) return st;
        if (auto st = ParseBody({"endfor"}, &n->bodies.back(), &end); !st.ok()) return st;
      }
      out->push_back(std::move(n));
      return ExpectBlockEnd();
    }
    if (name == "set") {
      auto n = NewNode(Node::Kind::kSet, tag);
      auto first = ExpectName();
      if (!first.ok()) return first.status();
      n->targets.push_back(*first);
      if (IsOp(".")) {
        ++i_;
        auto attr = ExpectName();
        if (!attr.ok()) return attr.status();
        n->targets[0] += "." + *attr;
      } else {
        while (IsOp(",")) {
          ++i_;
          auto more = ExpectName();
          if (!more.ok()) return more.status();
          n->targets.push_back(*more);
        }
      }
      if (IsOp("=")) {
        ++i_;
        auto e = ParseTupleOrExpr();
        if (!e.ok()) return e.status();
        n->expr = std::move(*e);
        out->push_back(std::move(n));
        return ExpectBlockEnd();
      }
      if (n->targets.size() != 1 || n->targets[0].find('.') != std::string::npos) {
        return Error(Peek(), "expected '='");
      }
      if (auto st = ExpectBlockEnd(); !st.ok()) return st;
      n->bodies.emplace_back();
      if (auto st = ParseBody({"endset"}, &n->bodies.back(), &end); !st.ok()) return st;
      out->push_back(std::move(n));
      return ExpectBlockEnd();
    }
    if (name == "macro") {
      auto n = NewNode(Node::Kind::kMacro, tag);
      auto mname = ExpectName();
      if (!mname.ok()) return mname.status();
      n->name = *mname;
      if (auto st = Expect("("); !st.ok()) return st;
      while (!IsOp(")")) {
        auto p = ExpectName();
        if (!p.ok()) return p.status();
        n->params.push_back(*p);
        ExprPtr def;
        if (IsOp("=")) {
          ++i_;
          auto d = ParseExpr();
          if (!d.ok()) return d.status();
          def = std::move(*d);
        }
        n->param_defaults.push_back(std::move(def));
        if (!IsOp(",")) break;
        ++i_;
      }
      if (auto st = Expect(")"); !st.ok()) return st;
      if (auto st = ExpectBlockEnd(); !st.ok()) return st;
      n->bodies.emplace_back();
      if (auto st = ParseBody({"endmacro"}, &n->bodies.back(), &end); !st.ok()) return st;
      out->push_back(std::move(n));
      return ExpectBlockEnd();
    }
    if (name == "call") {
      auto n = NewNode(Node::Kind::kCallBlock, tag);
      auto e = ParseExpr();
      if (!e.ok()) return e.status();
      if ((*e)->kind != Expr::Kind::kCall) return Error(tag, "expected a macro call");
      n->expr = std::move(*e);
      if (auto st = ExpectBlockEnd(); !st.ok()) return st;
      n->bodies.emplace_back();
      if (auto st = ParseBody({"endcall"}, &n->bodies.back(), &end); !st.ok()) return st;
      out->push_back(std::move(n));
      return ExpectBlockEnd();
    }
    if (name == "filter") {
      auto n = NewNode(Node::Kind::kFilterBlock, tag);
      ExprPtr chain;
      do {
        if (chain) ++i_;  // '|'
        auto f = ParseFilter(std::move(chain));
        if (!f.ok()) return f.status();
        chain = std::move(*f);
      } while (IsOp("|"));
      n->expr = std::move(chain);
      if (auto st = ExpectBlockEnd(); !st.ok()) return st;
      n->bodies.emplace_back();
      if (auto st = ParseBody({"endfilter"}, &n->bodies.back(), &end); !st.ok()) return st;
      out->push_back(std::move(n));
      return ExpectBlockEnd();
    }
    if (name == "generation") {  // transformers' assistant-mask marker: renders its body
      auto n = NewNode(Node::Kind::kScope, tag);
      if (auto st = ExpectBlockEnd(); !st.ok()) return st;
      n->bodies.emplace_back();
      if (auto st = ParseBody({"endgeneration"}, &n->bodies.back(), &end); !st.ok()) return st;
      out->push_back(std::move(n));
      return ExpectBlockEnd();
    }
    if (name == "break" || name == "continue") {
      out->push_back(NewNode(name == "break" ? Node::Kind::kBreak : Node::Kind::kContinue, tag));
      return ExpectBlockEnd();
    }
    return Error(tag, absl::StrCat("unsupported or unexpected tag '", name, "'"));
  }

  absl::Status ParseTargets(std::vector<std::string>* targets) {
    const bool paren = IsOp("(");
    if (paren) ++i_;
    while (true) {
      auto n = ExpectName();
      if (!n.ok()) return n.status();
      targets->push_back(*n);
      if (!IsOp(",")) break;
      ++i_;
    }
    if (paren) return Expect(")");
    return absl::OkStatus();
  }

  ExprPtr NewExpr(Expr::Kind k, Pos p) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->pos = p;
    return e;
  }

  using R = absl::StatusOr<ExprPtr>;

  // `a, b` without brackets (as in `set x = a, b`) builds a tuple.
  R ParseTupleOrExpr() {
    const Pos p = Peek().pos;
    auto e = ParseExpr();
    if (!e.ok() || !IsOp(",")) return e;
    auto t = NewExpr(Expr::Kind::kTuple, p);
    t->args.push_back(std::move(*e));
    while (IsOp(",")) {
      ++i_;
      auto x = ParseExpr();
      if (!x.ok()) return x;
      t->args.push_back(std::move(*x));
    }
    return t;
  }

  R ParseExpr() {
    if (++depth_ > kMaxNesting) return Error(Peek(), "expression nested too deeply");
    const Pos p = Peek().pos;
    auto e = ParseOr();
    if (e.ok() && IsName("if")) {
      ++i_;
      auto cond = ParseOr();
      if (!cond.ok()) return cond;
      auto n = NewExpr(Expr::Kind::kCond, p);
      n->a = std::move(*e);
      n->b = std::move(*cond);
      if (IsName("else")) {
        ++i_;
        auto other = ParseExpr();
        if (!other.ok()) return other;
        n->c = std::move(*other);
      }
      --depth_;
      return n;
    }
    --depth_;
    return e;
  }

  R Binary(R left, const char* op, R (Parser::*next)()) {
    while (left.ok() && (IsName(op) || IsOp(op))) {
      const Pos p = Peek().pos;
      ++i_;
      auto right = (this->*next)();
      if (!right.ok()) return right;
      auto n = NewExpr(Expr::Kind::kBinary, p);
      n->name = op;
      n->a = std::move(*left);
      n->b = std::move(*right);
      left = std::move(n);
    }
    return left;
  }

  R ParseOr() { return Binary(ParseAnd(), "or", &Parser::ParseAnd); }
  R ParseAnd() { return Binary(ParseNot(), "and", &Parser::ParseNot); }
  R ParseNot() {
    if (IsName("not")) {
      auto n = NewExpr(Expr::Kind::kUnary, Peek().pos);
      ++i_;
      if (++depth_ > kMaxNesting) return Error(Peek(), "expression nested too deeply");
      auto e = ParseNot();
      --depth_;
      if (!e.ok()) return e;
      n->name = "not";
      n->a = std::move(*e);
      return n;
    }
    return ParseCompare();
  }
  R ParseCompare() {
    const Pos p = Peek().pos;
    auto left = ParseMath1();
    if (!left.ok()) return left;
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (Peek().kind == K::kOp && (IsOp("==") || IsOp("!=") || IsOp("<") || IsOp("<=") || IsOp(">") || IsOp(">="))) {
        op = Peek().text;
        ++i_;
      } else if (IsName("in")) {
        op = "in";
        ++i_;
      } else if (IsName("not") && IsName("in", 1)) {
        op = "not in";
        i_ += 2;
      } else {
        break;
      }
      auto right = ParseMath1();
      if (!right.ok()) return right;
      if (!cmp) {
        cmp = NewExpr(Expr::Kind::kCompare, p);
        cmp->a = std::move(*left);
      }
      cmp->ops.push_back(op);
      cmp->args.push_back(std::move(*right));
    }
    if (cmp) return cmp;
    return left;
  }
  R ParseMath1() {
    auto left = ParseConcat();
    while (left.ok() && (IsOp("+") || IsOp("-"))) {
      const char* op = IsOp("+") ? "+" : "-";
      left = Binary(std::move(left), op, &Parser::ParseConcat);
    }
    return left;
  }
  R ParseConcat() { return Binary(ParseMath2(), "~", &Parser::ParseMath2); }
  R ParseMath2() {
    auto left = ParsePow();
    while (left.ok() && (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%"))) {
      left = Binary(std::move(left), Peek().text.c_str(), &Parser::ParsePow);
    }
    return left;
  }
  R ParsePow() { return Binary(ParseUnary(true), "**", &Parser::ParseUnaryWithFilter); }
  R ParseUnaryWithFilter() { return ParseUnary(true); }
  R ParseUnary(bool with_filter) {
    if (++depth_ > kMaxNesting) return Error(Peek(), "expression nested too deeply");
    R node = absl::InternalError("");
    if (IsOp("-") || IsOp("+")) {
      auto n = NewExpr(Expr::Kind::kUnary, Peek().pos);
      n->name = Peek().text;
      ++i_;
      auto e = ParseUnary(false);
      if (!e.ok()) return e;
      n->a = std::move(*e);
      node = std::move(n);
    } else {
      node = ParsePrimary();
      if (node.ok()) node = ParsePostfix(std::move(*node));
    }
    if (node.ok() && with_filter) node = ParseFilterExpr(std::move(*node));
    --depth_;
    return node;
  }

  R ParsePrimary();
  R ParsePostfix(ExprPtr node);
  R ParseFilterExpr(ExprPtr node);
  R ParseFilter(ExprPtr input);
  absl::Status ParseCallArgs(Expr* call);

  std::vector<Token> t_;
  size_t i_ = 0;
  int depth_ = 0;
};


Parser::R Parser::ParsePrimary() {
  const Token& t = Peek();
  if (t.kind == K::kName) {
    ++i_;
    auto n = NewExpr(Expr::Kind::kLiteral, t.pos);
    if (t.text == "true" || t.text == "True") {
      n->value = Value(true);
    } else if (t.text == "false" || t.text == "False") {
      n->value = Value(false);
    } else if (t.text == "none" || t.text == "None") {
      n->value = Value::None();
    } else {
      n->kind = Expr::Kind::kName;
      n->name = t.text;
    }
    return n;
  }
  if (t.kind == K::kString) {
    auto n = NewExpr(Expr::Kind::kLiteral, t.pos);
    std::string s;
    while (Peek().kind == K::kString) s += t_[i_++].text;  // adjacent literals concatenate
    n->value = Value(std::move(s));
    return n;
  }
  if (t.kind == K::kInt || t.kind == K::kFloat) {
    ++i_;
    auto n = NewExpr(Expr::Kind::kLiteral, t.pos);
    if (t.kind == K::kInt) {
      errno = 0;
      const long long v = std::strtoll(t.text.c_str(), nullptr, 10);
      if (errno == ERANGE) return Error(t, "integer literal out of range");
      n->value = Value(static_cast<int64_t>(v));
    } else {
      n->value = Value(std::strtod(t.text.c_str(), nullptr));
    }
    return n;
  }
  if (IsOp("(")) {
    ++i_;
    if (IsOp(")")) {
      ++i_;
      return NewExpr(Expr::Kind::kTuple, t.pos);
    }
    auto e = ParseExpr();
    if (!e.ok()) return e;
    if (IsOp(",")) {
      auto tup = NewExpr(Expr::Kind::kTuple, t.pos);
      tup->args.push_back(std::move(*e));
      while (IsOp(",")) {
        ++i_;
        if (IsOp(")")) break;
        auto x = ParseExpr();
        if (!x.ok()) return x;
        tup->args.push_back(std::move(*x));
      }
      e = std::move(tup);
    }
    if (auto st = Expect(")"); !st.ok()) return st;
    return e;
  }
  if (IsOp("[")) {
    ++i_;
    auto n = NewExpr(Expr::Kind::kList, t.pos);
    while (!IsOp("]")) {
      auto x = ParseExpr();
      if (!x.ok()) return x;
      n->args.push_back(std::move(*x));
      if (!IsOp(",")) break;
      ++i_;
    }
    if (auto st = Expect("]"); !st.ok()) return st;
    return n;
  }
  if (IsOp("{")) {
    ++i_;
    auto n = NewExpr(Expr::Kind::kDict, t.pos);
    while (!IsOp("}")) {
      auto k = ParseExpr();
      if (!k.ok()) return k;
      if (auto st = Expect(":"); !st.ok()) return st;
      auto v = ParseExpr();
      if (!v.ok()) return v;
      n->dict_items.emplace_back(std::move(*k), std::move(*v));
      if (!IsOp(",")) break;
      ++i_;
    }
    if (auto st = Expect("}"); !st.ok()) return st;
    return n;
  }
  return Error(t, absl::StrCat("unexpected '", Describe(t), "'"));
}

Parser::R Parser::ParsePostfix(ExprPtr node) {
  while (true) {
    const Pos p = node->pos;  // errors in a.b(c)[d] point at its start
    if (IsOp(".")) {
      ++i_;
      if (Peek().kind != K::kName && Peek().kind != K::kInt) return Error(Peek(), "expected an attribute name");
      auto n = NewExpr(Peek().kind == K::kInt ? Expr::Kind::kItem : Expr::Kind::kAttr, p);
      if (n->kind == Expr::Kind::kItem) {
        n->b = NewExpr(Expr::Kind::kLiteral, p);
        n->b->value = Value(static_cast<int64_t>(std::strtoll(Peek().text.c_str(), nullptr, 10)));
      } else {
        n->name = Peek().text;
      }
      ++i_;
      n->a = std::move(node);
      node = std::move(n);
    } else if (IsOp("[")) {
      ++i_;
      ExprPtr parts[3];
      int colons = 0;
      while (!IsOp("]")) {
        if (IsOp(":")) {
          if (++colons > 2) return Error(Peek(), "invalid slice");
          ++i_;
          continue;
        }
        if (parts[colons]) return Error(Peek(), "expected ']'");
        auto x = ParseExpr();
        if (!x.ok()) return x;
        parts[colons] = std::move(*x);
      }
      ++i_;
      if (colons == 0) {
        if (!parts[0]) return Error(Peek(), "empty subscript");
        auto n = NewExpr(Expr::Kind::kItem, p);
        n->a = std::move(node);
        n->b = std::move(parts[0]);
        node = std::move(n);
      } else {
        auto n = NewExpr(Expr::Kind::kSlice, p);
        n->a = std::move(node);
        for (auto& part : parts) n->args.push_back(std::move(part));
        node = std::move(n);
      }
    } else if (IsOp("(")) {
      auto n = NewExpr(Expr::Kind::kCall, p);
      n->a = std::move(node);
      if (auto st = ParseCallArgs(n.get()); !st.ok()) return st;
      node = std::move(n);
    } else {
      return node;
    }
  }
}

absl::Status Parser::ParseCallArgs(Expr* call) {
  if (auto st = Expect("("); !st.ok()) return st;
  while (!IsOp(")")) {
    if (Peek().kind == K::kName && IsOp("=", 1)) {
      std::string key = Peek().text;
      i_ += 2;
      auto v = ParseExpr();
      if (!v.ok()) return v.status();
      call->kwargs.emplace_back(std::move(key), std::move(*v));
    } else {
      if (!call->kwargs.empty()) return Error(Peek(), "positional argument follows keyword argument");
      auto v = ParseExpr();
      if (!v.ok()) return v.status();
      call->args.push_back(std::move(*v));
    }
    if (!IsOp(",")) break;
    ++i_;
  }
  return Expect(")");
}

Parser::R Parser::ParseFilter(ExprPtr input) {
  const Pos p = Peek().pos;
  auto name = ExpectName();
  if (!name.ok()) return name.status();
  auto n = NewExpr(Expr::Kind::kFilter, p);
  n->name = *name;
  while (IsOp(".")) {  // dotted filter names
    ++i_;
    auto more = ExpectName();
    if (!more.ok()) return more.status();
    n->name += "." + *more;
  }
  n->a = std::move(input);
  if (IsOp("(")) {
    if (auto st = ParseCallArgs(n.get()); !st.ok()) return st;
  }
  return n;
}

Parser::R Parser::ParseFilterExpr(ExprPtr node) {
  while (true) {
    if (IsOp("|")) {
      ++i_;
      auto f = ParseFilter(std::move(node));
      if (!f.ok()) return f;
      node = std::move(*f);
    } else if (IsName("is")) {
      const Pos p = Peek().pos;
      ++i_;
      auto n = NewExpr(Expr::Kind::kTest, p);
      if (IsName("not")) {
        n->negated = true;
        ++i_;
      }
      auto name = ExpectName();
      if (!name.ok()) return name.status();
      n->name = *name;
      n->a = std::move(node);
      if (IsOp("(")) {
        if (auto st = ParseCallArgs(n.get()); !st.ok()) return st;
      } else if ((Peek().kind == K::kName && !IsName("else") && !IsName("or") && !IsName("and") &&
                  !IsName("if") && !IsName("in") && !IsName("is") && !IsName("not")) ||
                 Peek().kind == K::kString || Peek().kind == K::kInt || Peek().kind == K::kFloat ||
                 IsOp("[") || IsOp("{")) {
        auto arg = ParsePrimary();
        if (!arg.ok()) return arg;
        auto post = ParsePostfix(std::move(*arg));
        if (!post.ok()) return post;
        n->args.push_back(std::move(*post));
      }
      node = std::move(n);
    } else {
      return node;
    }
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<Program>> ParseTemplate(const std::string& source) {
  auto toks = LexTemplate(source);
  if (!toks.ok()) return toks.status();
  return Parser(std::move(*toks)).Run();
}

}  // namespace tpserve::text::jinja
