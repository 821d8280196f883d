#include "worker/cuda/gemm.h"

#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "worker/cuda/test_util.h"

namespace tpserve::worker::cuda {
namespace {

using testing::DevArray;
using bf16 = __nv_bfloat16;

class GemmTest : public ::testing::TestWithParam<std::tuple<int, int, int, bool, bool>> {};

TEST_P(GemmTest, MatchesCpuReference) {
  TP_SKIP_WITHOUT_GPU();
  auto [m, n, k, with_bias, fp32] = GetParam();
  std::mt19937 rng(m * 7 + n * 3 + k);
  auto x = testing::RandomBf16(m * k, rng), w = testing::RandomBf16(n * k, rng, 0.1f),
       b = testing::RandomBf16(n, rng);
  DevArray<bf16> dx(x), dw(w), db(b);
  DevArray<char> dout(static_cast<size_t>(m) * n * (fp32 ? 4 : 2));
  auto gemm = Gemm::Create();
  ASSERT_TRUE(gemm.ok()) << gemm.status();
  ASSERT_TRUE((*gemm)->Linear(dx.get(), dw.get(), with_bias ? db.get() : nullptr, dout.get(), fp32, m,
                              n, k, nullptr).ok());
  auto raw = dout.Download();
  std::vector<float> got(static_cast<size_t>(m) * n), want(got.size());
  for (size_t i = 0; i < got.size(); ++i) {
    got[i] = fp32 ? reinterpret_cast<float*>(raw.data())[i]
                  : __bfloat162float(reinterpret_cast<bf16*>(raw.data())[i]);
  }
  auto fx = testing::ToFloat(x), fw = testing::ToFloat(w), fb = testing::ToFloat(b);
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      double acc = with_bias ? fb[j] : 0.0;
      for (int t = 0; t < k; ++t) acc += static_cast<double>(fx[i * k + t]) * fw[j * k + t];
      want[static_cast<size_t>(i) * n + j] = static_cast<float>(acc);
    }
  }
  EXPECT_LT(testing::MaxRelError(got, want), fp32 ? 1e-4 : 8e-3);
}

INSTANTIATE_TEST_SUITE_P(Shapes, GemmTest,
                         ::testing::Values(std::make_tuple(1, 384, 256, true, false),
                                           std::make_tuple(17, 512, 256, false, false),
                                           std::make_tuple(3, 4096, 256, false, true),
                                           std::make_tuple(64, 1152, 896, true, false),
                                           std::make_tuple(5, 3584, 1024, false, false)));

TEST(GemmTest, RejectsBadShape) {
  TP_SKIP_WITHOUT_GPU();
  auto gemm = Gemm::Create();
  ASSERT_TRUE(gemm.ok());
  EXPECT_FALSE((*gemm)->Linear(nullptr, nullptr, nullptr, nullptr, false, 1, 0, 4, nullptr).ok());
}

}  // namespace
}  // namespace tpserve::worker::cuda
