#include "structured/json_number.h"

#include <algorithm>
#include <string>
#include <vector>

namespace tpserve::structured {
namespace {

// Digit strings of equal length: every string s with lo <= s <= hi.
ExprId SameLength(GrammarBuilder* b, const std::string& lo, const std::string& hi) {
  if (lo.empty()) return b->Empty();
  // Full spans keep the tree linear: without this every digit doubles it.
  if (lo.find_first_not_of('0') == std::string::npos && hi.find_first_not_of('9') == std::string::npos) {
    return b->Repeat(b->ByteRange('0', '9'), lo.size(), lo.size());
  }
  if (lo[0] == hi[0]) {
    return b->Seq({b->ByteRange(lo[0], lo[0]), SameLength(b, lo.substr(1), hi.substr(1))});
  }
  const size_t rest = lo.size() - 1;
  std::vector<ExprId> alts;
  alts.push_back(b->Seq({b->ByteRange(lo[0], lo[0]), SameLength(b, lo.substr(1), std::string(rest, '9'))}));
  if (lo[0] + 1 <= hi[0] - 1) {
    alts.push_back(b->Seq({b->ByteRange(lo[0] + 1, hi[0] - 1),
                           b->Repeat(b->ByteRange('0', '9'), rest, rest)}));
  }
  alts.push_back(b->Seq({b->ByteRange(hi[0], hi[0]), SameLength(b, std::string(rest, '0'), hi.substr(1))}));
  return b->Alt(std::move(alts));
}

// Non-negative integers in [lo, hi] (0 <= lo <= hi), by digit count.
ExprId NonNegative(GrammarBuilder* b, int64_t lo, int64_t hi) {
  std::vector<ExprId> alts;
  int64_t low_of_len = 0, high_of_len = 9;  // 1-digit numbers: 0..9
  for (int len = 1; len <= 18 && low_of_len <= hi; ++len) {
    const int64_t a = std::max(lo, low_of_len), z = std::min(hi, high_of_len);
    if (a <= z) alts.push_back(SameLength(b, std::to_string(a), std::to_string(z)));
    if (len == 18) break;  // the 19-digit bound would overflow int64_t
    low_of_len = high_of_len + 1;
    high_of_len = high_of_len * 10 + 9;
  }
  return b->Alt(std::move(alts));
}

}  // namespace

ExprId IntegerRange(GrammarBuilder* b, std::optional<int64_t> lo, std::optional<int64_t> hi) {
  const int64_t l = std::max(lo.value_or(-kMaxJsonInteger), -kMaxJsonInteger);
  const int64_t h = std::min(hi.value_or(kMaxJsonInteger), kMaxJsonInteger);
  std::vector<ExprId> alts;
  if (l < 0 && std::min(h, int64_t{-1}) >= l) {
    alts.push_back(b->Seq({b->Literal("-"), NonNegative(b, std::max<int64_t>(1, -h), -l)}));
  }
  if (h >= 0 && std::max(l, int64_t{0}) <= h) alts.push_back(NonNegative(b, std::max(l, int64_t{0}), h));
  return b->Alt(std::move(alts));
}

}  // namespace tpserve::structured
