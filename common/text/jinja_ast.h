// Syntax tree of a parsed Jinja template (the subset HF chat templates use).
#ifndef TPSERVE_COMMON_TEXT_JINJA_AST_H_
#define TPSERVE_COMMON_TEXT_JINJA_AST_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "common/text/jinja_value.h"

namespace tpserve::text::jinja {

// A 1-based line:column in the template source.
struct Pos {
  int line = 1;
  int col = 1;
};

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

// One expression node. Fields used depend on `kind`:
//   kLiteral: value.           kName: name.
//   kAttr: a=object, name.     kItem: a=object, b=key.
//   kSlice: a=object, args=[start, stop, step] (null = omitted).
//   kCall: a=callee, args, kwargs.
//   kFilter: a=input (null inside `{% filter %}`), name, args, kwargs.
//   kTest: a=input, name, args, negated.
//   kUnary: name is "not" or "-" or "+", a.
//   kBinary: name is the operator, a, b (and/or short-circuit).
//   kCompare: a, then ops[i] applied with args[i] (chained).
//   kCond: a=then, b=condition, c=else (may be null).
//   kList / kTuple: args.        kDict: kwargs-like pairs in dict_items.
struct Expr {
  enum class Kind { kLiteral, kName, kAttr, kItem, kSlice, kCall, kFilter, kTest, kUnary, kBinary,
                    kCompare, kCond, kList, kTuple, kDict };
  Kind kind;
  Pos pos;
  Value value;
  std::string name;
  bool negated = false;
  ExprPtr a, b, c;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;
  std::vector<std::pair<ExprPtr, ExprPtr>> dict_items;
};

struct Node;
using NodeList = std::vector<std::unique_ptr<Node>>;

// One statement. Fields used depend on `kind`:
//   kText: text.                 kOutput: expr.
//   kIf: conds[i] guards bodies[i]; a trailing extra body is the else.
//   kFor: targets, expr=iterable, cond=filter, bodies[0]=body, bodies[1]=else.
//   kSet: targets (one name, several for unpacking, or "ns.attr"), expr;
//         with no expr, bodies[0] is captured (block set).
//   kMacro: name, params (defaults in param_defaults, null = required), bodies[0].
//   kCallBlock: expr=call of a macro, bodies[0] is passed as caller().
//   kFilterBlock: expr = filter chain with null input, bodies[0].
//   kBreak / kContinue.  kScope: bodies[0] (generation blocks, with-less scopes).
struct Node {
  enum class Kind { kText, kOutput, kIf, kFor, kSet, kMacro, kCallBlock, kFilterBlock, kBreak,
                    kContinue, kScope };
  Kind kind;
  Pos pos;
  std::string text;
  std::string name;
  ExprPtr expr, cond;
  std::vector<ExprPtr> conds;
  std::vector<NodeList> bodies;
  std::vector<std::string> targets;
  std::vector<std::string> params;
  std::vector<ExprPtr> param_defaults;
};

// A parsed template.
struct Program {
  NodeList body;
};

// Parses Jinja source with transformers' settings (trim_blocks and
// lstrip_blocks on). Errors carry "line:col".
absl::StatusOr<std::unique_ptr<Program>> ParseTemplate(const std::string& source);

}  // namespace tpserve::text::jinja

#endif  // TPSERVE_COMMON_TEXT_JINJA_AST_H_
