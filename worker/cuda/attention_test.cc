// Split-KV decode attention against the CPU reference.
#include "worker/cuda/attention.h"

#include <vector>

#include "gtest/gtest.h"
#include "worker/cuda/attention_test_util.h"

namespace tpserve::worker::cuda {
namespace {

using testing::AttnCase;
using testing::DevArray;
using testing::DeviceAttnCase;
using testing::Dims;

class DecodeTest : public ::testing::TestWithParam<std::tuple<AttnDims, int>> {};

TEST_P(DecodeTest, MatchesCpuReference) {
  TP_SKIP_WITHOUT_GPU();
  auto [dims, splits] = GetParam();
  // Contexts from one key to several 64-key splits, with ragged tails; with
  // 32 or 128 splits most splits of the short ones are empty.
  AttnCase c(dims, {{0, 1}, {31, 1}, {100, 1}, {1500, 1}, {257, 1}, {63, 1}, {64, 1}}, 11);
  DeviceAttnCase dc(c);
  DecodePartition p;
  p.num_splits = splits;
  const size_t ws_bytes = DecodeWorkspaceBytes(c.seqs.size(), dims.num_heads, dims.head_dim, p);
  DevArray<char> ws(ws_bytes);
  // NaN in the split partials: empty splits write only their lse, and the
  // merge must never read the rest of their slots.
  if (ws_bytes > 0) ASSERT_EQ(cudaMemset(ws.get(), 0xFF, ws_bytes), cudaSuccess);
  ASSERT_TRUE(PagedDecodeAttention(dc.q.get(), c.QStride(), dc.out.get(), dc.kc.get(), dc.vc.get(),
                                   dc.batch, p, ws.get(), dims, nullptr).ok());
  const auto got = testing::ToFloat(dc.out.Download());
  EXPECT_LT(testing::MaxRelError(got, c.Reference()), 1e-2);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, DecodeTest,
    ::testing::Combine(::testing::Values(Dims(4, 2, 64, 16), Dims(2, 1, 32, 16), Dims(28, 4, 128, 16),
                                         Dims(8, 1, 128, 16), Dims(4, 4, 64, 8)),
                       ::testing::Values(1, 3, 7, 32, 128)));

// Contexts of 32k and 40k keys (what long-context decode steps read), split
// the way a batch-1 graph splits them and four times finer.
TEST(DecodeTest, LongContexts) {
  TP_SKIP_WITHOUT_GPU();
  const AttnDims dims = Dims(28, 4, 128, 16);
  AttnCase c(dims, {{32000, 1}, {40000, 1}}, 12);
  DeviceAttnCase dc(c);
  const auto want = c.Reference();
  for (int splits : {ChooseDecodePartition(2, 4, 40001, 132).num_splits, 128}) {
    DecodePartition p;
    p.num_splits = splits;
    DevArray<char> ws(DecodeWorkspaceBytes(c.seqs.size(), dims.num_heads, dims.head_dim, p));
    ASSERT_EQ(cudaMemset(dc.out.get(), 0xFF, static_cast<size_t>(c.rows) * dims.num_heads * dims.head_dim * 2), cudaSuccess);  // poison again
    ASSERT_TRUE(PagedDecodeAttention(dc.q.get(), c.QStride(), dc.out.get(), dc.kc.get(), dc.vc.get(), dc.batch, p,
                                     ws.get(), dims, nullptr).ok());
    EXPECT_LT(testing::MaxRelError(testing::ToFloat(dc.out.Download()), want), 1e-2) << splits << " splits";
  }
}

TEST(DecodePartitionTest, FillsTheGpuWithinLimits) {
  for (int sms : {10, 108, 132, 148}) {
    for (int seqs : {1, 2, 8, 64, 256}) {
      for (int kv : {1, 2, 4, 8}) {
        for (int ctx : {1, 63, 64, 65, 1000, 8192, 32768, 131072}) {
          const int splits = ChooseDecodePartition(seqs, kv, ctx, sms).num_splits;
          EXPECT_GE(splits, 1);
          EXPECT_LE(splits, 128);
          EXPECT_LE(splits, (ctx + 63) / 64) << "splits of fewer than 64 keys";
        }
      }
    }
  }
  // Batch 1 of a 4-KV-head model on an H200 (132 SMs): many splits, so ~two
  // blocks per SM (264 / 4 = 66).
  EXPECT_EQ(ChooseDecodePartition(1, 4, 32768, 132).num_splits, 66);
  EXPECT_EQ(ChooseDecodePartition(1, 4, 640, 132).num_splits, 10);
  // A batch that fills the GPU by itself needs no split.
  EXPECT_EQ(ChooseDecodePartition(256, 4, 32768, 132).num_splits, 1);
  // The target follows the SM count: 16 (sequence, KV head) blocks get 17
  // splits each on 132 SMs (272 blocks), 14 on an A100's 108 (224), 2 on a
  // 10-SM GPU.
  EXPECT_EQ(ChooseDecodePartition(2, 8, 32768, 132).num_splits, 17);
  EXPECT_EQ(ChooseDecodePartition(2, 8, 32768, 108).num_splits, 14);
  EXPECT_EQ(ChooseDecodePartition(2, 8, 32768, 10).num_splits, 2);
}

TEST(AttentionTest, RejectsBadShapes) {
  PagedAttnBatch b;
  b.num_seqs = 1;
  EXPECT_FALSE(PagedDecodeAttention(nullptr, 0, nullptr, nullptr, nullptr, b, {1}, nullptr,
                                    Dims(3, 2, 64, 16), nullptr).ok());
  EXPECT_FALSE(PagedDecodeAttention(nullptr, 0, nullptr, nullptr, nullptr, b, {1}, nullptr,
                                    Dims(4, 2, 96, 16), nullptr).ok());
  EXPECT_FALSE(PagedDecodeAttention(nullptr, 0, nullptr, nullptr, nullptr, b, {129}, nullptr,
                                    Dims(4, 2, 64, 16), nullptr).ok());
}

}  // namespace
}  // namespace tpserve::worker::cuda
