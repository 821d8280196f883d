#include "common/text/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "common/text/jinja.h"
#include "common/text/jinja_budget.h"
#include "common/text/unicode.h"

namespace tpserve::text::jinja {
namespace {

constexpr int kMaxDepth = 256;

std::string ReprString(const std::string& s) {
  const bool has_single = s.find('\'') != std::string::npos;
  const bool has_double = s.find('"') != std::string::npos;
  const char q = (has_single && !has_double) ? '"' : '\'';
  std::string out(1, q);
  for (unsigned char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == q) {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7F) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  out += q;
  return out;
}

void JsonString(const std::string& s, std::string* out) {
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': *out += "\\\""; break;
      case '\\': *out += "\\\\"; break;
      case '\n': *out += "\\n"; break;
      case '\r': *out += "\\r"; break;
      case '\t': *out += "\\t"; break;
      case '\b': *out += "\\b"; break;
      case '\f': *out += "\\f"; break;
      default:
        if (c < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          *out += buf;
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

absl::Status JsonDump(const Value& v, int indent, bool sort_keys, int depth, RenderBudget& budget,
                      std::string* out) {
  if (depth > kMaxDepth) return absl::InvalidArgumentError("tojson: value nested too deeply");
  // Checked once per value: between two checks at most one string (itself
  // within the budget) or one newline's indent (<= 4096 x kMaxDepth) is added.
  if (auto st = budget.Grow(out->size(), 0, "tojson result"); !st.ok()) return st;
  const auto newline = [&](int d) {
    if (indent < 0) return;
    out->push_back('\n');
    out->append(static_cast<size_t>(indent) * d, ' ');
  };
  const char* item_sep = indent < 0 ? ", " : ",";
  switch (v.type()) {
    case Value::Type::kNone: *out += "null"; return absl::OkStatus();
    case Value::Type::kBool: *out += v.as_bool() ? "true" : "false"; return absl::OkStatus();
    case Value::Type::kInt: *out += std::to_string(v.as_int()); return absl::OkStatus();
    case Value::Type::kFloat: {
      const double f = v.as_float();
      *out += std::isnan(f) ? "NaN" : std::isinf(f) ? (f > 0 ? "Infinity" : "-Infinity") : FormatFloat(f);
      return absl::OkStatus();
    }
    case Value::Type::kString: JsonString(v.str(), out); return budget.Grow(out->size(), v.str().size(), "tojson result");
    case Value::Type::kList: {
      if (v.list().empty()) {
        *out += "[]";
        return absl::OkStatus();
      }
      out->push_back('[');
      for (size_t i = 0; i < v.list().size(); ++i) {
        if (i) *out += item_sep;
        newline(depth + 1);
        if (auto st = JsonDump(v.list()[i], indent, sort_keys, depth + 1, budget, out); !st.ok()) return st;
      }
      newline(depth);
      out->push_back(']');
      return absl::OkStatus();
    }
    case Value::Type::kDict: {
      if (v.dict().items.empty()) {
        *out += "{}";
        return absl::OkStatus();
      }
      std::vector<const std::pair<std::string, Value>*> items;
      for (const auto& kv : v.dict().items) items.push_back(&kv);
      if (sort_keys) {
        std::stable_sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->first < b->first; });
      }
      out->push_back('{');
      for (size_t i = 0; i < items.size(); ++i) {
        if (i) *out += item_sep;
        newline(depth + 1);
        JsonString(items[i]->first, out);
        *out += ": ";
        if (auto st = JsonDump(items[i]->second, indent, sort_keys, depth + 1, budget, out); !st.ok()) return st;
      }
      newline(depth);
      out->push_back('}');
      return absl::OkStatus();
    }
    default:
      return absl::InvalidArgumentError(absl::StrCat("Object of type ", v.TypeName(), " is not JSON serializable"));
  }
}

absl::StatusOr<Value> FromJsonDepth(const nlohmann::ordered_json& j, int depth) {
  if (depth > kMaxDepth) return absl::InvalidArgumentError("JSON input nested too deeply");
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return Value::None();
    case nlohmann::ordered_json::value_t::boolean: return Value(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return Value(j.get<int64_t>());
    case nlohmann::ordered_json::value_t::number_unsigned:
      return Value(static_cast<int64_t>(j.get<uint64_t>()));
    case nlohmann::ordered_json::value_t::number_float: return Value(j.get<double>());
    case nlohmann::ordered_json::value_t::string: return Value(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      List l;
      l.reserve(j.size());
      for (const auto& e : j) {
        auto v = FromJsonDepth(e, depth + 1);
        if (!v.ok()) return v.status();
        l.push_back(std::move(*v));
      }
      return Value(std::move(l));
    }
    case nlohmann::ordered_json::value_t::object: {
      Dict d;
      for (auto it = j.begin(); it != j.end(); ++it) {
        auto v = FromJsonDepth(it.value(), depth + 1);
        if (!v.ok()) return v.status();
        d.items.emplace_back(it.key(), std::move(*v));
      }
      return Value(std::move(d));
    }
    default: return absl::InvalidArgumentError("unsupported JSON value (binary)");
  }
}

}  // namespace

const Value* Dict::Find(const std::string& key) const {
  for (const auto& kv : items) {
    if (kv.first == key) return &kv.second;
  }
  return nullptr;
}

void Dict::Set(const std::string& key, Value v) {
  for (auto& kv : items) {
    if (kv.first == key) {
      kv.second = std::move(v);
      return;
    }
  }
  items.emplace_back(key, std::move(v));
}

bool Value::Truthy() const {
  switch (type_) {
    case Type::kUndefined:
    case Type::kNone: return false;
    case Type::kBool: return b_;
    case Type::kInt: return i_ != 0;
    case Type::kFloat: return f_ != 0;
    case Type::kString: return !s_->empty();
    case Type::kList: return !list_->empty();
    case Type::kDict: return !dict_->items.empty();
    case Type::kFunction: return true;
  }
  return false;
}

std::string Value::TypeName() const {
  switch (type_) {
    case Type::kUndefined: return "Undefined";
    case Type::kNone: return "NoneType";
    case Type::kBool: return "bool";
    case Type::kInt: return "int";
    case Type::kFloat: return "float";
    case Type::kString: return "str";
    case Type::kList: return "list";
    case Type::kDict: return dict_->is_namespace ? "Namespace" : "dict";
    case Type::kFunction: return "function";
  }
  return "?";
}

std::string FormatFloat(double f) {
  if (std::isnan(f)) return "nan";
  if (std::isinf(f)) return f > 0 ? "inf" : "-inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), f);
  std::string s(buf, res.ptr);
  // Python switches to exponent notation at 1e16 and below 1e-4.
  const double a = std::fabs(f);
  if (a != 0 && (a >= 1e16 || a < 1e-4)) {
    res = std::to_chars(buf, buf + sizeof(buf), f, std::chars_format::scientific);
    s.assign(buf, res.ptr);
    // Python writes e+20 / e-05 as e+20 / e-05: at least two exponent digits.
    const size_t e = s.find('e');
    if (e != std::string::npos && s.size() - e == 3) s.insert(e + 2, "0");
    return s;
  }
  if (s.find_first_of(".e") == std::string::npos) s += ".0";
  return s;
}

std::string ToPyStr(const Value& v) {
  switch (v.type()) {
    case Value::Type::kUndefined: return "";
    case Value::Type::kString: return v.str();
    default: return Repr(v);
  }
}

namespace {

// A lower bound of Repr(v).size(), counted until it passes `cap`. Iterative:
// each occurrence counts, as repr prints shared values once per occurrence.
size_t ReprSizeAtLeast(const Value& v, size_t cap) {
  size_t n = 0;
  std::vector<const Value*> todo = {&v};
  while (!todo.empty() && n <= cap) {
    const Value* x = todo.back();
    todo.pop_back();
    if (x->is_string()) {
      n += x->str().size() + 2;
    } else if (x->is_list()) {
      n += 2 + 2 * x->list().size();
      for (const Value& item : x->list()) todo.push_back(&item);
    } else if (x->is_dict()) {
      n += 2 + 6 * x->dict().items.size();
      for (const auto& [key, value] : x->dict().items) {
        n += key.size();
        todo.push_back(&value);
      }
    } else {
      n += 1;
    }
  }
  return n;
}

}  // namespace

absl::StatusOr<std::string> ToPyStr(const Value& v, RenderBudget& budget) {
  if (v.is_list() || v.is_dict()) {
    const size_t at_least = ReprSizeAtLeast(v, budget.max_value_bytes());
    if (auto st = budget.Grow(at_least, 0, "printed value"); !st.ok()) return st;
  }
  std::string s = ToPyStr(v);
  if (auto st = budget.Spend(s.size()); !st.ok()) return st;
  return s;
}

std::string Repr(const Value& v) {
  switch (v.type()) {
    case Value::Type::kUndefined: return "";
    case Value::Type::kNone: return "None";
    case Value::Type::kBool: return v.as_bool() ? "True" : "False";
    case Value::Type::kInt: return std::to_string(v.as_int());
    case Value::Type::kFloat: return FormatFloat(v.as_float());
    case Value::Type::kString: return ReprString(v.str());
    case Value::Type::kList: {
      std::string out = v.is_tuple() ? "(" : "[";
      for (size_t i = 0; i < v.list().size(); ++i) {
        if (i) out += ", ";
        out += Repr(v.list()[i]);
      }
      if (v.is_tuple()) return out + (v.list().size() == 1 ? ",)" : ")");
      return out + "]";
    }
    case Value::Type::kDict: {
      std::string out = v.dict().is_namespace ? "<Namespace {" : "{";
      for (size_t i = 0; i < v.dict().items.size(); ++i) {
        if (i) out += ", ";
        out += ReprString(v.dict().items[i].first) + ": " + Repr(v.dict().items[i].second);
      }
      return out + (v.dict().is_namespace ? "}>" : "}");
    }
    case Value::Type::kFunction: return "<function>";
  }
  return "";
}

bool Equals(const Value& a, const Value& b) {
  if ((a.is_number() || a.is_bool()) && (b.is_number() || b.is_bool())) {
    if (a.is_float() || b.is_float()) return a.as_float() == b.as_float();
    return a.as_int() == b.as_int();
  }
  if (a.type() != b.type()) return false;
  switch (a.type()) {
    case Value::Type::kUndefined:
    case Value::Type::kNone: return true;
    case Value::Type::kString: return a.str() == b.str();
    case Value::Type::kList:
      if (a.is_tuple() != b.is_tuple() || a.list().size() != b.list().size()) return false;
      for (size_t i = 0; i < a.list().size(); ++i) {
        if (!Equals(a.list()[i], b.list()[i])) return false;
      }
      return true;
    case Value::Type::kDict: {
      if (a.dict().items.size() != b.dict().items.size()) return false;
      for (const auto& [k, v] : a.dict().items) {
        const Value* o = b.dict().Find(k);
        if (o == nullptr || !Equals(v, *o)) return false;
      }
      return true;
    }
    case Value::Type::kFunction: return &a.fn() == &b.fn();
    default: return false;
  }
}

absl::StatusOr<std::string> ToJson(const Value& v, int indent, bool sort_keys, RenderBudget& budget) {
  std::string out;
  if (auto st = JsonDump(v, indent, sort_keys, 0, budget, &out); !st.ok()) return st;
  if (auto st = budget.Grow(out.size(), 0, "tojson result"); !st.ok()) return st;
  return out;
}

absl::StatusOr<Value> FromJson(const nlohmann::ordered_json& j) { return FromJsonDepth(j, 0); }

}  // namespace tpserve::text::jinja
