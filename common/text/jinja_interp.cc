// Tree-walking evaluator for parsed templates (see jinja.h).
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/text/jinja.h"
#include "common/text/jinja_builtins.h"

namespace tpserve::text::jinja {
namespace {

absl::Status At(Pos p, const absl::Status& st) {
  if (st.ok() || absl::StartsWith(st.message(), "template error at ")) return st;
  return absl::Status(st.code(), absl::StrCat("template error at ", p.line, ":", p.col, ": ", st.message()));
}

class Interpreter {
 public:
  Interpreter(const Dict& vars, const RenderLimits& limits) : limits_(limits) {
    globals_ = BuiltinGlobals();
    for (const auto& [k, v] : vars.items) globals_.Set(k, v);
    scopes_.emplace_back();
  }

  absl::Status Exec(const NodeList& body, std::string* out) {
    if (++depth_ > kMaxDepth) {
      --depth_;
      return absl::ResourceExhaustedError("template nested too deeply (recursion)");
    }
    absl::Status st;
    for (const auto& n : body) {
      st = ExecNode(*n, out);
      if (!st.ok()) {
        st = At(n->pos, st);
        break;
      }
      if (flow_ != Flow::kNormal) break;
    }
    --depth_;
    return st;
  }

 private:
  enum class Flow { kNormal, kBreak, kContinue };
  using Scope = std::vector<std::pair<std::string, Value>>;

  absl::Status Step() {
    if (++steps_ > limits_.max_steps) {
      return absl::ResourceExhaustedError(
          absl::StrCat("template exceeded ", limits_.max_steps, " steps (runaway loop?)"));
    }
    return absl::OkStatus();
  }
  absl::Status Append(std::string* out, const std::string& s) {
    out->append(s);
    if (out->size() > limits_.max_output_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat("template output exceeded ", limits_.max_output_bytes, " bytes"));
    }
    return absl::OkStatus();
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
  absl::Status AssignTargets(const std::vector<std::string>& targets, const Value& v) {
    if (targets.size() == 1) {
      Assign(targets[0], v);
      return absl::OkStatus();
    }
    if (!v.is_list() || v.list().size() != targets.size()) {
      return absl::InvalidArgumentError(absl::StrCat("cannot unpack ", v.TypeName(), " into ", targets.size(), " names"));
    }
    for (size_t i = 0; i < targets.size(); ++i) Assign(targets[i], v.list()[i]);
    return absl::OkStatus();
  }

  absl::Status ExecNode(const Node& n, std::string* out) {
    if (auto st = Step(); !st.ok()) return st;
    switch (n.kind) {
      case Node::Kind::kText: return Append(out, n.text);
      case Node::Kind::kOutput: {
        auto v = Eval(*n.expr);
        if (!v.ok()) return v.status();
        return Append(out, ToPyStr(*v));
      }
      case Node::Kind::kIf:
        for (size_t i = 0; i < n.conds.size(); ++i) {
          auto c = Eval(*n.conds[i]);
          if (!c.ok()) return c.status();
          if (c->Truthy()) return Exec(n.bodies[i], out);
        }
        if (n.bodies.size() > n.conds.size()) return Exec(n.bodies.back(), out);
        return absl::OkStatus();
      case Node::Kind::kFor: return ExecFor(n, out);
      case Node::Kind::kSet: return ExecSet(n);
      case Node::Kind::kMacro: Assign(n.name, MakeMacro(n)); return absl::OkStatus();
      case Node::Kind::kCallBlock: {
        const Node* node = &n;
        scopes_.emplace_back();
        Assign("caller", Value(Function([this, node](CallArgs&) -> absl::StatusOr<Value> {
          std::string s;
          if (auto st = Exec(node->bodies[0], &s); !st.ok()) return st;
          return Value(std::move(s));
        })));
        auto v = Eval(*n.expr);
        scopes_.pop_back();
        if (!v.ok()) return v.status();
        return Append(out, ToPyStr(*v));
      }
      case Node::Kind::kFilterBlock: {
        std::string s;
        if (auto st = Exec(n.bodies[0], &s); !st.ok()) return st;
        auto v = EvalFilter(*n.expr, Value(std::move(s)));
        if (!v.ok()) return v.status();
        return Append(out, ToPyStr(*v));
      }
      case Node::Kind::kBreak:
      case Node::Kind::kContinue:
        if (loop_depth_ == 0) return absl::InvalidArgumentError("break/continue outside a loop");
        flow_ = n.kind == Node::Kind::kBreak ? Flow::kBreak : Flow::kContinue;
        return absl::OkStatus();
      case Node::Kind::kScope: return Exec(n.bodies[0], out);
    }
    return absl::InternalError("unknown node");
  }

  absl::Status ExecSet(const Node& n) {
    Value v;
    if (n.expr) {
      auto e = Eval(*n.expr);
      if (!e.ok()) return e.status();
      v = std::move(*e);
    } else {
      std::string s;
      if (auto st = Exec(n.bodies[0], &s); !st.ok()) return st;
      v = Value(std::move(s));
    }
    const std::string& target = n.targets[0];
    if (const size_t dot = target.find('.'); dot != std::string::npos) {
      const Value ns = Lookup(target.substr(0, dot));
      if (!ns.is_dict() || !ns.dict().is_namespace) {
        return absl::InvalidArgumentError(absl::StrCat("cannot assign attribute on non-namespace object '",
                                                       target.substr(0, dot), "'"));
      }
      ns.mutable_dict().Set(target.substr(dot + 1), std::move(v));
      return absl::OkStatus();
    }
    return AssignTargets(n.targets, v);
  }

  absl::Status ExecFor(const Node& n, std::string* out) {
    auto iterable = Eval(*n.expr);
    if (!iterable.ok()) return iterable.status();
    auto items = Iterate(*iterable);
    if (!items.ok()) return items.status();
    List kept;
    if (n.cond) {
      // The loop filter sees each item bound to the loop variables.
      for (const Value& item : *items) {
        scopes_.emplace_back();
        absl::Status st = AssignTargets(n.targets, item);
        absl::StatusOr<Value> c = st.ok() ? Eval(*n.cond) : absl::StatusOr<Value>(st);
        scopes_.pop_back();
        if (!c.ok()) return c.status();
        if (c->Truthy()) kept.push_back(item);
      }
    } else {
      kept = std::move(*items);
    }
    if (kept.empty()) return Exec(n.bodies[1], out);
    const int64_t len = static_cast<int64_t>(kept.size());
    ++loop_depth_;
    for (int64_t i = 0; i < len; ++i) {
      if (auto st = Step(); !st.ok()) {
        --loop_depth_;
        return st;
      }
      Dict loop;
      loop.items = {{"index", Value(i + 1)},
                    {"index0", Value(i)},
                    {"revindex", Value(len - i)},
                    {"revindex0", Value(len - i - 1)},
                    {"first", Value(i == 0)},
                    {"last", Value(i == len - 1)},
                    {"length", Value(len)},
                    {"depth", Value(1)},
                    {"depth0", Value(0)},
                    {"previtem", i > 0 ? kept[i - 1] : Value()},
                    {"nextitem", i + 1 < len ? kept[i + 1] : Value()}};
      loop.items.emplace_back("cycle", Value(Function([i](CallArgs& a) -> absl::StatusOr<Value> {
        if (a.args.empty()) return absl::InvalidArgumentError("loop.cycle needs arguments");
        return a.args[i % a.args.size()];
      })));
      scopes_.emplace_back();
      Assign("loop", Value(std::move(loop)));
      absl::Status st = AssignTargets(n.targets, kept[i]);
      if (st.ok()) st = Exec(n.bodies[0], out);
      scopes_.pop_back();
      if (!st.ok()) {
        --loop_depth_;
        return st;
      }
      const Flow f = flow_;
      flow_ = Flow::kNormal;
      if (f == Flow::kBreak) break;
    }
    --loop_depth_;
    return absl::OkStatus();
  }

  Value MakeMacro(const Node& n) {
    const Node* node = &n;
    return Value(Function([this, node](CallArgs& a) -> absl::StatusOr<Value> {
      if (call_depth_ >= limits_.max_call_depth) {
        return absl::ResourceExhaustedError(absl::StrCat("macro recursion deeper than ", limits_.max_call_depth));
      }
      if (a.args.size() > node->params.size()) {
        return absl::InvalidArgumentError(absl::StrCat("macro '", node->name, "' takes ", node->params.size(),
                                                       " arguments, got ", a.args.size()));
      }
      Scope scope;
      for (size_t i = 0; i < node->params.size(); ++i) {
        std::optional<Value> v;
        if (i < a.args.size()) v = a.args[i];
        for (auto& [k, kv] : a.kwargs) {
          if (k == node->params[i]) v = kv;
        }
        if (!v && node->param_defaults[i]) {
          auto d = Eval(*node->param_defaults[i]);
          if (!d.ok()) return d.status();
          v = std::move(*d);
        }
        scope.emplace_back(node->params[i], v ? *v : Value());
      }
      ++call_depth_;
      scopes_.push_back(std::move(scope));
      const int saved_loop_depth = loop_depth_;
      loop_depth_ = 0;
      std::string s;
      absl::Status st = Exec(node->bodies[0], &s);
      loop_depth_ = saved_loop_depth;
      scopes_.pop_back();
      --call_depth_;
      if (!st.ok()) return st;
      return Value(std::move(s));
    }));
  }

  absl::StatusOr<CallArgs> EvalArgs(const Expr& e) {
    CallArgs args;
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

  // Applies a filter chain whose innermost input slot is empty to `input`.
  absl::StatusOr<Value> EvalFilter(const Expr& e, Value input) {
    if (e.a) {
      auto inner = EvalFilter(*e.a, std::move(input));
      if (!inner.ok()) return inner;
      input = std::move(*inner);
    }
    auto args = EvalArgs(e);
    if (!args.ok()) return args.status();
    return ApplyFilter(e.name, input, *args);
  }

  absl::StatusOr<Value> Eval(const Expr& e) {
    if (++depth_ > kMaxDepth) {
      --depth_;
      return absl::ResourceExhaustedError("template nested too deeply (recursion)");
    }
    auto v = EvalInner(e);
    --depth_;
    if (!v.ok()) return At(e.pos, v.status());
    return v;
  }

  absl::StatusOr<Value> EvalInner(const Expr& e);

  RenderLimits limits_;
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

}  // namespace

absl::StatusOr<Template> Template::Parse(const std::string& source) {
  auto p = ParseTemplate(source);
  if (!p.ok()) return p.status();
  return Template(std::shared_ptr<const Program>(std::move(*p)));
}

absl::StatusOr<std::string> Template::Render(const Dict& vars, const RenderLimits& limits) const {
  Interpreter interp(vars, limits);
  std::string out;
  if (auto st = interp.Exec(program_->body, &out); !st.ok()) return st;
  return out;
}

}  // namespace tpserve::text::jinja
