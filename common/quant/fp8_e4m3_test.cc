#include "common/quant/fp8_e4m3.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "common/quant/dequant.h"

namespace tpserve {
namespace {

TEST(Fp8E4M3Test, KnownValues) {
  EXPECT_EQ(FloatToFp8E4M3(0.0f), 0x00);
  EXPECT_EQ(FloatToFp8E4M3(-0.0f), 0x80);
  EXPECT_EQ(FloatToFp8E4M3(1.0f), 0x38);
  EXPECT_EQ(FloatToFp8E4M3(1.125f), 0x39);
  EXPECT_EQ(FloatToFp8E4M3(-2.0f), 0xC0);
  EXPECT_EQ(FloatToFp8E4M3(448.0f), 0x7E);
  EXPECT_EQ(FloatToFp8E4M3(-448.0f), 0xFE);
  EXPECT_EQ(FloatToFp8E4M3(0.015625f), 0x08);      // smallest normal 2^-6
  EXPECT_EQ(FloatToFp8E4M3(0.001953125f), 0x01);   // smallest subnormal 2^-9
  EXPECT_EQ(FloatToFp8E4M3(7 * 0.001953125f), 0x07);
  EXPECT_EQ(FloatToFp8E4M3(-3 * 0.001953125f), 0x83);
}

TEST(Fp8E4M3Test, SaturatesAndNaN) {
  EXPECT_EQ(FloatToFp8E4M3(449.0f), 0x7E);
  EXPECT_EQ(FloatToFp8E4M3(464.0f), 0x7E);  // the tie with 480 (a NaN code) goes to 448
  EXPECT_EQ(FloatToFp8E4M3(1e30f), 0x7E);
  EXPECT_EQ(FloatToFp8E4M3(std::numeric_limits<float>::infinity()), 0x7E);
  EXPECT_EQ(FloatToFp8E4M3(-std::numeric_limits<float>::infinity()), 0xFE);
  EXPECT_EQ(FloatToFp8E4M3(std::numeric_limits<float>::quiet_NaN()), 0x7F);
  EXPECT_TRUE(std::isnan(RoundToFp8E4M3(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_EQ(RoundToFp8E4M3(1000.0f), 448.0f);
}

TEST(Fp8E4M3Test, TiesGoToEvenMantissa) {
  EXPECT_EQ(FloatToFp8E4M3(1.0625f), 0x38);  // between 1 (even) and 1.125
  EXPECT_EQ(FloatToFp8E4M3(1.1875f), 0x3A);  // between 1.125 and 1.25 (even)
  EXPECT_EQ(FloatToFp8E4M3(1.9375f), 0x40);  // between 1.875 and 2 (next exponent, even)
  EXPECT_EQ(FloatToFp8E4M3(0.0009765625f), 0x00);   // 2^-10: between 0 and 2^-9
  EXPECT_EQ(FloatToFp8E4M3(0.0029296875f), 0x02);   // 1.5 * 2^-9 goes to 2 * 2^-9
  EXPECT_EQ(FloatToFp8E4M3(0.0009765626f), 0x01);   // just above the first tie
  EXPECT_EQ(FloatToFp8E4M3(0.0146484375f), 0x08);   // 7.5 * 2^-9: subnormal 7 vs normal 2^-6 (8)
  EXPECT_EQ(FloatToFp8E4M3(1e-30f), 0x00);
}

// Every finite code decodes and re-encodes to itself; the midpoint between
// neighbours rounds to the even code, and points just off it to the nearer.
TEST(Fp8E4M3Test, EveryCodeAndMidpoint) {
  for (int c = 0; c < 0x7E; ++c) {
    const float lo = Fp8E4M3ToFloat(static_cast<uint8_t>(c));
    const float hi = Fp8E4M3ToFloat(static_cast<uint8_t>(c + 1));
    EXPECT_EQ(FloatToFp8E4M3(lo), c);
    EXPECT_EQ(FloatToFp8E4M3(-lo), c | 0x80);
    const float mid = 0.5f * (lo + hi);
    EXPECT_EQ(FloatToFp8E4M3(mid), (c % 2 == 0) ? c : c + 1) << "code " << c;
    EXPECT_EQ(FloatToFp8E4M3(std::nextafter(mid, 0.0f)), c) << "code " << c;
    EXPECT_EQ(FloatToFp8E4M3(std::nextafter(mid, 1000.0f)), c + 1) << "code " << c;
  }
}

// Against a brute-force nearest-code search on random magnitudes.
TEST(Fp8E4M3Test, NearestOnRandomValues) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> expo(-12.0f, 9.5f);
  for (int i = 0; i < 20000; ++i) {
    const float x = std::exp2(expo(rng)) * (i % 2 ? -1.0f : 1.0f);
    float best = 0.0f;
    for (int c = 0; c <= 0x7E; ++c) {
      const float v = std::copysign(Fp8E4M3ToFloat(static_cast<uint8_t>(c)), x);
      if (std::fabs(v - x) < std::fabs(best - x)) best = v;
    }
    const float got = RoundToFp8E4M3(x);
    // Exact ties are measure-zero here; equal distance would be a tie.
    EXPECT_EQ(std::fabs(got - x), std::fabs(best - x)) << x;
    EXPECT_LE(std::fabs(got), kFp8E4M3Max);
  }
}

}  // namespace
}  // namespace tpserve
