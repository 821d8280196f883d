// Statements of the tree-walking evaluator (see jinja_interp.h).
#include "common/text/jinja_interp.h"

#include <optional>
#include <unordered_set>
#include <vector>

#include "common/text/unicode.h"

namespace tpserve::text::jinja {
namespace internal {
namespace {

// True if `v` is, or holds at any depth, the dict `target`. Values share
// their lists and dicts, so `{% set ns.x = ns %}` (or a list holding ns)
// would make a namespace hold itself: a cycle that Repr/tojson recurse into
// forever and that reference counting never frees. Iterative, each shared
// container visited once.
bool Reaches(const Value& v, const Dict* target) {
  std::vector<const Value*> todo = {&v};
  std::unordered_set<const void*> seen;
  while (!todo.empty()) {
    const Value* x = todo.back();
    todo.pop_back();
    if (x->is_dict()) {
      if (&x->dict() == target) return true;
      if (!seen.insert(&x->dict()).second) continue;
      for (const auto& item : x->dict().items) todo.push_back(&item.second);
    } else if (x->is_list()) {
      if (!seen.insert(&x->list()).second) continue;
      for (const Value& item : x->list()) todo.push_back(&item);
    }
  }
  return false;
}

}  // namespace

absl::Status Interpreter::Exec(const NodeList& body, std::string* out) {
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

absl::Status Interpreter::AssignTargets(const std::vector<std::string>& targets, const Value& v) {
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

absl::Status Interpreter::ExecNode(const Node& n, std::string* out) {
  if (auto st = Step(); !st.ok()) return st;
  switch (n.kind) {
    case Node::Kind::kText: return Append(out, n.text);
    case Node::Kind::kOutput: {
      auto v = Eval(*n.expr);
      if (!v.ok()) return v.status();
      return AppendPrinted(out, *v);
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
      return AppendPrinted(out, *v);
    }
    case Node::Kind::kFilterBlock: {
      std::string s;
      if (auto st = Exec(n.bodies[0], &s); !st.ok()) return st;
      auto v = EvalFilter(*n.expr, Value(std::move(s)));
      if (!v.ok()) return v.status();
      return AppendPrinted(out, *v);
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

absl::Status Interpreter::ExecSet(const Node& n) {
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
    if (Reaches(v, &ns.dict())) {
      return absl::InvalidArgumentError(absl::StrCat("cannot assign namespace '", target.substr(0, dot),
                                                     "' (or a value holding it) to its own attribute"));
    }
    ns.mutable_dict().Set(target.substr(dot + 1), std::move(v));
    return absl::OkStatus();
  }
  return AssignTargets(n.targets, v);
}

absl::Status Interpreter::ExecFor(const Node& n, std::string* out) {
  auto iterable = Eval(*n.expr);
  if (!iterable.ok()) return iterable.status();
  auto items = Iterate(*iterable, budget_);
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

Value Interpreter::MakeMacro(const Node& n) {
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

}  // namespace internal

absl::StatusOr<Template> Template::Parse(const std::string& source) {
  // The string operations decode UTF-8 and trust it (the variables come from
  // parsed JSON, which is valid); the source is checked here, once.
  if (!IsValidUtf8(source)) return absl::InvalidArgumentError("template is not valid UTF-8");
  auto p = ParseTemplate(source);
  if (!p.ok()) return p.status();
  return Template(std::shared_ptr<const Program>(std::move(*p)));
}

absl::StatusOr<std::string> Template::Render(const Dict& vars, const RenderLimits& limits) const {
  internal::Interpreter interp(vars, limits);
  std::string out;
  if (auto st = interp.Exec(program_->body, &out); !st.ok()) return st;
  return out;
}

}  // namespace tpserve::text::jinja
