// The canonical int4/int8 layout built on the host (CI, no GPU): repacking
// random AWQ / GPTQ tensors and the three quantized fixtures, then
// dequantizing the repacked form, gives common/quant's float32 weights bit
// for bit, for whole layers and tensor-parallel slices.
#include "worker/cuda/int_repack.h"

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/quant/quant_linear.h"
#include "gtest/gtest.h"
#include "worker/cuda/quant_fixture.h"

namespace tpserve::worker::cuda {
namespace {

// Random packed tensors of one layer in AWQ or GPTQ layout (the packing is
// plain random words: every bit pattern is a valid code).
struct RandomLayer {
  std::vector<uint32_t> qweight, qzeros;
  std::vector<float> scales;
  std::vector<int32_t> g_idx;
  PackedIntWeight w;

  RandomLayer(bool awq, int bits, int64_t out, int64_t in, int group_size, bool act_order, uint32_t seed) {
    std::mt19937 rng(seed);
    const int pf = 32 / bits;
    const int64_t groups = group_size > 0 ? in / group_size : 1;
    qweight.resize(awq ? in * out / pf : in / pf * out);
    qzeros.resize(groups * out / pf);
    for (auto& v : qweight) v = rng();
    for (auto& v : qzeros) v = rng();
    std::uniform_real_distribution<float> d(0.001f, 0.05f);
    scales.resize(groups * out);
    for (auto& s : scales) s = d(rng);
    w.awq = awq;
    w.bits = bits;
    w.out = out;
    w.in = in;
    w.group_size = group_size;
    w.qweight = reinterpret_cast<const uint8_t*>(qweight.data());
    w.qzeros = reinterpret_cast<const uint8_t*>(qzeros.data());
    w.scales = scales.data();
    w.zero_offset = awq ? 0 : 1;
    if (act_order) {  // each group keeps group_size members, scattered
      for (int64_t i = 0; i < in; ++i) g_idx.push_back(static_cast<int32_t>(i / group_size));
      std::shuffle(g_idx.begin(), g_idx.end(), rng);
      w.g_idx = g_idx.data();
    }
  }

  std::vector<float> Reference(int64_t o0, int64_t o1, int64_t i0, int64_t i1) const {
    std::vector<float> f((o1 - o0) * (i1 - i0));
    DequantizePacked(w, o0, o1, i0, i1, f.data());
    return f;
  }
};

struct Case {
  bool awq;
  int bits;
  int group;
  bool act_order;
};

class RepackRandomTest : public ::testing::TestWithParam<Case> {};

TEST_P(RepackRandomTest, DequantizesExactlyWholeAndSliced) {
  const Case c = GetParam();
  const int64_t out = 96, in = 384;
  RandomLayer l(c.awq, c.bits, out, in, c.group, c.act_order, 7);
  auto whole = RepackInt(l.w, 0, out, 0, in);
  ASSERT_TRUE(whole.ok()) << whole.status();
  EXPECT_EQ(DequantizeRepacked(*whole), l.Reference(0, out, 0, in));
  EXPECT_EQ(whole->perm.empty(), !c.act_order);
  EXPECT_EQ(whole->codes.size(), static_cast<size_t>(out * in * c.bits / 32));
  // A column-parallel rank's rows and, without act order, a row-parallel
  // rank's whole groups of inputs.
  auto rows = RepackInt(l.w, 32, 64, 0, in);
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(DequantizeRepacked(*rows), l.Reference(32, 64, 0, in));
  if (!c.act_order) {
    const int64_t g = c.group > 0 ? c.group : 128;
    auto cols = RepackInt(l.w, 0, out, g, in);
    ASSERT_TRUE(cols.ok()) << cols.status();
    EXPECT_EQ(DequantizeRepacked(*cols), l.Reference(0, out, g, in));
  }
}

INSTANTIATE_TEST_SUITE_P(Formats, RepackRandomTest,
                         ::testing::Values(Case{true, 4, 128, false}, Case{true, 4, 64, false},
                                           Case{false, 4, 128, false}, Case{false, 4, 32, true},
                                           Case{false, 4, 128, true}, Case{false, 8, 128, false},
                                           Case{false, 8, 0, false}, Case{false, 8, 64, true}));

TEST(RepackTest, PaddingInputsAndRowsAreZeroWeights) {
  RandomLayer l(true, 4, 64, 256, 128, false, 3);
  auto r = RepackInt(l.w, 0, 64, 128, 256, /*pad_inputs=*/128);  // the last rank of a padded split
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->k, 256);
  const std::vector<float> ref = l.Reference(0, 64, 128, 256);
  std::vector<float> got = DequantizeRepacked(*r);
  for (int o = 0; o < 64; ++o) {
    for (int i = 0; i < 256; ++i) {
      ASSERT_EQ(got[o * 256 + i], i < 128 ? ref[o * 128 + i] : 0.0f) << o << " " << i;
    }
  }
  AppendZeroRows(*r, 32);
  got = DequantizeRepacked(*r);
  ASSERT_EQ(got.size(), 96u * 256);
  EXPECT_TRUE(std::all_of(got.begin() + 64 * 256, got.end(), [](float v) { return v == 0.0f; }));
}

TEST(RepackTest, StackedPiecesKeepTheirRows) {
  RandomLayer a(false, 4, 64, 256, 64, false, 1), b(false, 4, 32, 256, 64, false, 2);
  IntRepacked stacked;
  ASSERT_TRUE(AppendRows(stacked, *RepackInt(a.w, 0, 64, 0, 256)).ok());
  ASSERT_TRUE(AppendRows(stacked, *RepackInt(b.w, 0, 32, 0, 256)).ok());
  std::vector<float> want = a.Reference(0, 64, 0, 256), rb = b.Reference(0, 32, 0, 256);
  want.insert(want.end(), rb.begin(), rb.end());
  EXPECT_EQ(DequantizeRepacked(stacked), want);
  // A different group size cannot share the layout.
  RandomLayer c(false, 4, 32, 256, 128, false, 3);
  EXPECT_EQ(AppendRows(stacked, *RepackInt(c.w, 0, 32, 0, 256)).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(RepackTest, RefusesLayoutsTheKernelsCannotStream) {
  RandomLayer small_groups(true, 4, 16, 64, 16, false, 1);  // groups of 16 inputs
  EXPECT_EQ(RepackInt(small_groups.w, 0, 16, 0, 64).status().code(), absl::StatusCode::kFailedPrecondition);
  RandomLayer l(false, 4, 16, 256, 64, false, 1);
  EXPECT_EQ(RepackInt(l.w, 0, 16, 32, 256).status().code(), absl::StatusCode::kFailedPrecondition);  // mid-group
  RandomLayer act(false, 4, 16, 256, 64, true, 1);
  // A row-parallel slice of scattered act-order groups holds parts of groups.
  EXPECT_EQ(RepackInt(act.w, 0, 16, 0, 128).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(RepackInt(l.w, 0, 17, 0, 256).status().code(), absl::StatusCode::kOutOfRange);
}

// The fixtures' layers (tiny-qwen2: hidden 256, intermediate 512), whole and
// as TP=2 slices, equal QuantizedLinear::Dequantize bit for bit.
class RepackFixtureTest : public ::testing::TestWithParam<std::string> {};

TEST_P(RepackFixtureTest, EveryLayerRepacksExactly) {
  const std::optional<testing::QuantFixture> f = testing::OpenQuantFixture(GetParam());
  ASSERT_TRUE(f.has_value());
  const bool desc_act = f->config.quantization.desc_act;
  for (const testing::FixtureLayer& l : f->layers) {
    auto q = QuantizedLinear::Open(f->config.quantization, *f->ckpt, l.prefix, l.out, l.in);
    ASSERT_TRUE(q.ok()) << q.status();
    const PackedIntWeight w = q->packed_int();
    auto r = RepackInt(w, 0, l.out, 0, l.in);
    ASSERT_TRUE(r.ok()) << l.prefix << ": " << r.status();
    EXPECT_EQ(DequantizeRepacked(*r), *q->Dequantize(0, l.out, 0, l.in)) << l.prefix;
    auto half_rows = RepackInt(w, l.out / 2, l.out, 0, l.in);
    ASSERT_TRUE(half_rows.ok()) << l.prefix << ": " << half_rows.status();
    EXPECT_EQ(DequantizeRepacked(*half_rows), *q->Dequantize(l.out / 2, l.out, 0, l.in)) << l.prefix;
    auto half_cols = RepackInt(w, 0, l.out, l.in / 2, l.in);
    if (desc_act && !half_cols.ok()) {
      // Act-order groups may scatter over the inputs, so that half of them
      // is no set of whole groups: such a slice stays bf16 on the GPU.
      EXPECT_EQ(half_cols.status().code(), absl::StatusCode::kFailedPrecondition) << l.prefix;
    } else {
      ASSERT_TRUE(half_cols.ok()) << l.prefix << ": " << half_cols.status();
      EXPECT_EQ(DequantizeRepacked(*half_cols), *q->Dequantize(0, l.out, l.in / 2, l.in)) << l.prefix;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, RepackFixtureTest,
                         ::testing::Values("tests/fixtures/tiny-qwen2-awq", "tests/fixtures/tiny-qwen2-gptq-int4",
                                           "tests/fixtures/tiny-qwen2-gptq-int8"));

}  // namespace
}  // namespace tpserve::worker::cuda
