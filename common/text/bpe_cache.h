// A bounded, lock-striped word -> ids cache for BPE (most words repeat).
#ifndef TPSERVE_COMMON_TEXT_BPE_CACHE_H_
#define TPSERVE_COMMON_TEXT_BPE_CACHE_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace tpserve::text {

// Striped so concurrent gateway threads rarely contend; each stripe is
// cleared when full, which bounds memory without LRU bookkeeping.
class BpeCache {
 public:
  static constexpr size_t kStripes = 16;
  static constexpr size_t kMaxEntriesPerStripe = 4096;
  static constexpr size_t kMaxWordBytes = 64;

  // Appends the cached ids of `word` to `out` and returns true on a hit.
  bool Lookup(std::string_view word, std::vector<int32_t>* out) const {
    if (word.size() > kMaxWordBytes) return false;
    const absl::string_view key(word.data(), word.size());
    Stripe& s = stripes_[absl::Hash<absl::string_view>()(key) % kStripes];
    absl::MutexLock lock(&s.mu);
    auto it = s.map.find(key);
    if (it == s.map.end()) return false;
    out->insert(out->end(), it->second.begin(), it->second.end());
    return true;
  }

  // Remembers the ids of `word`.
  void Insert(std::string_view word, const int32_t* ids, size_t n) const {
    if (word.size() > kMaxWordBytes) return;
    const absl::string_view key(word.data(), word.size());
    Stripe& s = stripes_[absl::Hash<absl::string_view>()(key) % kStripes];
    absl::MutexLock lock(&s.mu);
    if (s.map.size() >= kMaxEntriesPerStripe) s.map.clear();
    s.map.try_emplace(std::string(word), ids, ids + n);
  }

 private:
  struct Stripe {
    absl::Mutex mu;
    absl::flat_hash_map<std::string, std::vector<int32_t>> map ABSL_GUARDED_BY(mu);
  };
  mutable std::array<Stripe, kStripes> stripes_;
};

}  // namespace tpserve::text

#endif  // TPSERVE_COMMON_TEXT_BPE_CACHE_H_
