#include "worker/cuda/activation.h"

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

TEST(SiluAndMulTest, MatchesCpuReference) {
  TP_SKIP_WITHOUT_GPU();
  for (auto [rows, inter] : {std::pair{1, 8}, std::pair{5, 512}, std::pair{3, 4864}, std::pair{2, 18944}}) {
    std::mt19937 rng(rows + inter);
    auto gu = testing::RandomBf16(rows * 2 * inter, rng, 6.0f);
    DevArray<bf16> dgu(gu), dout(rows * inter);
    ASSERT_TRUE(SiluAndMul(dgu.get(), dout.get(), rows, inter, nullptr).ok());
    auto got = testing::ToFloat(dout.Download());
    auto f = testing::ToFloat(gu);
    std::vector<float> want(rows * inter);
    for (int r = 0; r < rows; ++r) {
      for (int i = 0; i < inter; ++i) {
        const float g = f[r * 2 * inter + i], u = f[r * 2 * inter + inter + i];
        want[r * inter + i] = RoundBf16(RoundBf16(g / (1.0f + std::exp(-g))) * u);
      }
    }
    EXPECT_LT(testing::MaxRelError(got, want), 8e-3) << rows << "x" << inter;
  }
}

TEST(SiluAndMulTest, RejectsUnalignedSizes) {
  EXPECT_FALSE(SiluAndMul(nullptr, nullptr, 1, 12, nullptr).ok());
}

}  // namespace
}  // namespace tpserve::worker::cuda
