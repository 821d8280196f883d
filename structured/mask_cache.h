// The part of a token mask that does not depend on the matcher's state, per
// grammar node (as xgrammar's adaptive token-mask cache): from a node alone,
// each token is accepted, rejected, or uncertain (it ends the node's rule
// mid-token, so only the caller's stack can tell). Computed once per node and
// shared by every matcher of the grammar: ahead of time by a background
// precompute (MaskPrecomputer), or on first use by the step that needs it.
// Each node is claimed by one thread, so a step and the precompute never
// compute the same node twice and never wait on each other's other nodes.
#ifndef TPSERVE_STRUCTURED_MASK_CACHE_H_
#define TPSERVE_STRUCTURED_MASK_CACHE_H_

#include <atomic>
#include <cstdint>
#include <functional>
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

  // The mask of node `n` (which must have byte edges): computed now if no
  // thread has claimed it, else waited for (its computation is under way).
  // Thread-safe.
  const NodeMask& Get(NodeId n);
  // Computes every node no thread has claimed yet; several threads may run
  // it at once and share the work. Stops early once `stop` (if set) says so.
  void PrecomputeAll(const std::function<bool()>& stop = nullptr);
  // Nodes computed so far.
  int num_computed() const { return computed_.load(std::memory_order_relaxed); }

 private:
  // Computes and publishes node `n` if this thread claims it; false if
  // another thread had claimed it.
  bool TryCompute(NodeId n);
  NodeMask Compute(NodeId n) const;

  const Grammar& grammar_;
  const TokenVocabulary& vocab_;
  std::vector<std::atomic<const NodeMask*>> ready_;
  std::vector<std::atomic<bool>> claimed_;
  // owned_[n] is written once, by the thread that claimed n; mu_ only makes
  // waiters in Get wake when a node is published.
  std::vector<std::unique_ptr<NodeMask>> owned_;
  absl::Mutex mu_;
  std::atomic<int> computed_{0};
};

}  // namespace tpserve::structured

#endif  // TPSERVE_STRUCTURED_MASK_CACHE_H_
