#include "worker/cuda/rope_cache.h"

#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "worker/cuda/test_util.h"

namespace tpserve::worker::cuda {
namespace {

using testing::DevArray;
using bf16 = __nv_bfloat16;

TEST(RopeCacheTest, RotatesQkAndWritesCacheSlots) {
  TP_SKIP_WITHOUT_GPU();
  AttnDims d;
  d.num_heads = 4;
  d.num_kv_heads = 2;
  d.head_dim = 64;
  d.block_size = 16;
  const int tokens = 9, num_slots = 64, row = (d.num_heads + 2 * d.num_kv_heads) * d.head_dim;
  const float theta = 1e6f;
  std::mt19937 rng(3);
  auto qkv = testing::RandomBf16(tokens * row, rng, 2.0f);
  std::vector<int> pos = {0, 1, 2, 17, 300, 4095, 32767, 5, 6};
  std::vector<int> slots = {3, 4, 5, 20, 63, 0, 33, -1, 40};  // -1: padding row, no write
  DevArray<bf16> dqkv(qkv), kc(num_slots * d.num_kv_heads * d.head_dim),
      vc(num_slots * d.num_kv_heads * d.head_dim);
  DevArray<int> dpos(pos), dslots(slots);
  ASSERT_TRUE(RopeAndCacheWrite(dqkv.get(), dpos.get(), dslots.get(), kc.get(), vc.get(), tokens, d,
                                theta, nullptr).ok());
  auto got = testing::ToFloat(dqkv.Download());
  auto gk = kc.Download(), gv = vc.Download();
  const int half = d.head_dim / 2;
  double max_err = 0;
  for (int t = 0; t < tokens; ++t) {
    for (int h = 0; h < d.num_heads + 2 * d.num_kv_heads; ++h) {
      for (int i = 0; i < d.head_dim; ++i) {
        const size_t idx = static_cast<size_t>(t) * row + h * d.head_dim + i;
        double want = __bfloat162float(qkv[idx]);
        if (h < d.num_heads + d.num_kv_heads) {
          const int j = i % half;
          const double f = static_cast<double>(pos[t]) / std::pow(static_cast<double>(theta), 2.0 * j / d.head_dim);
          const double x1 = __bfloat162float(qkv[idx - i + j]), x2 = __bfloat162float(qkv[idx - i + j + half]);
          want = i < half ? x1 * std::cos(f) - x2 * std::sin(f) : x2 * std::cos(f) + x1 * std::sin(f);
        }
        max_err = std::max(max_err, std::fabs(got[idx] - want));
        if (h >= d.num_heads && slots[t] >= 0) {
          const bool is_k = h < d.num_heads + d.num_kv_heads;
          const int kvh = is_k ? h - d.num_heads : h - d.num_heads - d.num_kv_heads;
          const size_t c = (static_cast<size_t>(slots[t]) * d.num_kv_heads + kvh) * d.head_dim + i;
          const float cached = __bfloat162float(is_k ? gk[c] : gv[c]);
          EXPECT_EQ(cached, got[idx]) << "token " << t << " head " << h << " dim " << i;
        }
      }
    }
  }
  // bf16 output rounding (inputs up to 2 => 2^-7) plus float32 angle error at
  // position 32767.
  EXPECT_LT(max_err, 0.03);
  // Slot 1 was never written: still poisoned.
  auto k_after = kc.Download();
  EXPECT_TRUE(std::isnan(__bfloat162float(k_after[1 * d.num_kv_heads * d.head_dim])));
}

TEST(RopeCacheTest, RejectsOddHeadDim) {
  AttnDims d;
  d.num_heads = 1;
  d.num_kv_heads = 1;
  d.head_dim = 63;
  EXPECT_FALSE(RopeAndCacheWrite(nullptr, nullptr, nullptr, nullptr, nullptr, 1, d, 1e4f, nullptr).ok());
}

}  // namespace
}  // namespace tpserve::worker::cuda
