// The value model of the Jinja interpreter: Python-like values (None, bool,
// int, float, str, list, dict, callables) with Python's str()/repr(), truth,
// equality and json.dumps formatting, so rendered templates match transformers.
#ifndef TPSERVE_COMMON_TEXT_JINJA_VALUE_H_
#define TPSERVE_COMMON_TEXT_JINJA_VALUE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace tpserve::text::jinja {

class Value;
class RenderBudget;  // jinja_budget.h
using List = std::vector<Value>;

// Positional and keyword arguments of a call, and the budget of the render
// making it (null outside a render: builtins then use kMaxValueBytes and no
// deadline, see BudgetOf in jinja_args.h).
struct CallArgs {
  std::vector<Value> args;
  std::vector<std::pair<std::string, Value>> kwargs;
  RenderBudget* budget = nullptr;
};

// A builtin global or a macro.
using Function = std::function<absl::StatusOr<Value>(CallArgs&)>;

// An insertion-ordered str-keyed dict (like Python's); `is_namespace` marks
// namespace() objects, the only ones `{% set ns.x = ... %}` may modify.
struct Dict {
  std::vector<std::pair<std::string, Value>> items;
  bool is_namespace = false;
  // Returns the value for `key` or nullptr.
  const Value* Find(const std::string& key) const;
  // Inserts or replaces `key`.
  void Set(const std::string& key, Value v);
};

// A dynamically typed template value. Default-constructed is Undefined.
class Value {
 public:
  enum class Type { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kFunction };

  Value() = default;
  explicit Value(bool b) : type_(Type::kBool), b_(b) {}
  explicit Value(int64_t i) : type_(Type::kInt), i_(i) {}
  explicit Value(int i) : type_(Type::kInt), i_(i) {}
  explicit Value(double f) : type_(Type::kFloat), f_(f) {}
  explicit Value(std::string s) : type_(Type::kString), s_(std::make_shared<std::string>(std::move(s))) {}
  explicit Value(const char* s) : Value(std::string(s)) {}
  explicit Value(List l) : type_(Type::kList), list_(std::make_shared<List>(std::move(l))) {}
  explicit Value(Dict d) : type_(Type::kDict), dict_(std::make_shared<Dict>(std::move(d))) {}
  explicit Value(Function f) : type_(Type::kFunction), fn_(std::make_shared<Function>(std::move(f))) {}
  // A Python tuple: a list that prints with parentheses.
  static Value Tuple(List l) {
    Value v(std::move(l));
    v.tuple_ = true;
    return v;
  }
  // Python's None.
  static Value None() {
    Value v;
    v.type_ = Type::kNone;
    return v;
  }

  Type type() const { return type_; }
  bool is_undefined() const { return type_ == Type::kUndefined; }
  bool is_none() const { return type_ == Type::kNone; }
  bool is_bool() const { return type_ == Type::kBool; }
  bool is_int() const { return type_ == Type::kInt; }
  bool is_float() const { return type_ == Type::kFloat; }
  bool is_number() const { return type_ == Type::kInt || type_ == Type::kFloat; }
  bool is_string() const { return type_ == Type::kString; }
  bool is_list() const { return type_ == Type::kList; }
  bool is_dict() const { return type_ == Type::kDict; }
  bool is_function() const { return type_ == Type::kFunction; }
  bool is_tuple() const { return type_ == Type::kList && tuple_; }

  bool as_bool() const { return b_; }
  int64_t as_int() const { return type_ == Type::kBool ? b_ : i_; }
  double as_float() const { return type_ == Type::kFloat ? f_ : static_cast<double>(as_int()); }
  const std::string& str() const { return *s_; }
  const List& list() const { return *list_; }
  const Dict& dict() const { return *dict_; }
  Dict& mutable_dict() const { return *dict_; }
  const Function& fn() const { return *fn_; }

  // Python truthiness (Undefined is false).
  bool Truthy() const;
  // Python's type name, for error messages ("str", "list", "dict", ...).
  std::string TypeName() const;

 private:
  Type type_ = Type::kUndefined;
  bool b_ = false;
  bool tuple_ = false;
  int64_t i_ = 0;
  double f_ = 0;
  std::shared_ptr<std::string> s_;
  std::shared_ptr<List> list_;
  std::shared_ptr<Dict> dict_;
  std::shared_ptr<Function> fn_;
};

// Python str(): what `{{ v }}` prints ("" for Undefined, "None", "True", ...).
std::string ToPyStr(const Value& v);
// Python repr().
std::string Repr(const Value& v);
// ToPyStr within a render's budget: a list or dict whose repr would pass
// max_value_bytes is refused (RESOURCE_EXHAUSTED) before any of it is built;
// a list of one shared big string repeated is small but prints big.
absl::StatusOr<std::string> ToPyStr(const Value& v, RenderBudget& budget);
// Python ==.
bool Equals(const Value& a, const Value& b);
// Python's float repr (shortest round-trip, "1.0", "1e+20").
std::string FormatFloat(double f);
// json.dumps(v, ensure_ascii=False, indent=indent, sort_keys=sort_keys) as
// transformers' tojson filter does; indent < 0 means none. The result is
// bounded by `budget` (size and deadline) as it is built.
absl::StatusOr<std::string> ToJson(const Value& v, int indent, bool sort_keys, RenderBudget& budget);
// Converts JSON (keys in their original order) to a Value; depth-limited.
absl::StatusOr<Value> FromJson(const nlohmann::ordered_json& j);

}  // namespace tpserve::text::jinja

#endif  // TPSERVE_COMMON_TEXT_JINJA_VALUE_H_
