// A bounded word -> ids cache for BPE (most words repeat). Each thread has
// its own map, so lookups take no lock; the map belongs to one cache
// instance at a time (a thread switching tokenizers starts it afresh).
#ifndef TPSERVE_COMMON_TEXT_BPE_CACHE_H_
#define TPSERVE_COMMON_TEXT_BPE_CACHE_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"

namespace tpserve::text {

class BpeCache {
 public:
  static constexpr size_t kMaxEntries = 1 << 16;  // per thread; cleared when full
  static constexpr size_t kMaxWordBytes = 64;

  BpeCache() : id_(NextId()) {}

  // Appends the cached ids of `word` to `out` and returns true on a hit.
  bool Lookup(std::string_view word, std::vector<int32_t>* out) const {
    if (word.size() > kMaxWordBytes) return false;
    const Map& m = Local();
    auto it = m.find(absl::string_view(word.data(), word.size()));
    if (it == m.end()) return false;
    out->insert(out->end(), it->second.begin(), it->second.end());
    return true;
  }

  // Remembers the ids of `word`.
  void Insert(std::string_view word, const int32_t* ids, size_t n) const {
    if (word.size() > kMaxWordBytes) return;
    Map& m = Local();
    if (m.size() >= kMaxEntries) m.clear();
    m.try_emplace(std::string(word), ids, ids + n);
  }

 private:
  using Map = absl::flat_hash_map<std::string, std::vector<int32_t>>;
  struct ThreadState {
    uint64_t owner = 0;
    Map map;
  };

  // Ids are never reused, so a new cache at a dead one's address cannot see
  // stale entries.
  static uint64_t NextId() {
    static std::atomic<uint64_t> next{1};
    return next.fetch_add(1);
  }

  Map& Local() const {
    thread_local ThreadState state;
    if (state.owner != id_) {
      state.map.clear();
      state.owner = id_;
    }
    return state.map;
  }

  uint64_t id_;
};

}  // namespace tpserve::text

#endif  // TPSERVE_COMMON_TEXT_BPE_CACHE_H_
