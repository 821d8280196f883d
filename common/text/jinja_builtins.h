// Jinja filters, tests, str/dict methods and global functions, with Python's
// semantics where chat templates depend on them.
#ifndef TPSERVE_COMMON_TEXT_JINJA_BUILTINS_H_
#define TPSERVE_COMMON_TEXT_JINJA_BUILTINS_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/text/jinja_budget.h"
#include "common/text/jinja_value.h"

namespace tpserve::text::jinja {

// Applies filter `name` (`input | name(args)`).
absl::StatusOr<Value> ApplyFilter(const std::string& name, const Value& input, CallArgs& args);
// Evaluates test `name` (`v is name(args)`).
absl::StatusOr<bool> ApplyTest(const std::string& name, const Value& v, CallArgs& args);
// Calls method `name` of a str or dict; nullopt if the object has no such method.
absl::StatusOr<std::optional<Value>> CallMethod(const Value& obj, const std::string& name, CallArgs& args);
// Global functions: range, namespace, dict, raise_exception, strftime_now.
Dict BuiltinGlobals();

// Python-style operations shared with the interpreter.
absl::StatusOr<Value> BinaryOp(const std::string& op, const Value& a, const Value& b);
absl::StatusOr<bool> Compare(const std::string& op, const Value& a, const Value& b);
// Python's < for numbers and strings (other types are an error).
absl::StatusOr<bool> LessThan(const Value& a, const Value& b);
absl::StatusOr<Value> Subscript(const Value& obj, const Value& key);
absl::StatusOr<Value> Slice(const Value& obj, const Value& start, const Value& stop, const Value& step);
// Iteration order of a value in a for loop (dict -> keys, str -> chars). A
// string's list of characters is checked against `budget` before it is built
// (a 1 MiB string is a million values).
absl::StatusOr<List> Iterate(const Value& v, RenderBudget& budget);

}  // namespace tpserve::text::jinja

#endif  // TPSERVE_COMMON_TEXT_JINJA_BUILTINS_H_
