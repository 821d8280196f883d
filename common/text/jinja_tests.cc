// Jinja tests (`v is name`) and global functions (see jinja_builtins.h).
#include <ctime>
#include <utility>

#include "absl/strings/str_cat.h"
#include "common/text/jinja_args.h"
#include "common/text/jinja_builtins.h"
#include "common/text/jinja_strings.h"

namespace tpserve::text::jinja {
namespace {

constexpr size_t kMaxRange = 1'000'000;  // items range() may produce

}  // namespace

absl::StatusOr<bool> ApplyTest(const std::string& name, const Value& v, CallArgs& a) {
  const Value* arg = Arg(a, 0, "other");
  const auto need_arg = [&]() -> absl::Status {
    return arg ? absl::OkStatus() : TypeError(absl::StrCat("test '", name, "' needs an argument"));
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.as_bool();
  if (name == "false") return v.is_bool() && !v.as_bool();
  if (name == "integer") return v.is_int();
  if (name == "float") return v.is_float();
  if (name == "number") return v.is_number() || v.is_bool();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict();
  if (name == "iterable" || name == "sequence") return v.is_string() || v.is_list() || v.is_dict();
  if (name == "callable") return v.is_function();
  if (name == "lower") return v.is_string() && AsciiLower(v.str()) == v.str();
  if (name == "upper") return v.is_string() && AsciiUpper(v.str()) == v.str();
  if (name == "even" || name == "odd" || name == "divisibleby") {
    if (!v.is_int()) return TypeError(absl::StrCat("test '", name, "' needs an integer"));
    if (name == "even") return v.as_int() % 2 == 0;
    if (name == "odd") return v.as_int() % 2 != 0;
    if (auto st = need_arg(); !st.ok()) return st;
    if (!arg->is_int() || arg->as_int() == 0) return TypeError("divisibleby needs a non-zero integer");
    return v.as_int() % arg->as_int() == 0;
  }
  static const std::pair<const char*, const char*> kCompareTests[] = {
      {"eq", "=="}, {"equalto", "=="}, {"==", "=="}, {"ne", "!="}, {"!=", "!="}, {"lt", "<"}, {"lessthan", "<"},
      {"<", "<"},   {"le", "<="},      {"<=", "<="}, {"gt", ">"},  {"greaterthan", ">"}, {">", ">"},
      {"ge", ">="}, {">=", ">="},      {"in", "in"}, {"sameas", "=="}};
  for (const auto& [test, op] : kCompareTests) {
    if (name == test) {
      if (auto st = need_arg(); !st.ok()) return st;
      if (name == "sameas" && v.type() != arg->type()) return false;
      return Compare(op, v, *arg);
    }
  }
  return TypeError(absl::StrCat("no test named '", name, "'"));
}

Dict BuiltinGlobals() {
  Dict g;
  g.Set("range", Value(Function([](CallArgs& a) -> absl::StatusOr<Value> {
    if (a.args.empty() || a.args.size() > 3) return TypeError("range expects 1 to 3 arguments");
    for (const Value& v : a.args) {
      if (!v.is_int() && !v.is_bool()) return TypeError("range arguments must be integers");
    }
    int64_t start = 0, stop, step = 1;
    if (a.args.size() == 1) {
      stop = a.args[0].as_int();
    } else {
      start = a.args[0].as_int();
      stop = a.args[1].as_int();
      if (a.args.size() == 3) step = a.args[2].as_int();
    }
    if (step == 0) return TypeError("range() arg 3 must not be zero");
    List out;
    for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
      if (out.size() >= kMaxRange) return absl::ResourceExhaustedError("range too large");
      out.push_back(Value(i));
    }
    return Value(std::move(out));
  })));
  g.Set("namespace", Value(Function([](CallArgs& a) -> absl::StatusOr<Value> {
    Dict d;
    d.is_namespace = true;
    for (const Value& v : a.args) {
      if (!v.is_dict()) return TypeError("namespace() positional argument must be a dict");
      for (const auto& [k, x] : v.dict().items) d.Set(k, x);
    }
    for (auto& [k, v] : a.kwargs) d.Set(k, v);
    return Value(std::move(d));
  })));
  g.Set("dict", Value(Function([](CallArgs& a) -> absl::StatusOr<Value> {
    Dict d;
    for (auto& [k, v] : a.kwargs) d.Set(k, v);
    return Value(std::move(d));
  })));
  g.Set("raise_exception", Value(Function([](CallArgs& a) -> absl::StatusOr<Value> {
    return absl::InvalidArgumentError(
        absl::StrCat("raise_exception: ", a.args.empty() ? std::string() : ToPyStr(a.args[0])));
  })));
  g.Set("strftime_now", Value(Function([](CallArgs& a) -> absl::StatusOr<Value> {
    if (a.args.empty() || !a.args[0].is_string()) return TypeError("strftime_now needs a format string");
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    localtime_r(&now, &tm);
    char buf[256];
    const size_t n = std::strftime(buf, sizeof(buf), a.args[0].str().c_str(), &tm);
    return Value(std::string(buf, n));
  })));
  return g;
}

}  // namespace tpserve::text::jinja
