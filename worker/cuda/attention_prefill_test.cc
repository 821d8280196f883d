// Tensor-core prefill attention (both kernels) against the double-precision
// CPU reference, outputs NaN-poisoned: fresh prompts, chunks after cached
// prefixes, lone decode rows in a prefill step, lengths across the 128-row
// tile, 64/128-key tile and KV block edges, shuffled blocks, GQA groups 1, 2,
// 7 and 8, head_dim 32/64/128, and contexts up to 40k keys.
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "worker/cuda/attention.h"
#include "worker/cuda/attention_test_util.h"

namespace tpserve::worker::cuda {
namespace {

using testing::AttnCase;
using testing::DevArray;
using testing::DeviceAttnCase;
using testing::Dims;
using testing::Seq;

std::string KernelName(PrefillKernel k) { return k == PrefillKernel::kWgmma ? "wgmma" : "mma"; }

// Runs `kernel` on the case and compares every output with the reference.
void ExpectMatchesReference(const AttnCase& c, PrefillKernel kernel, double tol = 1e-2) {
  DeviceAttnCase dc(c);
  std::vector<int> tiles;
  const int positions = PrefillTilePositions(c.dims);
  for (size_t i = 0; i < c.seqs.size(); ++i) AppendPrefillTiles(i, c.q_len[i], positions, tiles);
  ASSERT_LE(static_cast<int>(tiles.size() / 2), MaxPrefillTiles(c.rows, c.seqs.size(), c.dims));
  DevArray<int> dtiles(tiles);
  const absl::Status st = PagedPrefillAttention(dc.q.get(), c.QStride(), dc.out.get(), dc.kc.get(), dc.vc.get(),
                                                dc.batch, dtiles.get(), tiles.size() / 2, c.dims, nullptr, kernel);
  ASSERT_TRUE(st.ok()) << st;
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  const auto got = testing::ToFloat(dc.out.Download());
  EXPECT_LT(testing::MaxRelError(got, c.Reference()), tol) << KernelName(kernel);
}

// Skips kWgmma where it cannot run (not a Hopper GPU, or no sm_90a code).
#define TP_SKIP_UNLESS_RUNNABLE(kernel, head_dim)                                                  \
  TP_SKIP_WITHOUT_GPU();                                                                          \
  if ((kernel) == PrefillKernel::kWgmma && ((head_dim) == 32 || !PrefillWgmmaAvailable())) {     \
    GTEST_SKIP() << "wgmma prefill kernel not available here";                                    \
  }

class PrefillTest : public ::testing::TestWithParam<std::tuple<AttnDims, PrefillKernel>> {};

TEST_P(PrefillTest, MixedStepWithCachedPrefixes) {
  auto [dims, kernel] = GetParam();
  TP_SKIP_UNLESS_RUNNABLE(kernel, dims.head_dim);
  // Fresh prompts, chunks after cached prefixes, lone decode rows, and lengths
  // around the 128-row tile (16/18/64/128 positions for groups 8/7/2/1), the
  // 64- and 128-key tiles and the 16/32-token blocks.
  AttnCase c(dims,
             {{0, 1}, {0, 18}, {0, 19}, {0, 77}, {40, 33}, {129, 1}, {0, 200}, {17, 64}, {63, 66}, {128, 128},
              {0, 255}, {5, 300}, {1000, 37}},
             7);
  ExpectMatchesReference(c, kernel);
}

TEST_P(PrefillTest, SharpSoftmax) {
  auto [dims, kernel] = GetParam();
  TP_SKIP_UNLESS_RUNNABLE(kernel, dims.head_dim);
  // Scores of several units: the running max moves between key tiles and the
  // earlier tiles' sums must be rescaled.
  AttnCase c(dims, {{0, 150}, {300, 40}}, 8, 6.0f);
  ExpectMatchesReference(c, kernel);
}

INSTANTIATE_TEST_SUITE_P(Shapes, PrefillTest,
                         ::testing::Combine(::testing::Values(Dims(4, 2, 64, 16), Dims(2, 1, 32, 16),
                                                              Dims(14, 2, 64, 16), Dims(7, 1, 128, 16),
                                                              Dims(8, 8, 128, 32), Dims(8, 1, 128, 16),
                                                              Dims(28, 4, 128, 16)),
                                            ::testing::Values(PrefillKernel::kMma, PrefillKernel::kWgmma)));

class LongPrefillTest : public ::testing::TestWithParam<PrefillKernel> {};

TEST_P(LongPrefillTest, FreshPromptOf1500Tokens) {
  TP_SKIP_UNLESS_RUNNABLE(GetParam(), 128);
  AttnCase c(Dims(7, 1, 128, 16), {{0, 1500}}, 9);
  ExpectMatchesReference(c, GetParam());
}

TEST_P(LongPrefillTest, ChunkAfter40kCachedKeys) {
  TP_SKIP_UNLESS_RUNNABLE(GetParam(), 128);
  // The last chunk of a 40k-token prompt next to a short fresh one (the CPU
  // reference keeps the chunk small: each row scores 40k keys).
  AttnCase c(Dims(8, 1, 128, 16), {{40000, 70}, {0, 45}}, 10);
  ExpectMatchesReference(c, GetParam());
}

INSTANTIATE_TEST_SUITE_P(Kernels, LongPrefillTest,
                         ::testing::Values(PrefillKernel::kMma, PrefillKernel::kWgmma));

TEST(PrefillTilesTest, PositionsFollowTheGroup) {
  EXPECT_EQ(PrefillTilePositions(Dims(28, 4, 128, 16)), 18);  // 7 heads per KV head: 126 of 128 rows
  EXPECT_EQ(PrefillTilePositions(Dims(8, 8, 128, 16)), 128);
  EXPECT_EQ(PrefillTilePositions(Dims(64, 8, 128, 16)), 16);
  std::vector<int> tiles;
  AppendPrefillTiles(3, 37, 18, tiles);
  EXPECT_EQ(tiles, (std::vector<int>{3, 0, 3, 18, 3, 36}));
  // 2 x 37 rows in two sequences need 3 + 3 tiles of 18.
  EXPECT_GE(MaxPrefillTiles(74, 2, Dims(28, 4, 128, 16)), 6);
}

TEST(PrefillTilesTest, RejectsBadShapes) {
  PagedAttnBatch b;
  EXPECT_FALSE(PagedPrefillAttention(nullptr, 0, nullptr, nullptr, nullptr, b, nullptr, 1, Dims(3, 2, 64, 16),
                                     nullptr).ok());
  EXPECT_FALSE(PagedPrefillAttention(nullptr, 0, nullptr, nullptr, nullptr, b, nullptr, 1, Dims(4, 2, 96, 16),
                                     nullptr).ok());
  EXPECT_FALSE(PagedPrefillAttention(nullptr, 0, nullptr, nullptr, nullptr, b, nullptr, 1, Dims(4, 2, 64, 0),
                                     nullptr).ok());
  // The wgmma kernel has no head_dim 32 version: asking for it is an error, not a fallback.
  EXPECT_EQ(PagedPrefillAttention(nullptr, 0, nullptr, nullptr, nullptr, b, nullptr, 1, Dims(4, 2, 32, 16),
                                  nullptr, PrefillKernel::kWgmma).code(),
            absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace tpserve::worker::cuda
