// Internal to the Jinja parser: the recursive-descent Parser class, shared by
// jinja_parser.cc (statements) and jinja_expr_parser.cc (expressions).
#ifndef TPSERVE_COMMON_TEXT_JINJA_PARSER_H_
#define TPSERVE_COMMON_TEXT_JINJA_PARSER_H_

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/text/jinja_ast.h"
#include "common/text/jinja_lexer.h"

namespace tpserve::text::jinja {

using K = Token::Kind;
// Deepest nesting of blocks or expressions accepted (bounds the recursion).
inline constexpr int kMaxNesting = 128;

// Parses one token stream into a Program; follows jinja2's parser.py grammar.
class Parser {
 public:
  explicit Parser(std::vector<Token> toks) : t_(std::move(toks)) {}

  // Parses the whole template.
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

  static std::unique_ptr<Node> NewNode(Node::Kind k, const Token& t) {
    auto n = std::make_unique<Node>();
    n->kind = k;
    n->pos = t.pos;
    return n;
  }

  ExprPtr NewExpr(Expr::Kind k, Pos p) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->pos = p;
    return e;
  }

  using R = absl::StatusOr<ExprPtr>;

  absl::Status ParseBody(const std::set<std::string>& ends, NodeList* out, std::string* end);
  absl::Status ParseTag(const Token& tag, NodeList* out);
  absl::Status ParseTargets(std::vector<std::string>* targets);
  R ParseTupleOrExpr();
  R ParseExpr();
  R Binary(R left, const char* op, R (Parser::*next)());
  R ParseOr();
  R ParseAnd();
  R ParseNot();
  R ParseCompare();
  R ParseMath1();
  R ParseConcat();
  R ParseMath2();
  R ParsePow();
  R ParseUnaryWithFilter();
  R ParseUnary(bool with_filter);
  R ParsePrimary();
  R ParsePostfix(ExprPtr node);
  R ParseFilterExpr(ExprPtr node);
  R ParseFilter(ExprPtr input);
  absl::Status ParseCallArgs(Expr* call);

  std::vector<Token> t_;
  size_t i_ = 0;
  int depth_ = 0;
};

}  // namespace tpserve::text::jinja

#endif  // TPSERVE_COMMON_TEXT_JINJA_PARSER_H_
