// The tree-walking evaluator behind Template::Render (jinja.h): statements
// in jinja_interp.cc, expressions in jinja_eval.cc. Internal to the jinja
// library.
#ifndef TPSERVE_COMMON_TEXT_JINJA_INTERP_H_
#define TPSERVE_COMMON_TEXT_JINJA_INTERP_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/text/jinja.h"
#include "common/text/jinja_budget.h"
#include "common/text/jinja_builtins.h"

namespace tpserve::text::jinja::internal {

// Prefixes an error with the template position it came from (once).
inline absl::Status At(Pos p, const absl::Status& st) {
  if (st.ok() || absl::StartsWith(st.message(), "template error at ")) return st;
  return absl::Status(st.code(), absl::StrCat("template error at ", p.line, ":", p.col, ": ", st.message()));
}

class Interpreter {
 public:
  Interpreter(const Dict& vars, const RenderLimits& limits)
      : limits_(limits), budget_(limits.max_value_bytes, limits.max_duration) {
    globals_ = BuiltinGlobals();
    for (const auto& [k, v] : vars.items) globals_.Set(k, v);
    scopes_.emplace_back();
  }

  // Runs `body`, appending its output to `out`.
  absl::Status Exec(const NodeList& body, std::string* out);

 private:
  enum class Flow { kNormal, kBreak, kContinue };
  using Scope = std::vector<std::pair<std::string, Value>>;

  absl::Status Step() {
    if (++steps_ > limits_.max_steps) {
      return absl::ResourceExhaustedError(
          absl::StrCat("template exceeded ", limits_.max_steps, " steps (runaway loop?)"));
    }
    return budget_.Spend(0);
  }
  // Appends str(v), refused before it is built when it would be too large.
  absl::Status AppendPrinted(std::string* out, const Value& v) {
    auto s = ToPyStr(v, budget_);
    if (!s.ok()) return s.status();
    return Append(out, *s);
  }

  absl::Status Append(std::string* out, const std::string& s) {
    out->append(s);
    if (out->size() > limits_.max_output_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat("template output exceeded ", limits_.max_output_bytes, " bytes"));
    }
    return budget_.Spend(s.size());
  }

  Value Lookup(const std::string& name) const {
    for (auto s = scopes_.rbegin(); s != scopes_.rend(); ++s) {
      for (auto it = s->rbegin(); it != s->rend(); ++it) {
        if (it->first == name) return it->second;
      }
    }
    if (const Value* v = globals_.Find(name)) return *v;
    return Value();
  }
  void Assign(const std::string& name, Value v) {
    for (auto& kv : scopes_.back()) {
      if (kv.first == name) {
        kv.second = std::move(v);
        return;
      }
    }
    scopes_.back().emplace_back(name, std::move(v));
  }
  // `a, b = value` unpacking (one name: plain assignment).
  absl::Status AssignTargets(const std::vector<std::string>& targets, const Value& v);

  // Statements (jinja_interp.cc).
  absl::Status ExecNode(const Node& n, std::string* out);
  absl::Status ExecSet(const Node& n);
  absl::Status ExecFor(const Node& n, std::string* out);
  Value MakeMacro(const Node& n);

  // Expressions (jinja_eval.cc).
  absl::StatusOr<CallArgs> EvalArgs(const Expr& e);
  // Applies a filter chain whose innermost input slot is empty to `input`.
  absl::StatusOr<Value> EvalFilter(const Expr& e, Value input);
  // Eval bounds the recursion depth and tags errors with the position;
  // EvalInner does the work.
  absl::StatusOr<Value> Eval(const Expr& e);
  absl::StatusOr<Value> EvalInner(const Expr& e);

  RenderLimits limits_;
  // Value size and deadline, shared with the builtins through CallArgs.
  RenderBudget budget_;
  Dict globals_;
  std::vector<Scope> scopes_;
  Flow flow_ = Flow::kNormal;
  int64_t steps_ = 0;
  int loop_depth_ = 0;
  int call_depth_ = 0;
  // Exec/Eval recursion depth, bounded so that recursive macros over deeply
  // nested bodies cannot exhaust a thread's stack.
  static constexpr int kMaxDepth = 600;
  int depth_ = 0;
};

}  // namespace tpserve::text::jinja::internal

#endif  // TPSERVE_COMMON_TEXT_JINJA_INTERP_H_
