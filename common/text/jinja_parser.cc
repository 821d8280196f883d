// Statement-level parsing of Jinja templates (tags and text); expressions
// are in jinja_expr_parser.cc.
#include "common/text/jinja_parser.h"

namespace tpserve::text::jinja {

// Parses statements until a block tag whose name is in `ends`; stores that
// name in *end and leaves the tokens after it unconsumed.
absl::Status Parser::ParseBody(const std::set<std::string>& ends, NodeList* out, std::string* end) {
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

absl::Status Parser::ParseTag(const Token& tag, NodeList* out) {
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

absl::Status Parser::ParseTargets(std::vector<std::string>* targets) {
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

absl::StatusOr<std::unique_ptr<Program>> ParseTemplate(const std::string& source) {
  auto toks = LexTemplate(source);
  if (!toks.ok()) return toks.status();
  return Parser(std::move(*toks)).Run();
}

}  // namespace tpserve::text::jinja
