#include "worker/cuda/gather.h"

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

TEST(EmbeddingTest, RejectsUnalignedSizes) {
  EXPECT_FALSE(EmbeddingGather(nullptr, nullptr, nullptr, 1, 12, 0, 1, nullptr).ok());
  EXPECT_FALSE(GatherRows(nullptr, nullptr, nullptr, 1, 12, nullptr).ok());
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

}  // namespace
}  // namespace tpserve::worker::cuda
