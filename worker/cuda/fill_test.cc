#include "worker/cuda/fill.h"

#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "worker/cuda/test_util.h"

namespace tpserve::worker::cuda {
namespace {

using testing::DevArray;
using testing::RoundBf16;
using bf16 = __nv_bfloat16;

TEST(FillUniformTest, DeterministicInRangeAndSeeded) {
  TP_SKIP_WITHOUT_GPU();
  const size_t n = 100000;
  DevArray<bf16> a(n), b(n), c(n);
  ASSERT_TRUE(FillUniformBf16(a.get(), n, 5, -0.5f, 0.5f, nullptr).ok());
  ASSERT_TRUE(FillUniformBf16(b.get(), n, 5, -0.5f, 0.5f, nullptr).ok());
  ASSERT_TRUE(FillUniformBf16(c.get(), n, 6, -0.5f, 0.5f, nullptr).ok());
  auto fa = testing::ToFloat(a.Download()), fb = testing::ToFloat(b.Download()), fc = testing::ToFloat(c.Download());
  EXPECT_EQ(fa, fb);
  EXPECT_NE(fa, fc);
  double mean = 0;
  for (float x : fa) {
    ASSERT_GE(x, -0.5f);
    ASSERT_LE(x, 0.5f);
    mean += x / n;
  }
  EXPECT_NEAR(mean, 0.0, 0.01);
}

}  // namespace
}  // namespace tpserve::worker::cuda
