// The part of a token mask that does not depend on the matcher's state, per
// grammar node (as xgrammar's adaptive token-mask cache): from a node alone,
// each token is accepted, rejected, or uncertain (it ends the node's rule
// mid-token, so only the caller's stack can tell). Computed lazily, once per
// node, and shared by every matcher of the grammar.
#ifndef TPSERVE_STRUCTURED_MASK_CACHE_H_
#define TPSERVE_STRUCTURED_MASK_CACHE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "structured/grammar.h"
#include "structured/vocabulary.h"

namespace tpserve::structured {

struct NodeMask {
  // Accepted tokens: a bitmask when many, else a list of ids.
  std::vector<uint32_t> accept_bits;
  std::vector<int32_t> accept_ids;
  // Positions in vocab.sorted() of the uncertain tokens, ascending.
  std::vector<int32_t> uncertain;
};

class MaskCache {
 public:
  MaskCache(const Grammar& grammar, const TokenVocabulary& vocab);

  // The mask of node `n` (which must have byte edges). Thread-safe.
  const NodeMask& Get(NodeId n);
  // Computes every node's mask now (so no step pays for it later).
  void PrecomputeAll();
  // Nodes computed so far.
  int num_computed() const { return computed_.load(std::memory_order_relaxed); }

 private:
  NodeMask Compute(NodeId n) const;

  const Grammar& grammar_;
  const TokenVocabulary& vocab_;
  std::vector<std::atomic<const NodeMask*>> ready_;
  absl::Mutex mu_;
  std::vector<std::unique_ptr<NodeMask>> owned_;  // guarded by mu_
  std::atomic<int> computed_{0};
};

}  // namespace tpserve::structured

#endif  // TPSERVE_STRUCTURED_MASK_CACHE_H_
