#include "bench/serve/arrival.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace tpserve::bench {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

// Coefficient of variation of the gaps (1 for exponential, 1/sqrt(k) for
// gamma with shape k).
double GapCv(const std::vector<double>& t) {
  std::vector<double> gaps;
  double prev = 0;
  for (double x : t) {
    gaps.push_back(x - prev);
    prev = x;
  }
  double mean = 0, sq = 0;
  for (double g : gaps) mean += g;
  mean /= gaps.size();
  for (double g : gaps) sq += (g - mean) * (g - mean);
  return std::sqrt(sq / gaps.size()) / mean;
}

TEST(ArrivalTest, InfiniteRateSendsEverythingAtOnce) {
  EXPECT_EQ(ArrivalTimes(5, kInf, 1.0, 0), std::vector<double>(5, 0.0));
}

TEST(ArrivalTest, PoissonMeanRateAndSpread) {
  const int n = 20000;
  const double rate = 16;
  std::vector<double> t = ArrivalTimes(n, rate, 1.0, 42);
  ASSERT_EQ(t.size(), n);
  for (int i = 1; i < n; ++i) ASSERT_GE(t[i], t[i - 1]);
  // Scaled like vLLM's: the last request goes out at n / rate exactly.
  EXPECT_NEAR(t.back(), n / rate, 1e-9);
  // The rate holds over the first half too (not only by the final scaling).
  const int half = n / 2;
  EXPECT_NEAR(half / t[half - 1], rate, rate * 0.05);
  EXPECT_NEAR(GapCv(t), 1.0, 0.05);
}

TEST(ArrivalTest, BurstinessShapesTheGaps) {
  EXPECT_NEAR(GapCv(ArrivalTimes(20000, 4, 0.25, 1)), 2.0, 0.15);  // burstier
  EXPECT_NEAR(GapCv(ArrivalTimes(20000, 4, 4.0, 1)), 0.5, 0.05);   // more even
  std::vector<double> even = ArrivalTimes(4, 2, kInf, 1);
  EXPECT_EQ(even, (std::vector<double>{0.5, 1.0, 1.5, 2.0}));
}

TEST(ArrivalTest, SameSeedSameTimes) {
  EXPECT_EQ(ArrivalTimes(100, 8, 1.0, 7), ArrivalTimes(100, 8, 1.0, 7));
  EXPECT_NE(ArrivalTimes(100, 8, 1.0, 7), ArrivalTimes(100, 8, 1.0, 8));
}

}  // namespace
}  // namespace tpserve::bench
