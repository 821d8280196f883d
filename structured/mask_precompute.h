// Computes new grammars' token-mask caches on a small fixed pool of
// background threads, so that the decode step finds a node's mask ready
// instead of walking the vocabulary for it (a node's first mask costs up to
// tens of ms; a cached one ≈ 12 µs: docs/structured_output.md). The step
// never waits for the pool as a whole: MaskCache::Get computes a node nobody
// has claimed yet itself, and waits only for a node already under way.
#ifndef TPSERVE_STRUCTURED_MASK_PRECOMPUTE_H_
#define TPSERVE_STRUCTURED_MASK_PRECOMPUTE_H_

#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "structured/matcher.h"

namespace tpserve::structured {

class MaskPrecomputer {
 public:
  // Starts `num_threads` (>= 1) threads.
  explicit MaskPrecomputer(int num_threads);
  // Drops the jobs not started and stops the running ones between nodes.
  ~MaskPrecomputer();
  MaskPrecomputer(const MaskPrecomputer&) = delete;
  MaskPrecomputer& operator=(const MaskPrecomputer&) = delete;

  // Queues `grammar`'s cache, first come first served; every thread takes
  // part in it (they claim nodes one by one). A grammar nobody else holds
  // any more (evicted, its sequences finished) is abandoned.
  void Submit(std::shared_ptr<const CompiledGrammar> grammar);
  // Blocks until the queue is empty and no thread is working (tests,
  // benchmarks).
  void WaitIdle();

 private:
  void Run();

  absl::Mutex mu_;
  // One entry per thread per grammar, so that all threads share each one.
  std::deque<std::shared_ptr<const CompiledGrammar>> queue_;  // guarded by mu_
  std::vector<const CompiledGrammar*> running_;               // guarded by mu_
  bool stopping_ = false;                                     // guarded by mu_
  std::vector<std::thread> threads_;
};

}  // namespace tpserve::structured

#endif  // TPSERVE_STRUCTURED_MASK_PRECOMPUTE_H_
