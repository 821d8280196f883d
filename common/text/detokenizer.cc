#include "common/text/detokenizer.h"

#include <algorithm>

#include "common/text/unicode.h"

namespace tpserve::text {

std::string IncrementalDetokenizer::Add(int32_t id) {
  if (skip_special_tokens_ && tokenizer_.IsSpecial(id)) return "";
  pending_ += tokenizer_.TokenBytes(id);
  const size_t n = DecodablePrefixLength(pending_);
  if (n == 0) return "";
  // No code point crosses position n (an incomplete sequence starts there), so
  // decoding the two parts separately equals decoding them together.
  std::string out = Utf8Lossy(std::string_view(pending_).substr(0, n));
  pending_.erase(0, n);
  return out;
}

std::string IncrementalDetokenizer::Flush() {
  std::string out = Utf8Lossy(pending_);
  pending_.clear();
  return out;
}

StopStringMatcher::StopStringMatcher(std::vector<std::string> stops) {
  for (size_t i = 0; i < stops.size(); ++i) {
    if (stops[i].empty()) continue;
    max_len_ = std::max(max_len_, stops[i].size());
    stops_.push_back(std::move(stops[i]));
    index_.push_back(i);
  }
}

StopStringMatcher::Result StopStringMatcher::Add(std::string_view delta) {
  Result r;
  if (stopped_) return r;
  held_.append(delta);
  // Earliest completion wins; on equal ends the longer (earlier) match.
  size_t best_end = std::string::npos, best_start = 0, best = 0;
  for (size_t i = 0; i < stops_.size(); ++i) {
    const size_t p = held_.find(stops_[i]);
    if (p == std::string::npos) continue;
    const size_t end = p + stops_[i].size();
    if (end < best_end || (end == best_end && p < best_start)) {
      best_end = end;
      best_start = p;
      best = i;
    }
  }
  if (best_end != std::string::npos) {
    r.text = held_.substr(0, best_start);
    r.stop_index = index_[best];
    stopped_ = true;
    held_.clear();
    return r;
  }
  // Hold back the longest suffix that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const std::string& s : stops_) {
    for (size_t k = std::min(s.size() - 1, held_.size()); k > hold; --k) {
      if (std::string_view(held_).substr(held_.size() - k) == std::string_view(s).substr(0, k)) {
        hold = k;
        break;
      }
    }
  }
  r.text = held_.substr(0, held_.size() - hold);
  held_.erase(0, held_.size() - hold);
  return r;
}

std::string StopStringMatcher::Flush() {
  if (stopped_) return "";
  std::string out = std::move(held_);
  held_.clear();
  return out;
}

}  // namespace tpserve::text
