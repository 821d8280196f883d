// Expression parsing for Jinja templates, with jinja2's operator precedence:
// conditional < or < and < not < comparisons < + - < ~ < * / // % < ** <
// unary < filters/tests < postfix (attribute, subscript, call) < primary.
#include <cerrno>
#include <cstdlib>

#include "common/text/jinja_parser.h"

namespace tpserve::text::jinja {

// `a, b` without brackets (as in `set x = a, b`) builds a tuple.
Parser::R Parser::ParseTupleOrExpr() {
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

Parser::R Parser::ParseExpr() {
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

Parser::R Parser::Binary(R left, const char* op, R (Parser::*next)()) {
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

Parser::R Parser::ParseOr() { return Binary(ParseAnd(), "or", &Parser::ParseAnd); }
Parser::R Parser::ParseAnd() { return Binary(ParseNot(), "and", &Parser::ParseNot); }
Parser::R Parser::ParseNot() {
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
Parser::R Parser::ParseCompare() {
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
Parser::R Parser::ParseMath1() {
  auto left = ParseConcat();
  while (left.ok() && (IsOp("+") || IsOp("-"))) {
    const char* op = IsOp("+") ? "+" : "-";
    left = Binary(std::move(left), op, &Parser::ParseConcat);
  }
  return left;
}
Parser::R Parser::ParseConcat() { return Binary(ParseMath2(), "~", &Parser::ParseMath2); }
Parser::R Parser::ParseMath2() {
  auto left = ParsePow();
  while (left.ok() && (IsOp("*") || IsOp("/") || IsOp("//") || IsOp("%"))) {
    left = Binary(std::move(left), Peek().text.c_str(), &Parser::ParsePow);
  }
  return left;
}
Parser::R Parser::ParsePow() { return Binary(ParseUnary(true), "**", &Parser::ParseUnaryWithFilter); }
Parser::R Parser::ParseUnaryWithFilter() { return ParseUnary(true); }
Parser::R Parser::ParseUnary(bool with_filter) {
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

}  // namespace tpserve::text::jinja
