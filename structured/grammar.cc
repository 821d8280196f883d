#include "structured/grammar.h"

#include <algorithm>
#include <map>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace tpserve::structured {

// Thompson-constructs each rule into an epsilon-NFA, then determinizes its
// bytes by subset construction. Call edges stay nondeterministic: the matcher
// follows every call a state offers.
class GrammarCompiler {
 public:
  GrammarCompiler(const GrammarBuilder& b, const GrammarLimits& limits)
      : b_(b), limits_(limits) {}

  absl::StatusOr<Grammar> Run() {
    g_.rule_start_.assign(b_.num_rules(), -1);
    for (RuleId r = 0; r < b_.num_rules(); ++r) {
      g_.rule_names_.push_back(b_.rule_name(r));
      if (b_.rule_body(r) < 0) {
        return absl::InternalError(absl::StrCat("grammar rule '", b_.rule_name(r), "' has no body"));
      }
    }
    for (RuleId r = 0; r < b_.num_rules(); ++r) {
      const NodeId first = static_cast<NodeId>(g_.nodes_.size());
      const int32_t edge_first = static_cast<int32_t>(g_.edges_.size());
      const int32_t call_first = static_cast<int32_t>(g_.calls_.size());
      TP_RETURN_IF_ERROR(CompileRule(r));
      Minimize(r, first, edge_first, call_first);
    }
    TP_RETURN_IF_ERROR(CheckLeftRecursion());
    return std::move(g_);
  }

 private:
  struct NfaState {
    std::vector<int> eps;
    std::vector<std::pair<ExprId, int>> bytes;  // (kBytes expr, target)
    std::vector<std::pair<RuleId, int>> calls;  // (rule, target)
  };

  int NewState() {
    nfa_.emplace_back();
    return static_cast<int>(nfa_.size() - 1);
  }

  // Builds `e` between fresh states; returns {start, end}.
  absl::StatusOr<std::pair<int, int>> Build(ExprId id) {
    if (nfa_.size() > static_cast<size_t>(limits_.max_nodes) * 4) return TooLarge();
    const Expr& e = b_.expr(id);
    const int s = NewState();
    int t;
    switch (e.kind) {
      case Expr::Kind::kEmpty:
        t = NewState();
        nfa_[s].eps.push_back(t);
        break;
      case Expr::Kind::kBytes:
        t = NewState();
        nfa_[s].bytes.push_back({id, t});
        break;
      case Expr::Kind::kRef:
        t = NewState();
        nfa_[s].calls.push_back({e.rule, t});
        break;
      case Expr::Kind::kSeq: {
        int cur = s;
        for (ExprId c : e.children) {
          TP_ASSIGN_OR_RETURN(auto f, Build(c));
          nfa_[cur].eps.push_back(f.first);
          cur = f.second;
        }
        t = cur;
        break;
      }
      case Expr::Kind::kAlt:
        t = NewState();
        for (ExprId c : e.children) {
          TP_ASSIGN_OR_RETURN(auto f, Build(c));
          nfa_[s].eps.push_back(f.first);
          nfa_[f.second].eps.push_back(t);
        }
        break;
      case Expr::Kind::kRepeat: {
        int cur = s;
        for (int i = 0; i < e.min; ++i) {
          TP_ASSIGN_OR_RETURN(auto f, Build(e.children[0]));
          nfa_[cur].eps.push_back(f.first);
          cur = f.second;
        }
        t = NewState();
        if (e.max == GrammarBuilder::kUnbounded) {
          TP_ASSIGN_OR_RETURN(auto f, Build(e.children[0]));
          nfa_[cur].eps.push_back(f.first);
          nfa_[f.second].eps.push_back(cur);
          nfa_[cur].eps.push_back(t);
        } else {
          for (int i = e.min; i < e.max; ++i) {
            nfa_[cur].eps.push_back(t);
            TP_ASSIGN_OR_RETURN(auto f, Build(e.children[0]));
            nfa_[cur].eps.push_back(f.first);
            cur = f.second;
          }
          nfa_[cur].eps.push_back(t);
        }
        break;
      }
    }
    return std::make_pair(s, t);
  }

  std::vector<int> Closure(std::vector<int> set) const {
    std::vector<int> stack = set;
    std::vector<char> seen(nfa_.size(), 0);
    for (int s : set) seen[s] = 1;
    while (!stack.empty()) {
      int s = stack.back();
      stack.pop_back();
      for (int t : nfa_[s].eps) {
        if (!seen[t]) {
          seen[t] = 1;
          set.push_back(t);
          stack.push_back(t);
        }
      }
    }
    std::sort(set.begin(), set.end());
    return set;
  }

  absl::Status TooLarge() const {
    return absl::InvalidArgumentError(absl::StrCat(
        "grammar too large (over ", limits_.max_nodes,
        " automaton states); lower maxLength/maxItems/{m,n} bounds"));
  }

  absl::Status CompileRule(RuleId r) {
    nfa_.clear();
    TP_ASSIGN_OR_RETURN(auto frag, Build(b_.rule_body(r)));
    const int end = frag.second;
    std::map<std::vector<int>, NodeId> ids;
    std::vector<std::vector<int>> pending;
    auto intern = [&](std::vector<int> set) -> NodeId {
      auto it = ids.find(set);
      if (it != ids.end()) return it->second;
      const NodeId id = static_cast<NodeId>(g_.nodes_.size());
      g_.nodes_.emplace_back();
      g_.nodes_.back().rule = r;
      ids.emplace(set, id);
      pending.push_back(std::move(set));
      return id;
    };
    g_.rule_start_[r] = intern(Closure({frag.first}));
    // Node contents are filled in creation order so edges stay contiguous.
    for (size_t next = 0; next < pending.size(); ++next) {
      if (g_.nodes_.size() > static_cast<size_t>(limits_.max_nodes)) return TooLarge();
      const std::vector<int> set = pending[next];
      const NodeId id = ids[set];
      std::vector<Grammar::CallEdge> calls;
      std::vector<NodeId> by_byte(256, -1);
      std::vector<std::vector<int>> targets(256);
      bool final = false;
      for (int s : set) {
        if (s == end) final = true;
        for (auto [rule, t] : nfa_[s].calls) calls.push_back({rule, intern(Closure({t}))});
        for (auto [expr, t] : nfa_[s].bytes) {
          const ByteSet& bytes = b_.expr(expr).bytes;
          for (int c = 0; c < 256; ++c) {
            if (bytes.test(c)) targets[c].push_back(t);
          }
        }
      }
      std::map<std::vector<int>, NodeId> by_targets;  // bytes with equal targets share a closure
      for (int c = 0; c < 256; ++c) {
        if (targets[c].empty()) continue;
        std::sort(targets[c].begin(), targets[c].end());
        targets[c].erase(std::unique(targets[c].begin(), targets[c].end()), targets[c].end());
        auto it = by_targets.find(targets[c]);
        if (it == by_targets.end()) {
          it = by_targets.emplace(targets[c], intern(Closure(targets[c]))).first;
        }
        by_byte[c] = it->second;
      }
      std::sort(calls.begin(), calls.end(), [](const auto& a, const auto& b) {
        return std::tie(a.rule, a.ret) < std::tie(b.rule, b.ret);
      });
      calls.erase(std::unique(calls.begin(), calls.end(),
                              [](const auto& a, const auto& b) {
                                return a.rule == b.rule && a.ret == b.ret;
                              }),
                  calls.end());
      Grammar::Node& node = g_.nodes_[id];
      node.final = final;
      node.edges_begin = static_cast<int32_t>(g_.edges_.size());
      for (int c = 0; c < 256;) {
        if (by_byte[c] < 0) {
          ++c;
          continue;
        }
        int hi = c;
        while (hi + 1 < 256 && by_byte[hi + 1] == by_byte[c]) ++hi;
        g_.edges_.push_back({static_cast<uint8_t>(c), static_cast<uint8_t>(hi), by_byte[c]});
        c = hi + 1;
      }
      node.edges_end = static_cast<int32_t>(g_.edges_.size());
      node.calls_begin = static_cast<int32_t>(g_.calls_.size());
      g_.calls_.insert(g_.calls_.end(), calls.begin(), calls.end());
      node.calls_end = static_cast<int32_t>(g_.calls_.size());
    }
    return absl::OkStatus();
  }

  // Rule r's edges from `node` with targets mapped through `cls` (indices
  // relative to `first`) and ranges merged: the canonical form of its moves.
  static void MappedEdges(const Grammar::ByteEdge* begin, const Grammar::ByteEdge* end, NodeId first,
                          const std::vector<int>& cls, std::vector<Grammar::ByteEdge>* out) {
    out->clear();
    for (const auto* e = begin; e != end; ++e) {
      const NodeId t = cls[e->target - first];
      if (!out->empty() && out->back().target == t && out->back().hi + 1 == e->lo) {
        out->back().hi = e->hi;
      } else {
        out->push_back({e->lo, e->hi, t});
      }
    }
  }

  // Merges the equivalent nodes of rule r (the tail of g_ from `first`) by
  // Moore's partition refinement: unrolled repeats and escapes otherwise
  // leave many copies of one state, and each would need its own token mask.
  void Minimize(RuleId r, NodeId first, int32_t edge_first, int32_t call_first) {
    const int n = static_cast<int>(g_.nodes_.size()) - first;
    std::vector<int> cls(n);
    for (int i = 0; i < n; ++i) cls[i] = g_.nodes_[first + i].final ? 1 : 0;
    std::vector<Grammar::ByteEdge> edges;
    for (size_t num = 0;;) {
      std::map<std::vector<int>, int> ids;
      std::vector<int> next(n);
      for (int i = 0; i < n; ++i) {
        const NodeId id = first + i;
        std::vector<int> sig = {cls[i]};
        MappedEdges(g_.edges_begin(id), g_.edges_end(id), first, cls, &edges);
        for (const auto& e : edges) sig.insert(sig.end(), {e.lo, e.hi, e.target});
        sig.push_back(-1);
        std::vector<std::pair<int, int>> calls;
        for (const auto* c = g_.calls_begin(id); c != g_.calls_end(id); ++c) {
          calls.push_back({c->rule, cls[c->ret - first]});
        }
        std::sort(calls.begin(), calls.end());
        calls.erase(std::unique(calls.begin(), calls.end()), calls.end());
        for (auto [rule, ret] : calls) sig.insert(sig.end(), {rule, ret});
        next[i] = ids.emplace(std::move(sig), static_cast<int>(ids.size())).first->second;
      }
      cls = std::move(next);
      if (ids.size() == num) break;  // refinement only splits: same count, same partition
      num = ids.size();
    }
    const int classes = *std::max_element(cls.begin(), cls.end()) + 1;
    if (classes == n) return;
    std::vector<Grammar::Node> old_nodes(g_.nodes_.begin() + first, g_.nodes_.end());
    std::vector<Grammar::ByteEdge> old_edges(g_.edges_.begin() + edge_first, g_.edges_.end());
    std::vector<Grammar::CallEdge> old_calls(g_.calls_.begin() + call_first, g_.calls_.end());
    std::vector<int> rep(classes, -1);
    for (int i = 0; i < n; ++i) {
      if (rep[cls[i]] < 0) rep[cls[i]] = i;
    }
    std::vector<int> to_node(n);  // class ids as node ids
    for (int i = 0; i < n; ++i) to_node[i] = first + cls[i];
    g_.nodes_.resize(first);
    g_.edges_.resize(edge_first);
    g_.calls_.resize(call_first);
    for (int c = 0; c < classes; ++c) {
      const Grammar::Node& o = old_nodes[rep[c]];
      Grammar::Node node;
      node.rule = r;
      node.final = o.final;
      MappedEdges(old_edges.data() + (o.edges_begin - edge_first), old_edges.data() + (o.edges_end - edge_first),
                  first, to_node, &edges);
      node.edges_begin = static_cast<int32_t>(g_.edges_.size());
      g_.edges_.insert(g_.edges_.end(), edges.begin(), edges.end());
      node.edges_end = static_cast<int32_t>(g_.edges_.size());
      std::vector<Grammar::CallEdge> calls;
      for (int32_t k = o.calls_begin; k < o.calls_end; ++k) {
        const Grammar::CallEdge& call = old_calls[k - call_first];
        calls.push_back({call.rule, to_node[call.ret - first]});
      }
      std::sort(calls.begin(), calls.end(),
                [](const auto& a, const auto& b) { return std::tie(a.rule, a.ret) < std::tie(b.rule, b.ret); });
      calls.erase(std::unique(calls.begin(), calls.end(),
                              [](const auto& a, const auto& b) { return a.rule == b.rule && a.ret == b.ret; }),
                  calls.end());
      node.calls_begin = static_cast<int32_t>(g_.calls_.size());
      g_.calls_.insert(g_.calls_.end(), calls.begin(), calls.end());
      node.calls_end = static_cast<int32_t>(g_.calls_.size());
      g_.nodes_.push_back(node);
    }
    g_.rule_start_[r] = to_node[g_.rule_start_[r] - first];
  }

  // The nodes of rule r reachable without consuming a byte (through calls of
  // nullable rules), and the rules called from them.
  void ZeroByteWalk(RuleId r, const std::vector<char>& nullable, bool* reaches_final,
                    std::vector<RuleId>* called) const {
    std::vector<NodeId> stack = {g_.rule_start_[r]};
    std::vector<char> seen(g_.nodes_.size(), 0);
    seen[stack[0]] = 1;
    *reaches_final = false;
    while (!stack.empty()) {
      NodeId n = stack.back();
      stack.pop_back();
      if (g_.nodes_[n].final) *reaches_final = true;
      for (const auto* c = g_.calls_begin(n); c != g_.calls_end(n); ++c) {
        if (called) called->push_back(c->rule);
        if (nullable[c->rule] && !seen[c->ret]) {
          seen[c->ret] = 1;
          stack.push_back(c->ret);
        }
      }
    }
  }

  absl::Status CheckLeftRecursion() const {
    const int n = g_.num_rules();
    std::vector<char> nullable(n, 0);
    for (bool changed = true; changed;) {
      changed = false;
      for (RuleId r = 0; r < n; ++r) {
        bool fin;
        if (!nullable[r] && (ZeroByteWalk(r, nullable, &fin, nullptr), fin)) {
          nullable[r] = 1;
          changed = true;
        }
      }
    }
    std::vector<std::vector<RuleId>> left(n);
    for (RuleId r = 0; r < n; ++r) {
      bool fin;
      ZeroByteWalk(r, nullable, &fin, &left[r]);
    }
    // Depth-first search for a cycle in "calls before consuming a byte".
    std::vector<char> color(n, 0);
    std::vector<std::pair<RuleId, size_t>> stack;
    for (RuleId root = 0; root < n; ++root) {
      if (color[root]) continue;
      stack.push_back({root, 0});
      color[root] = 1;
      while (!stack.empty()) {
        auto& [r, i] = stack.back();
        if (i == left[r].size()) {
          color[r] = 2;
          stack.pop_back();
          continue;
        }
        RuleId next = left[r][i++];
        if (color[next] == 1) {
          return absl::InvalidArgumentError(
              absl::StrCat("grammar rule '", g_.rule_names_[next], "' is left-recursive"));
        }
        if (color[next] == 0) {
          color[next] = 1;
          stack.push_back({next, 0});
        }
      }
    }
    return absl::OkStatus();
  }

  const GrammarBuilder& b_;
  const GrammarLimits limits_;
  std::vector<NfaState> nfa_;
  Grammar g_;
};

absl::StatusOr<Grammar> CompileGrammar(const GrammarBuilder& builder,
                                       const GrammarLimits& limits) {
  return GrammarCompiler(builder, limits).Run();
}

std::string Grammar::DebugString() const {
  std::string out;
  for (NodeId n = 0; n < num_nodes(); ++n) {
    const Node& node = nodes_[n];
    absl::StrAppend(&out, n, " [", rule_names_[node.rule], "]", node.final ? " final" : "");
    for (const auto* e = edges_begin(n); e != edges_end(n); ++e) {
      absl::StrAppend(&out, absl::StrFormat(" %02x-%02x->%d", e->lo, e->hi, e->target));
    }
    for (const auto* c = calls_begin(n); c != calls_end(n); ++c) {
      absl::StrAppend(&out, " call ", rule_names_[c->rule], "->", c->ret);
    }
    out += "\n";
  }
  return out;
}

}  // namespace tpserve::structured
