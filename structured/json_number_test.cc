#include "structured/json_number.h"

#include <gtest/gtest.h>

#include <string>

#include "structured/grammar.h"
#include "structured/testing.h"

namespace tpserve::structured {
namespace {

using testing::Matches;

Grammar RangeGrammar(std::optional<int64_t> lo, std::optional<int64_t> hi) {
  GrammarBuilder b;
  b.SetRule(b.root(), IntegerRange(&b, lo, hi));
  auto g = CompileGrammar(b);
  EXPECT_TRUE(g.ok()) << g.status();
  return std::move(*g);
}

TEST(JsonNumberTest, EveryIntegerInRangeAndNothingElse) {
  const std::vector<std::pair<int64_t, int64_t>> ranges = {
      {0, 0}, {0, 9}, {1, 10}, {-5, 5}, {-120, -7}, {13, 987}, {-1000, 1000}, {99, 100}, {7, 7}};
  for (auto [lo, hi] : ranges) {
    Grammar g = RangeGrammar(lo, hi);
    for (int64_t v = -1100; v <= 1100; ++v) {
      EXPECT_EQ(Matches(g, std::to_string(v)), v >= lo && v <= hi) << lo << ".." << hi << ": " << v;
    }
    EXPECT_FALSE(Matches(g, "-0"));
    EXPECT_FALSE(Matches(g, "01"));
  }
}

TEST(JsonNumberTest, HalfOpenAndUnbounded) {
  Grammar nonneg = RangeGrammar(0, std::nullopt);
  EXPECT_TRUE(Matches(nonneg, "0"));
  EXPECT_TRUE(Matches(nonneg, "123456789012345678"));
  EXPECT_FALSE(Matches(nonneg, "1234567890123456789"));  // 19 digits: past the cap
  EXPECT_FALSE(Matches(nonneg, "-1"));
  Grammar below = RangeGrammar(std::nullopt, -3);
  EXPECT_TRUE(Matches(below, "-3"));
  EXPECT_TRUE(Matches(below, "-100000"));
  EXPECT_FALSE(Matches(below, "-2"));
  EXPECT_FALSE(Matches(below, "0"));
  Grammar any = RangeGrammar(std::nullopt, std::nullopt);
  EXPECT_TRUE(Matches(any, "-42"));
  EXPECT_TRUE(Matches(any, "0"));
  EXPECT_FALSE(Matches(any, "00"));
  EXPECT_FALSE(Matches(any, "-"));
}

// The 18-digit bounds themselves: the digit-count loop stops there rather
// than computing the 19-digit bound, which int64_t cannot hold (UBSan).
TEST(JsonNumberTest, EighteenDigitBoundsAreInclusive) {
  Grammar any = RangeGrammar(std::nullopt, std::nullopt);
  EXPECT_TRUE(Matches(any, "999999999999999999"));
  EXPECT_TRUE(Matches(any, "-999999999999999999"));
  EXPECT_TRUE(Matches(any, "100000000000000000"));
  EXPECT_FALSE(Matches(any, "1000000000000000000"));
  Grammar top = RangeGrammar(kMaxJsonInteger - 5, std::nullopt);
  EXPECT_TRUE(Matches(top, "999999999999999994"));
  EXPECT_FALSE(Matches(top, "999999999999999993"));
}

TEST(JsonNumberTest, EmptyRangeMatchesNothing) {
  Grammar g = RangeGrammar(5, 4);
  EXPECT_FALSE(Matches(g, "4"));
  EXPECT_FALSE(Matches(g, "5"));
  EXPECT_FALSE(Matches(g, ""));
}

}  // namespace
}  // namespace tpserve::structured
