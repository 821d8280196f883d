// The fused int4 / int8 GEMM (gemm_int.cu) against host references over the
// dequantized weights, on NaN-poisoned outputs: row counts off the block's
// 64 x rows and off its 64 weight rows, both code layouts, groups of one and
// several k tiles, k tiles fewer than the pipeline's stages, the SiLU·mul
// form with up rows off a tile boundary; and which weights and row counts
// Gemm::LinearInt sends to it.
#include "worker/cuda/gemm_int.h"

#include <cmath>
#include <random>
#include <vector>

#include "common/env.h"
#include "gtest/gtest.h"
#include "worker/cuda/int_repack.h"
#include "worker/cuda/int_weight_test_util.h"
#include "worker/cuda/test_util.h"

namespace tpserve::worker::cuda {
namespace {

using testing::DevArray;
using testing::DevWeight;
using testing::RandomBf16;
using testing::RandomWeight;
using testing::ToFloat;
using bf16 = __nv_bfloat16;

struct Shape {
  int bits, n, k, group;
};

constexpr int kRows[] = {1, 7, 33, 64, 65, 100, 129};
// A split-k workspace: every shape below splits k as far as it can (their
// grids are far under one resident wave).
constexpr size_t kWorkspace = size_t{1} << 20;

std::vector<bool> Layouts(const Shape& s) {
  if (s.bits != 4 || s.n % 16 != 0) return {false};
  return {false, true};
}

class GemmIntTest : public ::testing::TestWithParam<Shape> {};

TEST_P(GemmIntTest, MatchesTheDequantizedReference) {
  TP_SKIP_WITHOUT_GPU();
  const Shape s = GetParam();
  std::mt19937 rng(s.n * 13 + s.k + s.bits);
  const IntRepacked r = RandomWeight(s.bits, s.n, s.k, s.group, false, rng);
  const std::vector<float> w = DequantizeRepacked(r);
  for (int m : kRows) {
    const std::vector<bf16> x = RandomBf16(static_cast<size_t>(m) * s.k, rng);
    const std::vector<bf16> bias = RandomBf16(s.n, rng, 0.1f);
    const std::vector<float> xf = ToFloat(x), bf = ToFloat(bias);
    DevArray<bf16> dx(x), dbias(bias);
    DevArray<float> ws(kWorkspace);
    for (bool fp32 : {true, false}) {
      std::vector<float> row_major;
      for (bool tiled : Layouts(s)) {
        DevWeight dw(r, tiled);
        const bf16* b = m % 2 == 1 ? dbias.get() : nullptr;  // with and without a bias
        // Without a workspace (one block a tile's whole k) and with one (split
        // k), each into a NaN-poisoned output.
        auto run = [&](float* workspace, size_t floats) {
          DevArray<float> out32(std::vector<float>(static_cast<size_t>(m) * s.n, NAN));
          DevArray<bf16> out16(std::vector<bf16>(static_cast<size_t>(m) * s.n, __float2bfloat16(NAN)));
          void* out = fp32 ? static_cast<void*>(out32.get()) : static_cast<void*>(out16.get());
          EXPECT_TRUE(GemmInt(dx.get(), dw.view, b, out, fp32, m, s.n, s.k, workspace, floats, nullptr).ok());
          return fp32 ? out32.Download() : ToFloat(out16.Download());
        };
        const std::vector<float> whole = run(nullptr, 0);
        const std::vector<float> got = run(ws.get(), kWorkspace);
        if (tiled) {
          EXPECT_EQ(got, row_major) << "m " << m << (fp32 ? " fp32" : " bf16");  // same sums, same order
        }
        row_major = got;
        for (int row = 0; row < m; ++row) {
          for (int o = 0; o < s.n; ++o) {
            double ref = b != nullptr ? bf[o] : 0.0, mag = std::fabs(ref);
            for (int i = 0; i < s.k; ++i) {
              const double p = static_cast<double>(w[static_cast<size_t>(o) * s.k + i]) * xf[row * s.k + i];
              ref += p;
              mag += std::fabs(p);
            }
            const size_t at = static_cast<size_t>(row) * s.n + o;
            ASSERT_NEAR(got[at], ref, (fp32 ? 1e-5 : 8e-3) * mag + 1e-6)
                << "m " << m << " row " << row << " out " << o << (fp32 ? " fp32" : " bf16") << " tiled " << tiled;
            ASSERT_NEAR(whole[at], ref, (fp32 ? 1e-5 : 8e-3) * mag + 1e-6)
                << "unsplit: m " << m << " row " << row << " out " << o << (fp32 ? " fp32" : " bf16");
          }
        }
      }
    }
  }
}

TEST_P(GemmIntTest, FusedSiluMulMatchesTheUnfusedRoundings) {
  TP_SKIP_WITHOUT_GPU();
  const Shape s = GetParam();
  if (s.n % 2 != 0) GTEST_SKIP() << "gate and up need an even row count";
  std::mt19937 rng(s.n * 7 + s.k + s.bits);
  const int inter = s.n / 2;
  const IntRepacked r = RandomWeight(s.bits, s.n, s.k, s.group, false, rng);
  const std::vector<float> w = DequantizeRepacked(r);
  for (int m : kRows) {
    const std::vector<bf16> x = RandomBf16(static_cast<size_t>(m) * s.k, rng);
    const std::vector<float> xf = ToFloat(x);
    DevArray<bf16> dx(x);
    std::vector<float> row_major;
    for (bool tiled : Layouts(s)) {
      DevWeight dw(r, tiled);
      DevArray<bf16> out(std::vector<bf16>(static_cast<size_t>(m) * inter, __float2bfloat16(NAN)));
      DevArray<float> ws(kWorkspace);
      const bool split = m % 2 == 0;  // with and without split k
      ASSERT_TRUE(GemmIntSiluMul(dx.get(), dw.view, out.get(), m, inter, s.k, split ? ws.get() : nullptr,
                                 split ? kWorkspace : 0, nullptr)
                      .ok());
      const std::vector<float> got = ToFloat(out.Download());
      if (tiled) {
        EXPECT_EQ(got, row_major) << "m " << m;
      }
      row_major = got;
      for (int row = 0; row < m; ++row) {
        for (int i = 0; i < inter; ++i) {
          // 4 x 2^-8: all four roundings at their worst (with 129 rows of int8
          // codes the fused GEMM's results reached 0.92% off, H200, 2026-12-01;
          // gemv_int_test allows two roundings' worth).
          const testing::SiluMulExpected e = testing::SiluMulReference(w, xf, row, i, inter, s.k, 1.6e-2);
          ASSERT_NEAR(got[static_cast<size_t>(row) * inter + i], e.want, e.tol)
              << "m " << m << " row " << row << " column " << i << " tiled " << tiled;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, GemmIntTest,
                         ::testing::Values(
                             // One k tile (fewer than the stages), 64 rows: one block's width.
                             Shape{4, 64, 128, 128}, Shape{8, 64, 64, 64},
                             // Rows off the block (200 = 3 blocks + 8), groups of two k tiles.
                             Shape{4, 200, 1024, 256}, Shape{8, 200, 512, 128},
                             // The 7B shape's k, tiled, SiLU·mul with inter 40 (up rows off a tile).
                             Shape{4, 80, 3584, 128}, Shape{8, 80, 3584, 128},
                             // Per-channel groups; a long k (the 7B down).
                             Shape{4, 48, 3584, 3584}, Shape{4, 32, 18944, 128}, Shape{8, 34, 2048, 2048}));

// Which weights the fused GEMM takes and at which row counts; host only.
TEST(GemmIntPolicyTest, TakesPermutationFreeWeightsAboveTheGemvRows) {
  IntWeightView w;
  uint32_t word = 0;
  float scale = 0;
  uint16_t zero = 0;
  w.codes = &word;  // host pointers: nothing here reaches a kernel
  w.scale = &scale;
  w.zero = &zero;
  w.bits = 4;
  w.group = 128;
  const bool on = EnvSwitch("TPSERVE_GEMM_INT", true);
  EXPECT_EQ(GemmIntFits(w), on);
  if (!on) GTEST_SKIP() << "TPSERVE_GEMM_INT=0";
  if (EnvValue("TPSERVE_GEMM_INT_ROWS_MIN") || EnvValue("TPSERVE_GEMM_INT_ROWS_MAX")) {
    GTEST_SKIP() << "row bounds moved by the environment";
  }
  // From above the GEMV's one pass (32 rows on its tensor-core kernels, 2 on
  // the scalar ones) to the format's bound.
  const int first = EnvSwitch("TPSERVE_GEMV_INT_MMA", true) ? kGemvIntMmaMaxRows + 1 : kGemvIntMaxRows + 1;
  EXPECT_EQ(GemmIntMinRows(w), first);
  EXPECT_FALSE(GemmIntTakes(w, first - 1));
  EXPECT_TRUE(GemmIntTakes(w, first));
  EXPECT_TRUE(GemmIntTakes(w, 128));
  EXPECT_FALSE(GemmIntTakes(w, 129));
  w.group = 64;  // a k tile of int4 would span two groups
  EXPECT_FALSE(GemmIntFits(w));
  w.bits = 8;  // int8 tiles are 64 inputs
  EXPECT_TRUE(GemmIntFits(w));
  EXPECT_TRUE(GemmIntTakes(w, 64));
  EXPECT_FALSE(GemmIntTakes(w, 65));
  w.group = 32;
  EXPECT_FALSE(GemmIntFits(w));
  w.group = 128;
  const int32_t perm = 0;
  w.perm = &perm;  // act order: the dequantize path
  EXPECT_FALSE(GemmIntFits(w));
  EXPECT_FALSE(GemmInt(nullptr, w, nullptr, nullptr, false, 100, 64, 256, nullptr, 0, nullptr).ok());
  w.perm = nullptr;
  EXPECT_FALSE(GemmInt(nullptr, w, nullptr, nullptr, false, 0, 64, 256, nullptr, 0, nullptr).ok());  // no rows
  EXPECT_FALSE(GemmInt(nullptr, w, nullptr, nullptr, false, 100, 64, 200, nullptr, 0, nullptr).ok());  // k off 32
}

}  // namespace
}  // namespace tpserve::worker::cuda
