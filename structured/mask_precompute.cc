#include "structured/mask_precompute.h"

#include <algorithm>
#include <utility>

namespace tpserve::structured {

MaskPrecomputer::MaskPrecomputer(int num_threads) {
  for (int i = 0; i < std::max(num_threads, 1); ++i) threads_.emplace_back([this] { Run(); });
}

MaskPrecomputer::~MaskPrecomputer() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    queue_.clear();
  }
  for (std::thread& t : threads_) t.join();
}

void MaskPrecomputer::Submit(std::shared_ptr<const CompiledGrammar> grammar) {
  absl::MutexLock lock(&mu_);
  // The last entry takes the caller's reference, so that a thread already
  // running this grammar never counts a holder that is about to go away.
  for (size_t i = 1; i < threads_.size(); ++i) queue_.push_back(grammar);
  queue_.push_back(std::move(grammar));
}

void MaskPrecomputer::WaitIdle() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](MaskPrecomputer* p) { return p->queue_.empty() && p->running_.empty(); }, this));
}

void MaskPrecomputer::Run() {
  while (true) {
    std::shared_ptr<const CompiledGrammar> grammar;
    {
      absl::MutexLock lock(&mu_);
      mu_.Await(absl::Condition(+[](MaskPrecomputer* p) { return p->stopping_ || !p->queue_.empty(); }, this));
      if (stopping_) return;
      grammar = std::move(queue_.front());
      queue_.pop_front();
      running_.push_back(grammar.get());
    }
    // Abandoned when only the pool holds it: its queued entries and the
    // threads computing it.
    auto abandon = [&] {
      absl::MutexLock lock(&mu_);
      if (stopping_) return true;
      const long held = std::count(queue_.begin(), queue_.end(), grammar) +
                        std::count(running_.begin(), running_.end(), grammar.get());
      return grammar.use_count() <= held;
    };
    grammar->cache().PrecomputeAll(abandon);
    absl::MutexLock lock(&mu_);
    running_.erase(std::find(running_.begin(), running_.end(), grammar.get()));
    grammar.reset();
  }
}

}  // namespace tpserve::structured
