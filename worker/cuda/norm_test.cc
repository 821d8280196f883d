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
                         // Rows of up to 8,192 values run in registers (1, 2 or 4 vectors a thread,
                         // 2,056 leaves the last ones partly idle); 8,200 takes the two-pass loop.
                         ::testing::Values(std::make_tuple(1, 64, false), std::make_tuple(7, 256, true),
                                           std::make_tuple(33, 896, true), std::make_tuple(5, 3584, true),
                                           std::make_tuple(4, 2056, true), std::make_tuple(2, 8192, false),
                                           std::make_tuple(3, 8192, true), std::make_tuple(3, 8200, true)));

// The float32-add form (tensor-parallel sums) must equal rounding the sums
// to bf16 first and using the bf16 form, bit for bit.
TEST(NormTest, Float32AddEqualsRoundingFirst) {
  TP_SKIP_WITHOUT_GPU();
  const int rows = 3, hidden = 3584;
  std::mt19937 rng(77);
  std::uniform_real_distribution<float> u(-3.0f, 3.0f);
  std::vector<float> add(rows * hidden);
  for (float& v : add) v = u(rng);
  std::vector<__nv_bfloat16> add_bf(add.size());
  for (size_t i = 0; i < add.size(); ++i) add_bf[i] = __float2bfloat16(add[i]);
  auto r = testing::RandomBf16(rows * hidden, rng, 2.0f);
  auto w = testing::RandomBf16(hidden, rng, 1.5f);
  DevArray<float> dadd(add);
  DevArray<__nv_bfloat16> dadd_bf(add_bf), dr1(r), dr2(r), dw(w), dout1(rows * hidden), dout2(rows * hidden);
  ASSERT_TRUE(AddRmsNorm(dadd.get(), dr1.get(), dw.get(), dout1.get(), rows, hidden, 1e-6f, nullptr).ok());
  ASSERT_TRUE(AddRmsNorm(dadd_bf.get(), dr2.get(), dw.get(), dout2.get(), rows, hidden, 1e-6f, nullptr).ok());
  auto res1 = testing::ToFloat(dr1.Download()), res2 = testing::ToFloat(dr2.Download());
  auto out1 = testing::ToFloat(dout1.Download()), out2 = testing::ToFloat(dout2.Download());
  EXPECT_EQ(res1, res2);
  EXPECT_EQ(out1, out2);
}

TEST(NormTest, RejectsHiddenNotMultipleOf8) {
  EXPECT_FALSE(AddRmsNorm(static_cast<const __nv_bfloat16*>(nullptr), nullptr, nullptr, nullptr, 1, 12, 1e-6f,
                          nullptr).ok());
  EXPECT_FALSE(AddRmsNorm(static_cast<const float*>(nullptr), nullptr, nullptr, nullptr, 1, 12, 1e-6f, nullptr).ok());
}

}  // namespace
}  // namespace tpserve::worker::cuda
