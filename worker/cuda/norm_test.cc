#include "worker/cuda/norm.h"

#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "worker/cuda/test_util.h"

namespace tpserve::worker::cuda {
namespace {

using testing::DevArray;
using testing::RoundBf16;

// CPU reference with the kernel's rounding points.
void Reference(const std::vector<float>* add, std::vector<float>& res, const std::vector<float>& w,
               std::vector<float>& out, int rows, int hidden, float eps) {
  for (int r = 0; r < rows; ++r) {
    double ss = 0;
    for (int i = 0; i < hidden; ++i) {
      float& x = res[r * hidden + i];
      if (add) x = RoundBf16(x + (*add)[r * hidden + i]);
      ss += static_cast<double>(x) * x;
    }
    float inv = 1.0f / std::sqrt(static_cast<float>(ss / hidden) + eps);
    for (int i = 0; i < hidden; ++i) {
      out[r * hidden + i] = RoundBf16(w[i] * RoundBf16(res[r * hidden + i] * inv));
    }
  }
}

class NormTest : public ::testing::TestWithParam<std::tuple<int, int, bool>> {};

TEST_P(NormTest, MatchesCpuReference) {
  TP_SKIP_WITHOUT_GPU();
  auto [rows, hidden, with_add] = GetParam();
  std::mt19937 rng(rows * 131 + hidden);
  auto x = testing::RandomBf16(rows * hidden, rng, 2.0f);
  auto r = testing::RandomBf16(rows * hidden, rng, 2.0f);
  auto w = testing::RandomBf16(hidden, rng, 1.5f);
  DevArray<__nv_bfloat16> dx(x), dr(r), dw(w), dout(rows * hidden);
  ASSERT_TRUE(AddRmsNorm(with_add ? dx.get() : nullptr, dr.get(), dw.get(), dout.get(), rows, hidden,
                         1e-6f, nullptr).ok());
  auto got_out = testing::ToFloat(dout.Download());
  auto got_res = testing::ToFloat(dr.Download());
  auto fx = testing::ToFloat(x), fres = testing::ToFloat(r), fw = testing::ToFloat(w);
  std::vector<float> want(rows * hidden);
  Reference(with_add ? &fx : nullptr, fres, fw, want, rows, hidden, 1e-6f);
  EXPECT_EQ(testing::MaxRelError(got_res, fres), 0.0);
  // One bf16 ulp of disagreement from summation order is allowed.
  EXPECT_LT(testing::MaxRelError(got_out, want), 1e-2);
}

INSTANTIATE_TEST_SUITE_P(Shapes, NormTest,
                         ::testing::Values(std::make_tuple(1, 64, false), std::make_tuple(7, 256, true),
                                           std::make_tuple(33, 896, true), std::make_tuple(5, 3584, true),
                                           std::make_tuple(2, 8192, false)));

TEST(NormTest, RejectsHiddenNotMultipleOf8) {
  EXPECT_FALSE(AddRmsNorm(nullptr, nullptr, nullptr, nullptr, 1, 12, 1e-6f, nullptr).ok());
}

}  // namespace
}  // namespace tpserve::worker::cuda
