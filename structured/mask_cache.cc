#include "structured/mask_cache.h"

#include "structured/stepper.h"
#include "structured/token_walker.h"

namespace tpserve::structured {

MaskCache::MaskCache(const Grammar& grammar, const TokenVocabulary& vocab)
    : grammar_(grammar),
      vocab_(vocab),
      ready_(grammar.num_nodes()),
      claimed_(grammar.num_nodes()),
      owned_(grammar.num_nodes()) {
  for (auto& r : ready_) r.store(nullptr, std::memory_order_relaxed);
  for (auto& c : claimed_) c.store(false, std::memory_order_relaxed);
}

bool MaskCache::TryCompute(NodeId n) {
  if (claimed_[n].exchange(true, std::memory_order_acq_rel)) return false;
  // Computed without the lock: another thread may compute (or wait for)
  // another node meanwhile.
  owned_[n] = std::make_unique<NodeMask>(Compute(n));
  absl::MutexLock lock(&mu_);
  ready_[n].store(owned_[n].get(), std::memory_order_release);
  computed_.fetch_add(1, std::memory_order_relaxed);
  return true;
}

const NodeMask& MaskCache::Get(NodeId n) {
  if (const NodeMask* m = ready_[n].load(std::memory_order_acquire)) return *m;
  if (!TryCompute(n)) {
    // Another thread (the background precompute, or another step) is
    // computing it: waiting costs less than walking the vocabulary again.
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](std::atomic<const NodeMask*>* r) { return r->load(std::memory_order_acquire) != nullptr; },
        &ready_[n]));
  }
  return *ready_[n].load(std::memory_order_acquire);
}

void MaskCache::PrecomputeAll(const std::function<bool()>& stop) {
  for (NodeId n = 0; n < grammar_.num_nodes(); ++n) {
    if (stop && stop()) return;
    if (grammar_.has_byte_edges(n) && ready_[n].load(std::memory_order_acquire) == nullptr) TryCompute(n);
  }
}

NodeMask MaskCache::Compute(NodeId n) const {
  StackArena arena;  // the node's own frame is the bottom: no caller
  TokenWalker walker(grammar_, vocab_, &arena);
  // Only tokens whose first byte the node accepts: the rest are rejected
  // without a walk (most nodes accept a handful of bytes).
  std::vector<int32_t> all;
  for (const auto* e = grammar_.edges_begin(n); e != grammar_.edges_end(n); ++e) {
    for (int32_t pos = vocab_.first_byte_begin(e->lo); pos < vocab_.first_byte_begin(e->hi + 1); ++pos) {
      all.push_back(pos);
    }
  }
  NodeMask mask;
  std::vector<int32_t> accepted;
  walker.Walk({n, StackArena::kBottom}, all.data(), all.size(), [&](int32_t pos, TokenClass c) {
    if (c == TokenClass::kAccept) accepted.push_back(vocab_.sorted()[pos]);
    if (c == TokenClass::kUncertain) mask.uncertain.push_back(pos);
  });
  // A list costs 4 bytes a token, a bitmask 1 bit a vocabulary entry.
  if (accepted.size() * 32 > static_cast<size_t>(vocab_.size())) {
    mask.accept_bits.assign(vocab_.mask_words(), 0);
    for (int32_t id : accepted) mask.accept_bits[id >> 5] |= 1u << (id & 31);
  } else {
    mask.accept_ids = std::move(accepted);
  }
  return mask;
}

}  // namespace tpserve::structured
