// Integer ranges as digit grammars: every integer in [lo, hi] in canonical
// JSON form (no leading zeros, no "-0"), and nothing else.
#ifndef TPSERVE_STRUCTURED_JSON_NUMBER_H_
#define TPSERVE_STRUCTURED_JSON_NUMBER_H_

#include <cstdint>
#include <optional>

#include "structured/expr.h"

namespace tpserve::structured {

// Magnitudes are capped at 18 digits so an unbounded number cannot run on
// forever; bounds beyond that are clamped to it.
inline constexpr int64_t kMaxJsonInteger = 999999999999999999;

// The integers in [lo, hi]; an absent bound means ±kMaxJsonInteger. Returns
// an empty alternation (matches nothing) when the range is empty.
ExprId IntegerRange(GrammarBuilder* b, std::optional<int64_t> lo, std::optional<int64_t> hi);

}  // namespace tpserve::structured

#endif  // TPSERVE_STRUCTURED_JSON_NUMBER_H_
