#include "common/text/jinja_strings.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "common/text/jinja.h"
#include "common/text/jinja_args.h"
#include "common/text/jinja_budget.h"
#include "common/text/jinja_builtins.h"
#include "common/text/unicode.h"

namespace tpserve::text::jinja {
namespace {

bool IsPySpace(uint32_t cp) {
  return (cp >= 0x1C && cp <= 0x1F) || (ClassOf(cp) & kWhitespace) != 0;
}

std::vector<uint32_t> CodePoints(const std::string& s) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i < s.size();) {
    int len;
    out.push_back(DecodeUtf8(s, i, &len));
    i += len;
  }
  return out;
}

absl::StatusOr<std::optional<std::string>> OptStr(const CallArgs& a, size_t i, const char* name) {
  const Value* v = Arg(a, i, name);
  if (v == nullptr || v->is_none()) return std::optional<std::string>();
  if (!v->is_string()) return absl::InvalidArgumentError(absl::StrCat("argument '", name, "' must be a str"));
  return std::optional<std::string>(v->str());
}

absl::StatusOr<std::optional<Value>> StrMethod(const std::string& s, const std::string& name, CallArgs& a) {
  using R = std::optional<Value>;
  if (name == "startswith" || name == "endswith") {
    const Value* p = Arg(a, 0, "prefix");
    if (p == nullptr) return absl::InvalidArgumentError(absl::StrCat(name, " needs an argument"));
    std::vector<std::string> cands;
    if (p->is_string()) {
      cands.push_back(p->str());
    } else if (p->is_list()) {
      for (const Value& v : p->list()) {
        if (v.is_string()) cands.push_back(v.str());
      }
    } else {
      return absl::InvalidArgumentError(absl::StrCat(name, " argument must be str or tuple"));
    }
    for (const auto& c : cands) {
      if (name == "startswith" ? s.starts_with(c) : s.ends_with(c)) return R(Value(true));
    }
    return R(Value(false));
  }
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    auto chars = OptStr(a, 0, "chars");
    if (!chars.ok()) return chars.status();
    return R(Value(PyStrip(s, chars->has_value() ? &**chars : nullptr, name != "rstrip", name != "lstrip")));
  }
  if (name == "split" || name == "rsplit") {
    auto sep = OptStr(a, 0, "sep");
    if (!sep.ok()) return sep.status();
    const Value* m = Arg(a, 1, "maxsplit");
    const int64_t maxsplit = m && m->is_int() ? m->as_int() : -1;
    if (sep->has_value() && (*sep)->empty()) return absl::InvalidArgumentError("empty separator");
    std::vector<std::string> parts;
    if (name == "rsplit" && maxsplit >= 0) {
      // rsplit differs from split only when maxsplit bounds the count.
      parts = PySplit(s, sep->has_value() ? &**sep : nullptr, -1);
      if (static_cast<int64_t>(parts.size()) > maxsplit + 1) {
        const std::string joiner = sep->has_value() ? **sep : " ";
        std::string head = parts[0];
        const size_t keep = parts.size() - maxsplit;
        for (size_t i = 1; i < keep; ++i) head += joiner + parts[i];
        parts.erase(parts.begin(), parts.begin() + keep);
        parts.insert(parts.begin(), head);
      }
    } else {
      parts = PySplit(s, sep->has_value() ? &**sep : nullptr, maxsplit);
    }
    List l;
    for (auto& p : parts) l.push_back(Value(std::move(p)));
    return R(Value(std::move(l)));
  }
  if (name == "upper") return R(Value(AsciiUpper(s)));
  if (name == "lower") return R(Value(AsciiLower(s)));
  if (name == "title") return R(Value(PyTitle(s)));
  if (name == "capitalize") return R(Value(PyCapitalize(s)));
  if (name == "replace") {
    auto from = OptStr(a, 0, "old");
    auto to = OptStr(a, 1, "new");
    if (!from.ok() || !to.ok() || !from->has_value() || !to->has_value()) {
      return absl::InvalidArgumentError("replace needs two strings");
    }
    const Value* c = Arg(a, 2, "count");
    auto replaced = PyReplace(s, **from, **to, c && c->is_int() ? c->as_int() : -1, BudgetOf(a));
    if (!replaced.ok()) return replaced.status();
    return R(*std::move(replaced));
  }
  if (name == "find" || name == "rfind" || name == "count" || name == "index") {
    auto sub = OptStr(a, 0, "sub");
    if (!sub.ok() || !sub->has_value()) return absl::InvalidArgumentError(absl::StrCat(name, " needs a string"));
    if (name == "count") {
      if ((*sub)->empty()) return R(Value(static_cast<int64_t>(CodePointCount(s) + 1)));
      int64_t n = 0;
      for (size_t p = s.find(**sub); p != std::string::npos; p = s.find(**sub, p + (*sub)->size())) ++n;
      return R(Value(n));
    }
    const size_t p = name == "rfind" ? s.rfind(**sub) : s.find(**sub);
    if (p == std::string::npos) {
      if (name == "index") return absl::InvalidArgumentError("substring not found");
      return R(Value(-1));
    }
    return R(Value(static_cast<int64_t>(CodePointCount(s.substr(0, p)))));
  }
  if (name == "join") {
    if (a.args.size() != 1) return absl::InvalidArgumentError("join takes one argument");
    auto items = Iterate(a.args[0], BudgetOf(a));
    if (!items.ok()) return items.status();
    std::string out;
    for (size_t i = 0; i < items->size(); ++i) {
      if (!(*items)[i].is_string()) return absl::InvalidArgumentError("join expects strings");
      const size_t before = out.size();
      if (i) out += s;
      out += (*items)[i].str();
      if (auto st = BudgetOf(a).Grow(out.size(), out.size() - before, "join result"); !st.ok()) return st;
    }
    return R(Value(std::move(out)));
  }
  if (name == "removeprefix" || name == "removesuffix") {
    auto x = OptStr(a, 0, "x");
    if (!x.ok() || !x->has_value()) return absl::InvalidArgumentError(absl::StrCat(name, " needs a string"));
    if (name == "removeprefix" && s.starts_with(**x)) return R(Value(s.substr((*x)->size())));
    if (name == "removesuffix" && s.ends_with(**x)) return R(Value(s.substr(0, s.size() - (*x)->size())));
    return R(Value(s));
  }
  if (name == "format") {
    std::string out;
    size_t next = 0;
    for (size_t i = 0; i < s.size(); ++i) {
      if (s[i] == '{' && i + 1 < s.size() && s[i + 1] == '{') {
        out += '{';
        ++i;
      } else if (s[i] == '}' && i + 1 < s.size() && s[i + 1] == '}') {
        out += '}';
        ++i;
      } else if (s[i] == '{') {
        const size_t close = s.find('}', i);
        if (close == std::string::npos) return absl::InvalidArgumentError("format: unmatched '{'");
        const std::string field = s.substr(i + 1, close - i - 1);
        const Value* v = nullptr;
        if (field.empty()) {
          v = next < a.args.size() ? &a.args[next++] : nullptr;
        } else if (std::all_of(field.begin(), field.end(), ::isdigit)) {
          const size_t k = std::stoul(field);
          v = k < a.args.size() ? &a.args[k] : nullptr;
        } else {
          v = Arg(a, SIZE_MAX, field.c_str());
        }
        if (v == nullptr) return absl::InvalidArgumentError(absl::StrCat("format: no argument for {", field, "}"));
        auto printed = ToPyStr(*v, BudgetOf(a));
        if (!printed.ok()) return printed.status();
        out += *printed;
        i = close;
      } else {
        out += s[i];
      }
    }
    return R(Value(std::move(out)));
  }
  const auto all = [&](auto pred) {
    const auto cps = CodePoints(s);
    return R(Value(!cps.empty() && std::all_of(cps.begin(), cps.end(), pred)));
  };
  if (name == "isdigit") return all([](uint32_t c) { return c >= '0' && c <= '9'; });
  if (name == "isalpha") return all([](uint32_t c) { return (ClassOf(c) & kLetter) != 0; });
  if (name == "isspace") return all([](uint32_t c) { return IsPySpace(c); });
  if (name == "isupper") return R(Value(AsciiUpper(s) == s && AsciiLower(s) != s));
  if (name == "islower") return R(Value(AsciiLower(s) == s && AsciiUpper(s) != s));
  return R();
}

}  // namespace

size_t CodePointCount(const std::string& s) {
  size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

std::vector<size_t> CodePointOffsets(const std::string& s) {
  std::vector<size_t> offs;
  for (size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) offs.push_back(i);
  }
  offs.push_back(s.size());
  return offs;
}

std::string PyStrip(const std::string& s, const std::string* chars, bool left, bool right) {
  std::vector<uint32_t> set;
  if (chars) set = CodePoints(*chars);
  const auto strip = [&](uint32_t cp) {
    return chars ? std::find(set.begin(), set.end(), cp) != set.end() : IsPySpace(cp);
  };
  const auto offs = CodePointOffsets(s);
  size_t b = 0, e = offs.size() - 1;  // code point indices [b, e)
  int len;
  while (left && b < e && strip(DecodeUtf8(s, offs[b], &len))) ++b;
  while (right && e > b && strip(DecodeUtf8(s, offs[e - 1], &len))) --e;
  return s.substr(offs[b], offs[e] - offs[b]);
}

std::vector<std::string> PySplit(const std::string& s, const std::string* sep, int64_t maxsplit) {
  std::vector<std::string> out;
  if (sep) {
    size_t start = 0;
    while (maxsplit < 0 || static_cast<int64_t>(out.size()) < maxsplit) {
      const size_t p = s.find(*sep, start);
      if (p == std::string::npos) break;
      out.push_back(s.substr(start, p - start));
      start = p + sep->size();
    }
    out.push_back(s.substr(start));
    return out;
  }
  const auto offs = CodePointOffsets(s);
  size_t i = 0;
  const size_t n = offs.size() - 1;
  int len;
  const auto space = [&](size_t k) { return IsPySpace(DecodeUtf8(s, offs[k], &len)); };
  while (true) {
    while (i < n && space(i)) ++i;
    if (i >= n) break;
    if (maxsplit >= 0 && static_cast<int64_t>(out.size()) >= maxsplit) {
      size_t e = n;
      while (e > i && space(e - 1)) --e;
      out.push_back(s.substr(offs[i], offs[e] - offs[i]));
      break;
    }
    size_t j = i;
    while (j < n && !space(j)) ++j;
    out.push_back(s.substr(offs[i], offs[j] - offs[i]));
    i = j;
  }
  return out;
}

absl::StatusOr<Value> PyReplace(const std::string& s, const std::string& from, const std::string& to,
                                int64_t count, RenderBudget& budget) {
  if (from.empty()) {
    // Python inserts `to` before every code point and at the end.
    std::string out;
    const auto offs = CodePointOffsets(s);
    const size_t n = offs.size() - 1;
    int64_t done = 0;
    for (size_t i = 0; i <= n; ++i) {
      const size_t before = out.size();
      if (count < 0 || done < count) {
        out += to;
        ++done;
      }
      if (i < n) out.append(s, offs[i], offs[i + 1] - offs[i]);
      if (auto st = budget.Grow(out.size(), out.size() - before, "replace result"); !st.ok()) return st;
    }
    return Value(std::move(out));
  }
  std::string out;
  size_t start = 0;
  int64_t done = 0;
  while (count < 0 || done < count) {
    const size_t p = s.find(from, start);
    if (p == std::string::npos) break;
    const size_t before = out.size();
    out.append(s, start, p - start);
    out += to;
    start = p + from.size();
    ++done;
    if (auto st = budget.Grow(out.size(), out.size() - before, "replace result"); !st.ok()) return st;
  }
  out.append(s, start);
  return Value(std::move(out));
}

std::string AsciiUpper(std::string s) {
  for (char& c : s) {
    if (c >= 'a' && c <= 'z') c -= 32;
  }
  return s;
}

std::string AsciiLower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c += 32;
  }
  return s;
}

std::string PyCapitalize(const std::string& s) {
  std::string out = AsciiLower(s);
  if (!out.empty() && out[0] >= 'a' && out[0] <= 'z') out[0] -= 32;
  return out;
}

std::string PyTitle(const std::string& s) {
  std::string out = s;
  bool prev_cased = false;
  for (char& c : out) {
    const bool lower = c >= 'a' && c <= 'z', upper = c >= 'A' && c <= 'Z';
    if (lower && !prev_cased) c -= 32;
    if (upper && prev_cased) c += 32;
    prev_cased = lower || upper;
  }
  return out;
}

absl::StatusOr<Value> JinjaIndent(const std::string& s, const CallArgs& a) {
  const Value* w = Arg(a, 0, "width");
  const Value* first = Arg(a, 1, "first");
  const Value* blank = Arg(a, 2, "blank");
  RenderBudget& budget = BudgetOf(a);
  // As Python's " " * width: a negative width is no indent.
  const int64_t width = w && w->is_int() ? std::max<int64_t>(0, w->as_int()) : 4;
  if (!(w && w->is_string())) {
    if (auto st = budget.Grow(static_cast<uint64_t>(width), 0, "indent width"); !st.ok()) return st;
  }
  const std::string pad = w && w->is_string() ? w->str() : std::string(width, ' ');
  // Jinja appends a newline first and then uses splitlines().
  std::vector<std::string> lines;
  size_t start = 0;
  const std::string text = s + "\n";
  for (size_t p = text.find('\n'); p != std::string::npos; p = text.find('\n', start)) {
    lines.push_back(text.substr(start, p - start));
    start = p + 1;
  }
  std::string rv = lines.empty() ? "" : lines[0];
  for (size_t i = 1; i < lines.size(); ++i) {
    const size_t before = rv.size();
    rv += '\n';
    if (!lines[i].empty() || (blank && blank->Truthy())) rv += pad;
    rv += lines[i];
    if (auto st = budget.Grow(rv.size(), rv.size() - before, "indent result"); !st.ok()) return st;
  }
  if (first && first->Truthy()) {
    rv = pad + rv;
    if (auto st = budget.Grow(rv.size(), pad.size(), "indent result"); !st.ok()) return st;
  }
  return Value(std::move(rv));
}

absl::StatusOr<std::optional<Value>> CallMethod(const Value& obj, const std::string& name, CallArgs& args) {
  if (obj.is_string()) return StrMethod(obj.str(), name, args);
  if (obj.is_dict() && !obj.dict().is_namespace) {
    const Dict& d = obj.dict();
    if (name == "items" || name == "keys" || name == "values") {
      List out;
      for (const auto& [k, v] : d.items) {
        out.push_back(name == "items" ? Value::Tuple(List{Value(k), v}) : name == "keys" ? Value(k) : v);
      }
      return std::optional<Value>(Value(std::move(out)));
    }
    if (name == "get") {
      if (args.args.empty()) return absl::InvalidArgumentError("get needs a key");
      const Value* v = args.args[0].is_string() ? d.Find(args.args[0].str()) : nullptr;
      if (v) return std::optional<Value>(*v);
      return std::optional<Value>(args.args.size() > 1 ? args.args[1] : Value::None());
    }
  }
  return std::optional<Value>();
}

}  // namespace tpserve::text::jinja
