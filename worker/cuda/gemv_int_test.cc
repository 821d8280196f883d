// The int4/int8 kernels (gemv_int.cu, gemv_int_mma.cu) against host references over the
// dequantized weights (int_repack.h's DequantizeRepacked): the decode GEMV
// and its fused SiLU·mul on NaN-poisoned outputs for several shapes (k not a
// multiple of 1024, groups of 32..128, act-order permutations), and the
// prefill dequantization, which must equal common/quant's float32 weights
// rounded to bf16 bit for bit -- on random tensors and on the fixtures.
#include "worker/cuda/gemv_int.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "common/env.h"
#include "common/quant/quant_linear.h"
#include "gtest/gtest.h"
#include "worker/cuda/int_repack.h"
#include "worker/cuda/int_weight_test_util.h"
#include "worker/cuda/quant_fixture.h"
#include "worker/cuda/test_util.h"

namespace tpserve::worker::cuda {
namespace {

using testing::DevArray;
using testing::DevWeight;
using testing::RandomWeight;
using testing::RandomBf16;
using testing::ToFloat;
using bf16 = __nv_bfloat16;

// x in the weight's canonical order (GatherColumns when it has a permutation).
const bf16* Canonical(const DevArray<bf16>& x, const DevWeight& w, DevArray<bf16>& scratch, int m, int k) {
  if (w.view.perm == nullptr) return x.get();
  EXPECT_TRUE(GatherColumns(x.get(), w.view.perm, scratch.get(), m, k, nullptr).ok());
  return scratch.get();
}

struct Shape {
  int bits, n, k, group;
  bool act_order;
};

// The row counts GemvInt takes for this weight (2 on the scalar kernels; on
// the tensor-core ones 64 for int4, in two passes, and 32 for int8, whose
// first two rows are the scalar kernels'); every one is tested.
int MaxRows(const IntRepacked& r) {
  IntWeightView v;
  v.bits = r.bits;
  v.group = r.group;
  return GemvIntRows(v);
}

// Row by row always; tiled too where the shape fills whole 16-row tiles.
std::vector<bool> Layouts(const Shape& s) {
  if (s.n % 16 != 0 || (s.k * s.bits / 128) % 4 != 0) return {false};
  return {false, true};
}

class GemvIntTest : public ::testing::TestWithParam<Shape> {};

TEST_P(GemvIntTest, MatchesTheDequantizedReference) {
  TP_SKIP_WITHOUT_GPU();
  const Shape s = GetParam();
  std::mt19937 rng(s.n * 31 + s.k);
  const IntRepacked r = RandomWeight(s.bits, s.n, s.k, s.group, s.act_order, rng);
  const std::vector<float> w = DequantizeRepacked(r);  // original input order
  for (int m = 1; m <= MaxRows(r); ++m) {
    const std::vector<bf16> x = RandomBf16(static_cast<size_t>(m) * s.k, rng);
    const std::vector<bf16> bias = RandomBf16(s.n, rng, 0.1f);
    const std::vector<float> xf = ToFloat(x), bf = ToFloat(bias);
    DevArray<bf16> dx(x), dbias(bias), scratch(static_cast<size_t>(m) * s.k);
    for (bool fp32 : {true, false}) {
      std::vector<float> row_major;  // the first layout's result
      for (bool tiled : Layouts(s)) {
        DevWeight dw(r, tiled);
        const bf16* xc = Canonical(dx, dw, scratch, m, s.k);
        DevArray<float> out32(static_cast<size_t>(m) * s.n);
        DevArray<bf16> out16(static_cast<size_t>(m) * s.n);
        void* out = fp32 ? static_cast<void*>(out32.get()) : static_cast<void*>(out16.get());
        ASSERT_TRUE(GemvInt(xc, dw.view, dbias.get(), out, fp32, m, s.n, s.k, nullptr).ok());
        const std::vector<float> got = fp32 ? out32.Download() : ToFloat(out16.Download());
        // The same kernel sums in the same order whatever the layout.
        if (tiled) {
          EXPECT_EQ(got, row_major) << "m " << m << (fp32 ? " fp32" : " bf16");
        }
        row_major = got;
        for (int row = 0; row < m; ++row) {
          for (int o = 0; o < s.n; ++o) {
            double ref = bf[o], mag = std::fabs(bf[o]);
            for (int i = 0; i < s.k; ++i) {
              const double p = static_cast<double>(w[static_cast<size_t>(o) * s.k + i]) * xf[row * s.k + i];
              ref += p;
              mag += std::fabs(p);
            }
            const float g = got[static_cast<size_t>(row) * s.n + o];
            ASSERT_NEAR(g, ref, (fp32 ? 1e-5 : 8e-3) * mag + 1e-6)
                << "m " << m << " row " << row << " out " << o << (fp32 ? " fp32" : " bf16") << " tiled " << tiled;
          }
        }
      }
    }
  }
}

TEST_P(GemvIntTest, FusedSiluMulMatchesTheUnfusedRoundings) {
  TP_SKIP_WITHOUT_GPU();
  const Shape s = GetParam();
  if (s.n % 2 != 0) GTEST_SKIP() << "gate and up need an even row count";
  std::mt19937 rng(s.n * 17 + s.k);
  const int inter = s.n / 2;
  const IntRepacked r = RandomWeight(s.bits, s.n, s.k, s.group, s.act_order, rng);
  const std::vector<float> w = DequantizeRepacked(r);
  for (int m = 1; m <= MaxRows(r); ++m) {
    const std::vector<bf16> x = RandomBf16(static_cast<size_t>(m) * s.k, rng);
    const std::vector<float> xf = ToFloat(x);
    DevArray<bf16> dx(x), scratch(static_cast<size_t>(m) * s.k), out(static_cast<size_t>(m) * inter);
    std::vector<float> row_major;
    for (bool tiled : Layouts(s)) {
      DevWeight dw(r, tiled);
      ASSERT_TRUE(
          GemvIntSiluMul(Canonical(dx, dw, scratch, m, s.k), dw.view, out.get(), m, inter, s.k, nullptr).ok());
      const std::vector<float> got = ToFloat(out.Download());
      if (tiled) {
        EXPECT_EQ(got, row_major) << "m " << m;
      }
      row_major = got;
      for (int row = 0; row < m; ++row) {
        for (int i = 0; i < inter; ++i) {
          const testing::SiluMulExpected e = testing::SiluMulReference(w, xf, row, i, inter, s.k, 8e-3);
          ASSERT_NEAR(got[row * inter + i], e.want, e.tol)
              << "m " << m << " row " << row << " column " << i << " tiled " << tiled << " gate " << e.gate << " up "
              << e.up;
        }
      }
    }
  }
}

TEST_P(GemvIntTest, DequantizeEqualsTheHostWeightsRoundedOnce) {
  TP_SKIP_WITHOUT_GPU();
  const Shape s = GetParam();
  std::mt19937 rng(s.n + s.k * 7);
  const IntRepacked r = RandomWeight(s.bits, s.n, s.k, s.group, s.act_order, rng);
  const std::vector<float> w = DequantizeRepacked(r);
  for (bool tiled : Layouts(s)) {
    DevWeight dw(r, tiled);
    DevArray<bf16> out(w.size());
    ASSERT_TRUE(DequantizeInt(dw.view, s.n, s.k, out.get(), nullptr).ok());
    const std::vector<bf16> got = out.Download();
    for (size_t i = 0; i < w.size(); ++i) {
      ASSERT_EQ(__bfloat162float(got[i]), __bfloat162float(__float2bfloat16(w[i]))) << i << " tiled " << tiled;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, GemvIntTest,
                         ::testing::Values(Shape{4, 64, 256, 128, false}, Shape{4, 100, 3584, 128, false},
                                           Shape{4, 38, 160, 32, true}, Shape{4, 96, 1536, 64, true},
                                           Shape{8, 64, 256, 128, false}, Shape{8, 70, 3584, 128, true},
                                           Shape{8, 40, 96, 32, false}, Shape{4, 2 * 129, 2080, 32, false},
                                           // int4 with groups a multiple of 128 takes the tensor-core
                                           // kernels (gemv_int_mma.cu): row counts off the 16-row tile,
                                           // per-channel groups, k split unevenly over a block's warps;
                                           // int8 per channel and act order on the scalar kernels.
                                           Shape{4, 2 * 37, 1152, 128, false}, Shape{4, 50, 3584, 3584, false},
                                           Shape{8, 2 * 45, 3584, 64, true}, Shape{8, 27, 1216, 1216, false},
                                           Shape{4, 40, 18944, 128, false},
                                           // Tiled as well (16-row tiles): the tensor-core kernel's
                                           // SiLU·mul with up rows off a tile boundary (inter 40), long
                                           // k split over 8 warps, and the scalar kernels reading tiles.
                                           Shape{4, 80, 1536, 128, true}, Shape{4, 48, 18944, 128, false},
                                           Shape{8, 32, 1024, 128, false}, Shape{4, 64, 512, 64, false},
                                           // int4 on the scalar kernels with rows of whole 32-chunk rounds.
                                           Shape{4, 48, 2048, 64, false},
                                           // 400 row tiles: the tensor-core kernel's 4-warp blocks.
                                           Shape{4, 6400, 256, 128, false}));

TEST(GemvIntShapeTest, RefusesShapesTheKernelsCannotStream) {
  IntWeightView w;
  uint32_t word = 0;
  float scale = 0;
  uint16_t zero = 0;
  w.codes = &word;
  w.scale = &scale;
  w.zero = &zero;
  EXPECT_TRUE(CheckIntShape(w, 8, 256).ok());
  // Decode rows only: on the tensor-core kernels 64 for int4 (groups of 128;
  // two passes) and 32 for int8 (groups a multiple of 64), 2 on the scalar
  // ones.
  const bool mma = EnvSwitch("TPSERVE_GEMV_INT_MMA", true);
  EXPECT_EQ(GemvIntRows(w), mma ? 64 : kGemvIntMaxRows);
  EXPECT_FALSE(GemvInt(nullptr, w, nullptr, nullptr, false, 65, 8, 256, nullptr).ok());
  EXPECT_FALSE(GemvIntSiluMul(nullptr, w, nullptr, 65, 4, 256, nullptr).ok());
  w.bits = 8;
  EXPECT_EQ(GemvIntRows(w), mma ? 32 : kGemvIntMaxRows);
  EXPECT_FALSE(GemvInt(nullptr, w, nullptr, nullptr, false, 33, 8, 256, nullptr).ok());
  EXPECT_FALSE(GemvIntSiluMul(nullptr, w, nullptr, 33, 4, 256, nullptr).ok());
  w.bits = 4;
  w.group = 64;
  EXPECT_EQ(GemvIntRows(w), kGemvIntMaxRows);
  EXPECT_FALSE(GemvInt(nullptr, w, nullptr, nullptr, false, kGemvIntMaxRows + 1, 8, 256, nullptr).ok());
  w.group = 128;
  EXPECT_FALSE(CheckIntShape(w, 8, 200).ok());  // k not a multiple of 32
  w.group = 48;
  EXPECT_FALSE(CheckIntShape(w, 8, 96).ok());
  w.group = 128;
  w.bits = 2;
  EXPECT_FALSE(CheckIntShape(w, 8, 256).ok());
}

TEST(GemvIntShapeTest, TilesOnlyWholeTilesOfTheTensorCoreKernelsWeights) {
  if (!EnvSwitch("TPSERVE_GEMV_INT_MMA", true)) GTEST_SKIP() << "TPSERVE_GEMV_INT_MMA=0: no weight is tiled";
  IntWeightView w;
  uint32_t word = 0, dst = 0;
  float scale = 0;
  uint16_t zero = 0;
  w.codes = &word;
  w.scale = &scale;
  w.zero = &zero;
  EXPECT_TRUE(IntTilesPay(w, 32, 3584));      // int4, groups of 128
  EXPECT_FALSE(IntTilesPay(w, 40, 3584));     // not whole 16-row tiles
  EXPECT_FALSE(TileIntCodes(w, 40, 3584, &dst, nullptr).ok());
  EXPECT_FALSE(TileIntCodes(w, 32, 3584, nullptr, nullptr).ok());
  w.bits = 8;
  w.group = 32;
  EXPECT_FALSE(TileIntCodes(w, 32, 96, &dst, nullptr).ok());  // rows of 6 chunks: not whole 64-byte tiles
  w.bits = 4;
  w.group = 64;
  EXPECT_FALSE(IntTilesPay(w, 32, 3584));     // the scalar kernels stream it
  w.group = 128;
  w.bits = 8;
  EXPECT_FALSE(IntTilesPay(w, 32, 3584));
  w.bits = 4;
  w.tiled = true;
  EXPECT_FALSE(IntTilesPay(w, 32, 3584));
  EXPECT_FALSE(TileIntCodes(w, 32, 3584, &dst, nullptr).ok());
}

// Every layer of the three fixtures, repacked and dequantized on the GPU,
// is common/quant's float32 dequantization rounded to bf16.
class DequantizeFixtureTest : public ::testing::TestWithParam<std::string> {};

TEST_P(DequantizeFixtureTest, EqualsCommonQuantRoundedToBf16) {
  TP_SKIP_WITHOUT_GPU();
  const std::optional<testing::QuantFixture> f = testing::OpenQuantFixture(GetParam());
  ASSERT_TRUE(f.has_value());
  for (const testing::FixtureLayer& l : f->layers) {
    auto q = QuantizedLinear::Open(f->config.quantization, *f->ckpt, l.prefix, l.out, l.in);
    ASSERT_TRUE(q.ok()) << q.status();
    auto r = RepackInt(q->packed_int(), 0, l.out, 0, l.in);
    ASSERT_TRUE(r.ok()) << l.prefix << ": " << r.status();
    const std::vector<float> want = *q->Dequantize(0, l.out, 0, l.in);
    DevWeight dw(*r);
    DevArray<bf16> out(want.size());
    ASSERT_TRUE(DequantizeInt(dw.view, l.out, l.in, out.get(), nullptr).ok());
    const std::vector<bf16> got = out.Download();
    for (size_t i = 0; i < want.size(); ++i) {
      ASSERT_EQ(__bfloat162float(got[i]), __bfloat162float(__float2bfloat16(want[i]))) << l.prefix << " " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, DequantizeFixtureTest,
                         ::testing::Values("tests/fixtures/tiny-qwen2-awq", "tests/fixtures/tiny-qwen2-gptq-int4",
                                           "tests/fixtures/tiny-qwen2-gptq-int8"));

}  // namespace
}  // namespace tpserve::worker::cuda
