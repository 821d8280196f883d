// A compiled grammar: one byte-level DFA per rule whose states may also call
// other rules (a recursive transition network), the form the matcher runs.
#ifndef TPSERVE_STRUCTURED_GRAMMAR_H_
#define TPSERVE_STRUCTURED_GRAMMAR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "structured/expr.h"

namespace tpserve::structured {

using NodeId = int32_t;

class Grammar {
 public:
  // Bytes lo..hi move to `target` (a node of the same rule).
  struct ByteEdge {
    uint8_t lo;
    uint8_t hi;
    NodeId target;
  };
  // Runs `rule` from its start node, then continues at `ret`.
  struct CallEdge {
    RuleId rule;
    NodeId ret;
  };
  struct Node {
    RuleId rule = 0;
    bool final = false;  // the rule may end here
    int32_t edges_begin = 0, edges_end = 0;
    int32_t calls_begin = 0, calls_end = 0;
  };

  int num_nodes() const { return static_cast<int>(nodes_.size()); }
  int num_rules() const { return static_cast<int>(rule_start_.size()); }
  const Node& node(NodeId n) const { return nodes_[n]; }
  NodeId rule_start(RuleId r) const { return rule_start_[r]; }
  const std::string& rule_name(RuleId r) const { return rule_names_[r]; }
  bool has_byte_edges(NodeId n) const { return nodes_[n].edges_begin < nodes_[n].edges_end; }

  // The node byte `b` leads to from `n`, or -1. Rules are deterministic over
  // bytes, so there is at most one.
  NodeId Next(NodeId n, uint8_t b) const {
    const Node& node = nodes_[n];
    for (int32_t i = node.edges_begin; i < node.edges_end; ++i) {
      if (b < edges_[i].lo) return -1;  // edges are sorted by byte
      if (b <= edges_[i].hi) return edges_[i].target;
    }
    return -1;
  }
  const CallEdge* calls_begin(NodeId n) const { return calls_.data() + nodes_[n].calls_begin; }
  const CallEdge* calls_end(NodeId n) const { return calls_.data() + nodes_[n].calls_end; }
  const ByteEdge* edges_begin(NodeId n) const { return edges_.data() + nodes_[n].edges_begin; }
  const ByteEdge* edges_end(NodeId n) const { return edges_.data() + nodes_[n].edges_end; }

  // A readable dump (one line per node), for tests and debugging.
  std::string DebugString() const;

 private:
  friend class GrammarCompiler;
  std::vector<Node> nodes_;
  std::vector<ByteEdge> edges_;
  std::vector<CallEdge> calls_;
  std::vector<NodeId> rule_start_;
  std::vector<std::string> rule_names_;
};

struct GrammarLimits {
  // Bounds the automaton (large maxLength/maxItems unroll into many states).
  int max_nodes = 200000;
};

// Compiles every rule of `builder` (determinized per rule). Fails with
// InvalidArgument for left-recursive rules or a grammar over the limits.
absl::StatusOr<Grammar> CompileGrammar(const GrammarBuilder& builder,
                                       const GrammarLimits& limits = {});

}  // namespace tpserve::structured

#endif  // TPSERVE_STRUCTURED_GRAMMAR_H_
