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

TEST(EmbeddingTest, GathersRowsOfThisRanksSlice) {
  TP_SKIP_WITHOUT_GPU();
  const int vocab = 100, hidden = 64, start = 40, local = 30;  // this rank: ids [40, 70)
  std::mt19937 rng(5);
  auto table = testing::RandomBf16(local * hidden, rng);
  std::vector<int> ids = {40, 69, 70, 0, 55, vocab - 1};
  DevArray<bf16> dt(table), dout(ids.size() * hidden);
  DevArray<int> dids(ids);
  ASSERT_TRUE(EmbeddingGather(dids.get(), dt.get(), dout.get(), ids.size(), hidden, start, local, nullptr).ok());
  auto got = testing::ToFloat(dout.Download());
  auto f = testing::ToFloat(table);
  for (size_t t = 0; t < ids.size(); ++t) {
    const bool mine = ids[t] >= start && ids[t] < start + local;
    for (int i = 0; i < hidden; ++i) {
      const float want = mine ? f[(ids[t] - start) * hidden + i] : 0.0f;
      ASSERT_EQ(got[t * hidden + i], want) << "token " << t;
    }
  }
}

TEST(ActivationTest, RejectsUnalignedSizes) {
  EXPECT_FALSE(SiluAndMul(nullptr, nullptr, 1, 12, nullptr).ok());
  EXPECT_FALSE(EmbeddingGather(nullptr, nullptr, nullptr, 1, 12, 0, 1, nullptr).ok());
}

}  // namespace
}  // namespace tpserve::worker::cuda
