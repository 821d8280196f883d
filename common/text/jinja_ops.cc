// Python semantics of Jinja's operators, subscripts, slices and iteration
// (see jinja_builtins.h for the declarations).
#include <algorithm>
#include <climits>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/text/jinja_builtins.h"
#include "common/text/jinja_strings.h"

namespace tpserve::text::jinja {
namespace {

constexpr size_t kMaxRepeatBytes = 16u << 20;

absl::Status TypeError(const std::string& msg) { return absl::InvalidArgumentError(msg); }

}  // namespace

absl::StatusOr<bool> LessThan(const Value& a, const Value& b) {
  if ((a.is_number() || a.is_bool()) && (b.is_number() || b.is_bool())) return a.as_float() < b.as_float();
  if (a.is_string() && b.is_string()) return a.str() < b.str();
  return TypeError(absl::StrCat("'<' not supported between instances of '", a.TypeName(), "' and '", b.TypeName(), "'"));
}

absl::StatusOr<Value> BinaryOp(const std::string& op, const Value& a, const Value& b) {
  const bool nums = (a.is_number() || a.is_bool()) && (b.is_number() || b.is_bool());
  const bool floats = a.is_float() || b.is_float();
  int64_t r = 0;
  if (op == "+") {
    if (nums && !floats) {
      if (__builtin_add_overflow(a.as_int(), b.as_int(), &r)) return TypeError("integer overflow");
      return Value(r);
    }
    if (nums) return Value(a.as_float() + b.as_float());
    if (a.is_string() && b.is_string()) return Value(a.str() + b.str());
    if (a.is_list() && b.is_list()) {
      List l = a.list();
      l.insert(l.end(), b.list().begin(), b.list().end());
      return Value(std::move(l));
    }
  } else if (op == "*" && (a.is_string() || a.is_list()) && (b.is_int() || b.is_bool())) {
    const int64_t n = std::max<int64_t>(0, b.as_int());
    const size_t unit = a.is_string() ? a.str().size() : a.list().size() * 16;
    if (n > 0 && unit * static_cast<size_t>(n) > kMaxRepeatBytes) return absl::ResourceExhaustedError("repetition too large");
    if (a.is_string()) {
      std::string s;
      for (int64_t i = 0; i < n; ++i) s += a.str();
      return Value(std::move(s));
    }
    List l;
    for (int64_t i = 0; i < n; ++i) l.insert(l.end(), a.list().begin(), a.list().end());
    return Value(std::move(l));
  } else if (nums) {
    if (op == "-" || op == "*") {
      if (floats) return Value(op == "-" ? a.as_float() - b.as_float() : a.as_float() * b.as_float());
      const bool overflow = op == "-" ? __builtin_sub_overflow(a.as_int(), b.as_int(), &r)
                                      : __builtin_mul_overflow(a.as_int(), b.as_int(), &r);
      if (overflow) return TypeError("integer overflow");
      return Value(r);
    }
    if (op == "**") {
      const double p = std::pow(a.as_float(), b.as_float());
      if (!floats && b.as_int() >= 0) {
        if (!(std::fabs(p) < 9.2e18)) return TypeError("integer overflow");
        return Value(static_cast<int64_t>(std::llround(p)));
      }
      return Value(p);
    }
    if (b.as_float() == 0) return TypeError("division by zero");
    if (!floats && b.as_int() == -1 && a.as_int() == INT64_MIN) return TypeError("integer overflow");
    if (op == "/") return Value(a.as_float() / b.as_float());
    if (op == "//") {
      if (floats) return Value(std::floor(a.as_float() / b.as_float()));
      const int64_t q = a.as_int() / b.as_int();
      return Value((a.as_int() % b.as_int() != 0 && ((a.as_int() < 0) != (b.as_int() < 0))) ? q - 1 : q);
    }
    if (op == "%") {
      if (floats) {
        const double m = std::fmod(a.as_float(), b.as_float());
        return Value((m != 0 && ((m < 0) != (b.as_float() < 0))) ? m + b.as_float() : m);
      }
      const int64_t m = a.as_int() % b.as_int();
      return Value((m != 0 && ((m < 0) != (b.as_int() < 0))) ? m + b.as_int() : m);
    }
  }
  return TypeError(absl::StrCat("unsupported operand type(s) for ", op, ": '", a.TypeName(), "' and '", b.TypeName(), "'"));
}

absl::StatusOr<bool> Compare(const std::string& op, const Value& a, const Value& b) {
  if (op == "==") return Equals(a, b);
  if (op == "!=") return !Equals(a, b);
  if (op == "in" || op == "not in") {
    bool found = false;
    if (b.is_string()) {
      if (!a.is_string()) return TypeError(absl::StrCat("'in <string>' requires string as left operand, not ", a.TypeName()));
      found = b.str().find(a.str()) != std::string::npos;
    } else if (b.is_list()) {
      found = std::any_of(b.list().begin(), b.list().end(), [&](const Value& x) { return Equals(x, a); });
    } else if (b.is_dict()) {
      found = a.is_string() && b.dict().Find(a.str()) != nullptr;
    } else if (!b.is_undefined()) {
      return TypeError(absl::StrCat("argument of type '", b.TypeName(), "' is not iterable"));
    }
    return op == "in" ? found : !found;
  }
  if (op == "<") return LessThan(a, b);
  if (op == ">") return LessThan(b, a);
  auto lt = op == "<=" ? LessThan(b, a) : LessThan(a, b);  // a<=b is !(b<a)
  if (!lt.ok()) return lt;
  return !*lt;
}

absl::StatusOr<Value> Subscript(const Value& obj, const Value& key) {
  if (obj.is_undefined()) return TypeError(absl::StrCat("undefined value has no item ", Repr(key)));
  if (obj.is_dict()) {
    if (!key.is_string()) return Value();
    const Value* v = obj.dict().Find(key.str());
    return v ? *v : Value();
  }
  if ((obj.is_list() || obj.is_string()) && (key.is_int() || key.is_bool())) {
    if (obj.is_list()) {
      const int64_t n = static_cast<int64_t>(obj.list().size());
      int64_t i = key.as_int();
      if (i < -n || i >= n) return Value();
      if (i < 0) i += n;
      return obj.list()[i];
    }
    const int64_t k = key.as_int();
    if (k >= INT64_MAX - 1 || k <= INT64_MIN + 1) return Value();
    return Slice(obj, key, Value(k == -1 ? INT64_MAX : k + 1), Value());
  }
  return Value();
}

absl::StatusOr<Value> Slice(const Value& obj, const Value& start_v, const Value& stop_v, const Value& step_v) {
  for (const Value* v : {&start_v, &stop_v, &step_v}) {
    if (!v->is_undefined() && !v->is_none() && !v->is_int() && !v->is_bool()) {
      return TypeError("slice indices must be integers or None");
    }
  }
  const bool is_str = obj.is_string();
  if (!is_str && !obj.is_list()) return TypeError(absl::StrCat("'", obj.TypeName(), "' object is not subscriptable"));
  std::vector<size_t> offs;  // code point offsets for strings
  if (is_str) offs = CodePointOffsets(obj.str());
  const int64_t n = is_str ? static_cast<int64_t>(offs.size()) - 1 : static_cast<int64_t>(obj.list().size());
  const auto given = [](const Value& v) { return !v.is_undefined() && !v.is_none(); };
  const int64_t step = given(step_v) ? step_v.as_int() : 1;
  if (step == 0) return TypeError("slice step cannot be zero");
  const auto norm = [&](const Value& v, int64_t def, int64_t lo, int64_t hi) {
    if (!given(v)) return def;
    int64_t i = std::clamp<int64_t>(v.as_int(), -n - 1, n + 1);  // no overflow below
    if (i < 0) i += n;
    return std::clamp(i, lo, hi);
  };
  const int64_t start = step > 0 ? norm(start_v, 0, 0, n) : norm(start_v, n - 1, -1, n - 1);
  const int64_t stop = step > 0 ? norm(stop_v, n, 0, n) : norm(stop_v, -1, -1, n - 1);
  std::string s;
  List l;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    if (is_str) {
      s.append(obj.str(), offs[i], offs[i + 1] - offs[i]);
    } else {
      l.push_back(obj.list()[i]);
    }
  }
  return is_str ? Value(std::move(s)) : Value(std::move(l));
}

absl::StatusOr<List> Iterate(const Value& v, RenderBudget& budget) {
  if (v.is_list()) return v.list();
  if (v.is_undefined()) return List{};
  if (v.is_dict()) {
    List keys;
    for (const auto& kv : v.dict().items) keys.push_back(Value(kv.first));
    return keys;
  }
  if (v.is_string()) {
    const size_t n = CodePointCount(v.str());
    // Counted as lists are everywhere (16 bytes an item), before building.
    if (auto st = budget.Grow(n * 16, n * 16, "list of a string's characters"); !st.ok()) return st;
    List chars;
    chars.reserve(n);
    const auto offs = CodePointOffsets(v.str());
    for (size_t i = 0; i < n; ++i) chars.push_back(Value(v.str().substr(offs[i], offs[i + 1] - offs[i])));
    return chars;
  }
  return TypeError(absl::StrCat("'", v.TypeName(), "' object is not iterable"));
}

}  // namespace tpserve::text::jinja
