// Argument helpers shared by the Jinja builtins (filters, tests, globals):
// Python-style positional-or-keyword lookup with typed defaults.
#ifndef TPSERVE_COMMON_TEXT_JINJA_ARGS_H_
#define TPSERVE_COMMON_TEXT_JINJA_ARGS_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/text/jinja.h"
#include "common/text/jinja_budget.h"
#include "common/text/jinja_value.h"

namespace tpserve::text::jinja {

inline absl::Status TypeError(const std::string& msg) { return absl::InvalidArgumentError(msg); }

// The budget of the render making the call `a`; outside a render (a builtin
// called directly) the default value size and no deadline.
inline RenderBudget& BudgetOf(const CallArgs& a) {
  thread_local RenderBudget unbounded(kMaxValueBytes, absl::InfiniteDuration());
  return a.budget != nullptr ? *a.budget : unbounded;
}

// Positional argument `i` or keyword `name`, else nullptr.
inline const Value* Arg(const CallArgs& a, size_t i, const char* name) {
  if (i < a.args.size()) return &a.args[i];
  for (const auto& [k, v] : a.kwargs) {
    if (k == name) return &v;
  }
  return nullptr;
}

inline absl::StatusOr<int64_t> IntArg(const CallArgs& a, size_t i, const char* name, int64_t def) {
  const Value* v = Arg(a, i, name);
  if (v == nullptr || v->is_none()) return def;
  if (!v->is_int() && !v->is_bool()) return TypeError(absl::StrCat("argument '", name, "' must be an int"));
  return v->as_int();
}

inline absl::StatusOr<std::string> StrArg(const CallArgs& a, size_t i, const char* name, const char* def) {
  const Value* v = Arg(a, i, name);
  if (v == nullptr || v->is_none()) {
    if (def == nullptr) return TypeError(absl::StrCat("missing argument '", name, "'"));
    return std::string(def);
  }
  if (!v->is_string()) return TypeError(absl::StrCat("argument '", name, "' must be a str, not ", v->TypeName()));
  return v->str();
}

}  // namespace tpserve::text::jinja

#endif  // TPSERVE_COMMON_TEXT_JINJA_ARGS_H_
