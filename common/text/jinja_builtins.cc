#include "common/text/jinja_builtins.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <ctime>

#include "absl/strings/str_cat.h"
#include "common/text/jinja.h"
#include "common/text/jinja_args.h"
#include "common/text/jinja_strings.h"

namespace tpserve::text::jinja {
namespace {

// Attribute lookup used by map/selectattr/sort/join (dotted paths allowed).
Value GetAttrPath(const Value& v, const std::string& path) {
  Value cur = v;
  size_t start = 0;
  while (start <= path.size()) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (cur.is_dict()) {
      const Value* f = cur.dict().Find(part);
      cur = f ? *f : Value();
    } else if (cur.is_list() && !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit)) {
      const size_t idx = std::stoul(part);
      cur = idx < cur.list().size() ? cur.list()[idx] : Value();
    } else {
      return Value();
    }
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return cur;
}

absl::StatusOr<List> SortList(List items, bool reverse, const std::string& attribute) {
  absl::Status err;
  std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
    const Value kx = attribute.empty() ? x : GetAttrPath(x, attribute);
    const Value ky = attribute.empty() ? y : GetAttrPath(y, attribute);
    auto r = reverse ? LessThan(ky, kx) : LessThan(kx, ky);
    if (!r.ok()) {
      err = r.status();
      return false;
    }
    return *r;
  });
  if (!err.ok()) return err;
  return items;
}

std::string HtmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&#34;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

// select/reject/selectattr/rejectattr share this: test args start at `first`.
absl::StatusOr<Value> SelectImpl(const Value& input, CallArgs& a, bool want, bool by_attr) {
  auto items = Iterate(input, BudgetOf(a));
  if (!items.ok()) return items.status();
  std::string attr;
  size_t first = 0;
  if (by_attr) {
    auto name = StrArg(a, 0, "attribute", nullptr);
    if (!name.ok()) return name.status();
    attr = *name;
    first = 1;
  }
  std::string test;
  if (first < a.args.size()) {
    if (!a.args[first].is_string()) return TypeError("test name must be a string");
    test = a.args[first].str();
  }
  CallArgs test_args;
  test_args.budget = a.budget;
  for (size_t i = first + 1; i < a.args.size(); ++i) test_args.args.push_back(a.args[i]);
  List out;
  for (const Value& item : *items) {
    const Value v = by_attr ? GetAttrPath(item, attr) : item;
    bool r = v.Truthy();
    if (!test.empty()) {
      auto t = ApplyTest(test, v, test_args);
      if (!t.ok()) return t.status();
      r = *t;
    }
    if (r == want) out.push_back(item);
  }
  return Value(std::move(out));
}

absl::StatusOr<Value> MapImpl(const Value& input, CallArgs& a) {
  auto items = Iterate(input, BudgetOf(a));
  if (!items.ok()) return items.status();
  List out;
  if (const Value* attr = Arg(a, 99, "attribute")) {
    if (!attr->is_string()) return TypeError("map attribute must be a string");
    const Value* def = Arg(a, 99, "default");
    for (const Value& item : *items) {
      Value v = GetAttrPath(item, attr->str());
      out.push_back(v.is_undefined() && def ? *def : v);
    }
    return Value(std::move(out));
  }
  if (a.args.empty() || !a.args[0].is_string()) return TypeError("map needs a filter name or attribute=");
  CallArgs fargs;
  fargs.budget = a.budget;
  fargs.args.assign(a.args.begin() + 1, a.args.end());
  for (const Value& item : *items) {
    auto v = ApplyFilter(a.args[0].str(), item, fargs);
    if (!v.ok()) return v;
    out.push_back(std::move(*v));
  }
  return Value(std::move(out));
}

absl::StatusOr<Value> ToInt(const Value& v, CallArgs& a) {
  if (v.is_int() || v.is_bool()) return Value(v.as_int());
  if (v.is_float() && std::isfinite(v.as_float())) return Value(static_cast<int64_t>(v.as_float()));
  if (v.is_string()) {
    const std::string s = PyStrip(v.str(), nullptr, true, true);
    char* end = nullptr;
    errno = 0;
    const long long i = std::strtoll(s.c_str(), &end, 10);
    if (!s.empty() && end && *end == 0 && errno == 0) return Value(static_cast<int64_t>(i));
    const double d = std::strtod(s.c_str(), &end);
    if (!s.empty() && end && *end == 0 && std::isfinite(d)) return Value(static_cast<int64_t>(d));
  }
  auto def = IntArg(a, 0, "default", 0);
  if (!def.ok()) return def.status();
  return Value(*def);
}

}  // namespace

absl::StatusOr<Value> ApplyFilter(const std::string& name, const Value& in, CallArgs& a) {
  if (name == "default" || name == "d") {
    const Value* def = Arg(a, 0, "default_value");
    const Value* boolean = Arg(a, 1, "boolean");
    const bool use_default = in.is_undefined() || (boolean && boolean->Truthy() && !in.Truthy());
    return use_default ? (def ? *def : Value(std::string())) : in;
  }
  if (name == "tojson") {
    const Value* ensure_ascii = Arg(a, 0, "ensure_ascii");
    if (ensure_ascii && ensure_ascii->Truthy()) return TypeError("tojson(ensure_ascii=True) is not supported");
    auto indent = IntArg(a, 1, "indent", -1);
    if (!indent.ok()) return indent.status();
    // Deep values repeat the indent on every line (and an int would wrap).
    if (*indent > 4096) return absl::ResourceExhaustedError("tojson indent too large");
    const Value* sort_keys = Arg(a, 3, "sort_keys");
    auto s = ToJson(in, static_cast<int>(*indent), sort_keys && sort_keys->Truthy(), BudgetOf(a));
    if (!s.ok()) return s.status();
    return Value(std::move(*s));
  }
  if (name == "length" || name == "count") {
    if (in.is_undefined()) return Value(0);
    if (in.is_string()) return Value(static_cast<int64_t>(CodePointCount(in.str())));
    if (in.is_list()) return Value(static_cast<int64_t>(in.list().size()));
    if (in.is_dict()) return Value(static_cast<int64_t>(in.dict().items.size()));
    return TypeError(absl::StrCat("object of type '", in.TypeName(), "' has no len()"));
  }
  if (name == "string") {
    auto s = ToPyStr(in, BudgetOf(a));
    if (!s.ok()) return s.status();
    return Value(std::move(*s));
  }
  if (name == "safe") return in;
  if (name == "list") {
    auto l = Iterate(in, BudgetOf(a));
    if (!l.ok()) return l.status();
    return Value(std::move(*l));
  }
  if (name == "items") {
    if (in.is_undefined()) return Value(List{});
    if (!in.is_dict()) return TypeError(absl::StrCat("items filter needs a dict, got ", in.TypeName()));
    List out;
    for (const auto& [k, v] : in.dict().items) out.push_back(Value::Tuple(List{Value(k), v}));
    return Value(std::move(out));
  }
  if (name == "dictsort") {
    CallArgs none;
    auto items = ApplyFilter("items", in, none);
    if (!items.ok()) return items;
    const Value* reverse = Arg(a, 2, "reverse");
    auto sorted = SortList(items->list(), reverse && reverse->Truthy(), "0");
    if (!sorted.ok()) return sorted.status();
    return Value(std::move(*sorted));
  }
  if (name == "first" || name == "last") {
    auto l = Iterate(in, BudgetOf(a));
    if (!l.ok()) return l.status();
    if (l->empty()) return Value();
    return name == "first" ? l->front() : l->back();
  }
  if (name == "reverse") {
    if (in.is_string()) return Slice(in, Value(), Value(), Value(-1));
    auto l = Iterate(in, BudgetOf(a));
    if (!l.ok()) return l.status();
    std::reverse(l->begin(), l->end());
    return Value(std::move(*l));
  }
  if (name == "sort") {
    auto l = Iterate(in, BudgetOf(a));
    if (!l.ok()) return l.status();
    const Value* reverse = Arg(a, 0, "reverse");
    auto attr = StrArg(a, 2, "attribute", "");
    if (!attr.ok()) return attr.status();
    auto sorted = SortList(std::move(*l), reverse && reverse->Truthy(), *attr);
    if (!sorted.ok()) return sorted.status();
    return Value(std::move(*sorted));
  }
  if (name == "unique") {
    auto l = Iterate(in, BudgetOf(a));
    if (!l.ok()) return l.status();
    List out;
    for (const Value& v : *l) {
      if (std::none_of(out.begin(), out.end(), [&](const Value& o) { return Equals(o, v); })) out.push_back(v);
    }
    return Value(std::move(out));
  }
  if (name == "min" || name == "max" || name == "sum") {
    auto l = Iterate(in, BudgetOf(a));
    if (!l.ok()) return l.status();
    if (name == "sum") {
      Value acc(static_cast<int64_t>(0));
      for (const Value& v : *l) {
        auto s = BinaryOp("+", acc, v);
        if (!s.ok()) return s;
        acc = std::move(*s);
      }
      return acc;
    }
    if (l->empty()) return Value();
    Value best = l->front();
    for (const Value& v : *l) {
      auto less = name == "min" ? LessThan(v, best) : LessThan(best, v);
      if (!less.ok()) return less.status();
      if (*less) best = v;
    }
    return best;
  }
  if (name == "join") {
    auto l = Iterate(in, BudgetOf(a));
    if (!l.ok()) return l.status();
    auto sep = StrArg(a, 0, "d", "");
    if (!sep.ok()) return sep.status();
    auto attr = StrArg(a, 1, "attribute", "");
    if (!attr.ok()) return attr.status();
    std::string out;
    for (size_t i = 0; i < l->size(); ++i) {
      const size_t before = out.size();
      if (i) out += *sep;
      auto item = ToPyStr(attr->empty() ? (*l)[i] : GetAttrPath((*l)[i], *attr), BudgetOf(a));
      if (!item.ok()) return item.status();
      out += *item;
      if (auto st = BudgetOf(a).Grow(out.size(), out.size() - before, "join result"); !st.ok()) return st;
    }
    return Value(std::move(out));
  }
  if (name == "map") return MapImpl(in, a);
  if (name == "select" || name == "reject") return SelectImpl(in, a, name == "select", false);
  if (name == "selectattr" || name == "rejectattr") return SelectImpl(in, a, name == "selectattr", true);
  if (name == "attr") {
    auto n = StrArg(a, 0, "name", nullptr);
    if (!n.ok()) return n.status();
    return GetAttrPath(in, *n);
  }
  if (name == "int") return ToInt(in, a);
  if (name == "float") {
    if (in.is_number() || in.is_bool()) return Value(in.as_float());
    if (in.is_string()) {
      char* end = nullptr;
      const std::string s = PyStrip(in.str(), nullptr, true, true);
      const double d = std::strtod(s.c_str(), &end);
      if (!s.empty() && end && *end == 0) return Value(d);
    }
    const Value* def = Arg(a, 0, "default");
    return def ? *def : Value(0.0);
  }
  if (name == "abs") {
    if (in.is_float()) return Value(std::fabs(in.as_float()));
    if (in.is_int() || in.is_bool()) return Value(static_cast<int64_t>(std::llabs(in.as_int())));
    return TypeError(absl::StrCat("bad operand type for abs(): '", in.TypeName(), "'"));
  }
  if (name == "round") {
    if (!in.is_number() && !in.is_bool()) return TypeError("round needs a number");
    auto prec = IntArg(a, 0, "precision", 0);
    if (!prec.ok()) return prec.status();
    auto method = StrArg(a, 1, "method", "common");
    if (!method.ok()) return method.status();
    const double scale = std::pow(10.0, static_cast<double>(*prec));
    const double x = in.as_float() * scale;
    const double r = *method == "floor" ? std::floor(x) : *method == "ceil" ? std::ceil(x) : std::round(x);
    return Value(r / scale);
  }
  if (in.is_undefined() && (name == "upper" || name == "lower" || name == "trim" || name == "capitalize" ||
                            name == "title" || name == "replace" || name == "indent" || name == "escape" ||
                            name == "e" || name == "wordcount")) {
    return ApplyFilter(name, Value(std::string()), a);
  }
  auto printed = ToPyStr(in, BudgetOf(a));
  if (!printed.ok()) return printed.status();
  const std::string& s = *printed;
  if (name == "upper") return Value(AsciiUpper(s));
  if (name == "lower") return Value(AsciiLower(s));
  if (name == "capitalize") return Value(PyCapitalize(s));
  if (name == "title") return Value(PyTitle(s));
  if (name == "escape" || name == "e" || name == "forceescape") return Value(HtmlEscape(s));
  if (name == "trim") {
    const Value* chars = Arg(a, 0, "chars");
    return Value(PyStrip(s, chars && chars->is_string() ? &chars->str() : nullptr, true, true));
  }
  if (name == "replace") {
    auto from = StrArg(a, 0, "old", nullptr);
    auto to = StrArg(a, 1, "new", nullptr);
    auto count = IntArg(a, 2, "count", -1);
    if (!from.ok()) return from.status();
    if (!to.ok()) return to.status();
    if (!count.ok()) return count.status();
    return PyReplace(s, *from, *to, *count, BudgetOf(a));
  }
  if (name == "indent") return JinjaIndent(s, a);
  if (name == "wordcount") return Value(static_cast<int64_t>(PySplit(s, nullptr, -1).size()));
  return TypeError(absl::StrCat("no filter named '", name, "'"));
}

}  // namespace tpserve::text::jinja
