#include "worker/backend/bad_words.h"

#include <algorithm>

namespace tpserve::worker {

void BannedTokenIds(std::span<const std::vector<int32_t>> bad_words, std::span<const int32_t> output,
                    std::vector<int32_t>* banned) {
  banned->clear();
  for (const std::vector<int32_t>& word : bad_words) {
    if (word.empty()) continue;
    const size_t prefix = word.size() - 1;
    if (prefix > output.size()) continue;  // not enough tokens yet to end with the prefix
    if (std::equal(word.begin(), word.begin() + prefix, output.end() - prefix)) {
      banned->push_back(word.back());
    }
  }
  std::sort(banned->begin(), banned->end());
  banned->erase(std::unique(banned->begin(), banned->end()), banned->end());
}

bool BanInMask(std::span<uint32_t> words, int vocab, std::span<const int32_t> banned) {
  if (banned.empty()) return true;
  const int64_t bits = std::min<int64_t>(vocab, static_cast<int64_t>(words.size()) * 32);
  // The bits this clears, to put back if nothing would be left.
  std::vector<int32_t> cleared;
  for (int32_t t : banned) {
    if (t < 0 || t >= bits) continue;
    const uint32_t bit = 1u << (t & 31);
    if (words[t >> 5] & bit) {
      words[t >> 5] &= ~bit;
      cleared.push_back(t);
    }
  }
  if (cleared.empty()) return true;
  const int64_t full = bits / 32;
  if (std::any_of(words.begin(), words.begin() + full, [](uint32_t w) { return w != 0; })) return true;
  if (bits % 32 != 0 && (words[full] & ((1u << (bits % 32)) - 1)) != 0) return true;
  for (int32_t t : cleared) words[t >> 5] |= 1u << (t & 31);
  return false;
}

}  // namespace tpserve::worker
