// Expressions of the tree-walking evaluator (see jinja_interp.h).
#include "common/text/jinja_interp.h"

namespace tpserve::text::jinja::internal {

absl::StatusOr<CallArgs> Interpreter::EvalArgs(const Expr& e) {
  CallArgs args;
  args.budget = &budget_;
  for (const auto& a : e.args) {
    auto v = Eval(*a);
    if (!v.ok()) return v.status();
    args.args.push_back(std::move(*v));
  }
  for (const auto& [k, a] : e.kwargs) {
    auto v = Eval(*a);
    if (!v.ok()) return v.status();
    args.kwargs.emplace_back(k, std::move(*v));
  }
  return args;
}

absl::StatusOr<Value> Interpreter::EvalFilter(const Expr& e, Value input) {
  if (e.a) {
    auto inner = EvalFilter(*e.a, std::move(input));
    if (!inner.ok()) return inner;
    input = std::move(*inner);
  }
  auto args = EvalArgs(e);
  if (!args.ok()) return args.status();
  return ApplyFilter(e.name, input, *args);
}

absl::StatusOr<Value> Interpreter::Eval(const Expr& e) {
  if (++depth_ > kMaxDepth) {
    --depth_;
    return absl::ResourceExhaustedError("template nested too deeply (recursion)");
  }
  auto v = EvalInner(e);
  --depth_;
  if (!v.ok()) return At(e.pos, v.status());
  // Every evaluation is charged with the size of its value (shared values
  // are counted again: that only makes the deadline's clock read sooner).
  const size_t bytes = v->is_string() ? v->str().size() : v->is_list() ? v->list().size() * 16 : 0;
  if (auto st = budget_.Grow(bytes, bytes, "template value"); !st.ok()) return At(e.pos, st);
  return v;
}

absl::StatusOr<Value> Interpreter::EvalInner(const Expr& e) {
  switch (e.kind) {
    case Expr::Kind::kLiteral: return e.value;
    case Expr::Kind::kName: return Lookup(e.name);
    case Expr::Kind::kAttr: {
      auto obj = Eval(*e.a);
      if (!obj.ok()) return obj;
      if (obj->is_undefined()) return absl::InvalidArgumentError(absl::StrCat("undefined value has no attribute '", e.name, "'"));
      if (obj->is_dict()) {
        const Value* v = obj->dict().Find(e.name);
        return v ? *v : Value();
      }
      return Value();
    }
    case Expr::Kind::kItem: {
      auto obj = Eval(*e.a);
      if (!obj.ok()) return obj;
      auto key = Eval(*e.b);
      if (!key.ok()) return key;
      return Subscript(*obj, *key);
    }
    case Expr::Kind::kSlice: {
      auto obj = Eval(*e.a);
      if (!obj.ok()) return obj;
      Value parts[3];
      for (int i = 0; i < 3; ++i) {
        if (!e.args[i]) continue;
        auto p = Eval(*e.args[i]);
        if (!p.ok()) return p;
        parts[i] = std::move(*p);
      }
      return Slice(*obj, parts[0], parts[1], parts[2]);
    }
    case Expr::Kind::kCall: {
      if (auto st = Step(); !st.ok()) return st;
      auto args = EvalArgs(e);
      if (!args.ok()) return args.status();
      Value callee;
      if (e.a->kind == Expr::Kind::kAttr) {
        auto obj = Eval(*e.a->a);
        if (!obj.ok()) return obj;
        if (obj->is_undefined()) {
          return absl::InvalidArgumentError(absl::StrCat("undefined value has no method '", e.a->name, "'"));
        }
        auto m = CallMethod(*obj, e.a->name, *args);
        if (!m.ok()) return m.status();
        if (m->has_value()) return std::move(**m);
        if (obj->is_dict()) {
          if (const Value* v = obj->dict().Find(e.a->name)) callee = *v;
        }
        if (!callee.is_function()) {
          return absl::InvalidArgumentError(absl::StrCat("'", obj->TypeName(), "' object has no method '", e.a->name, "'"));
        }
      } else {
        auto c = Eval(*e.a);
        if (!c.ok()) return c;
        callee = std::move(*c);
      }
      if (!callee.is_function()) {
        return absl::InvalidArgumentError(absl::StrCat("'", callee.TypeName(), "' object is not callable"));
      }
      return callee.fn()(*args);
    }
    case Expr::Kind::kFilter: {
      Value input;
      if (e.a) {
        auto in = Eval(*e.a);
        if (!in.ok()) return in;
        input = std::move(*in);
      }
      auto args = EvalArgs(e);
      if (!args.ok()) return args.status();
      return ApplyFilter(e.name, input, *args);
    }
    case Expr::Kind::kTest: {
      auto v = Eval(*e.a);
      if (!v.ok()) return v;
      auto args = EvalArgs(e);
      if (!args.ok()) return args.status();
      auto r = ApplyTest(e.name, *v, *args);
      if (!r.ok()) return r.status();
      return Value(*r != e.negated);
    }
    case Expr::Kind::kUnary: {
      auto v = Eval(*e.a);
      if (!v.ok()) return v;
      if (e.name == "not") return Value(!v->Truthy());
      if (!v->is_number() && !v->is_bool()) {
        return absl::InvalidArgumentError(absl::StrCat("bad operand type for unary ", e.name, ": '", v->TypeName(), "'"));
      }
      if (e.name == "+") return v->is_float() ? Value(v->as_float()) : Value(v->as_int());
      return v->is_float() ? Value(-v->as_float()) : Value(-v->as_int());
    }
    case Expr::Kind::kBinary: {
      auto a = Eval(*e.a);
      if (!a.ok()) return a;
      if (e.name == "and") return a->Truthy() ? Eval(*e.b) : a;
      if (e.name == "or") return a->Truthy() ? a : Eval(*e.b);
      auto b = Eval(*e.b);
      if (!b.ok()) return b;
      if (e.name == "~") {  // str(a) + str(b), each within the render's budget
        auto sa = ToPyStr(*a, budget_);
        if (!sa.ok()) return sa.status();
        auto sb = ToPyStr(*b, budget_);
        if (!sb.ok()) return sb.status();
        if (auto st = budget_.Grow(sa->size() + sb->size(), 0, "template value"); !st.ok()) return st;
        return Value(*sa + *sb);
      }
      return BinaryOp(e.name, *a, *b);
    }
    case Expr::Kind::kCompare: {
      auto left = Eval(*e.a);
      if (!left.ok()) return left;
      for (size_t i = 0; i < e.ops.size(); ++i) {
        auto right = Eval(*e.args[i]);
        if (!right.ok()) return right;
        auto r = Compare(e.ops[i], *left, *right);
        if (!r.ok()) return r.status();
        if (!*r) return Value(false);
        left = std::move(right);
      }
      return Value(true);
    }
    case Expr::Kind::kCond: {
      auto c = Eval(*e.b);
      if (!c.ok()) return c;
      if (c->Truthy()) return Eval(*e.a);
      if (e.c) return Eval(*e.c);
      return Value();
    }
    case Expr::Kind::kList:
    case Expr::Kind::kTuple: {
      List l;
      for (const auto& a : e.args) {
        auto v = Eval(*a);
        if (!v.ok()) return v;
        l.push_back(std::move(*v));
      }
      return e.kind == Expr::Kind::kTuple ? Value::Tuple(std::move(l)) : Value(std::move(l));
    }
    case Expr::Kind::kDict: {
      Dict d;
      for (const auto& [k, v] : e.dict_items) {
        auto kv = Eval(*k);
        if (!kv.ok()) return kv;
        auto vv = Eval(*v);
        if (!vv.ok()) return vv;
        d.Set(ToPyStr(*kv), std::move(*vv));
      }
      return Value(std::move(d));
    }
  }
  return absl::InternalError("unknown expression");
}

}  // namespace tpserve::text::jinja::internal
