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

TEST(GatherRowsTest, CopiesListedRows) {
  TP_SKIP_WITHOUT_GPU();
  const int hidden = 72;
  std::mt19937 rng(8);
  auto in = testing::RandomBf16(10 * hidden, rng);
  std::vector<int> rows = {9, 0, 4, 4};
  DevArray<bf16> din(in), dout(rows.size() * hidden);
  DevArray<int> drows(rows);
  ASSERT_TRUE(GatherRows(din.get(), drows.get(), dout.get(), rows.size(), hidden, nullptr).ok());
  auto got = testing::ToFloat(dout.Download());
  auto f = testing::ToFloat(in);
  for (size_t r = 0; r < rows.size(); ++r) {
    for (int i = 0; i < hidden; ++i) ASSERT_EQ(got[r * hidden + i], f[rows[r] * hidden + i]);
  }
}

TEST(VocabShardsTest, ReordersRankMajorLogitsAndDropsPadding) {
  TP_SKIP_WITHOUT_GPU();
  const int world = 3, rows = 2, shard = 5, vocab = 13;  // last rank holds 3 real ids
  std::vector<float> g(world * rows * shard);
  for (int w = 0; w < world; ++w)
    for (int r = 0; r < rows; ++r)
      for (int i = 0; i < shard; ++i) g[(w * rows + r) * shard + i] = 1000 * r + w * shard + i;
  DevArray<float> dg(g), dout(rows * vocab);
  ASSERT_TRUE(VocabShardsToRows(dg.get(), dout.get(), world, rows, shard, vocab, nullptr).ok());
  auto got = dout.Download();
  for (int r = 0; r < rows; ++r)
    for (int v = 0; v < vocab; ++v) ASSERT_EQ(got[r * vocab + v], 1000 * r + v);
}

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

TEST(ActivationTest, RejectsUnalignedSizes) {
  EXPECT_FALSE(SiluAndMul(nullptr, nullptr, 1, 12, nullptr).ok());
  EXPECT_FALSE(EmbeddingGather(nullptr, nullptr, nullptr, 1, 12, 0, 1, nullptr).ok());
}

}  // namespace
}  // namespace tpserve::worker::cuda
