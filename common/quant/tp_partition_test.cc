#include "common/quant/tp_partition.h"

#include "common/model/model_config.h"
#include "gtest/gtest.h"

namespace tpserve {
namespace {

// Every rank's slice is whole groups, the slices tile [0, padded) in order,
// and the real rows are exactly [0, size).
void ExpectTiles(const GroupAlignedPartition& p) {
  int64_t real = 0, next = 0;
  for (int r = 0; r < p.tp; ++r) {
    auto s = SliceForRank(p, r);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_EQ(s->begin, next);
    EXPECT_EQ((s->end - s->begin) % p.alignment, 0);
    EXPECT_EQ(s->begin % p.alignment, 0);
    EXPECT_GE(s->num_real(), 0);
    if (s->num_padding() > 0 && s->num_real() > 0) {
      EXPECT_EQ(s->real_end, p.size) << "padding only at the end";
    }
    real += s->num_real();
    next = s->end;
  }
  EXPECT_EQ(next, p.padded_size);
  EXPECT_EQ(real, p.size);
}

// Qwen2-72B (intermediate 29,568 = 231 groups of 128) with group 128: odd
// group count, so TP 2/4/8 pad to 232 groups (29,696), the last rank carrying
// the 128 padding rows.
TEST(TpPartitionTest, Qwen2_72BShapes) {
  auto config = LoadModelConfig("tests/fixtures/shapes/qwen2-72b-instruct");
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->intermediate_size, 29568);
  QuantConfig gptq;
  gptq.method = QuantMethod::kGptq;
  gptq.bits = 4;
  gptq.group_size = 128;
  const int64_t align = IntermediateAlignment(gptq);
  EXPECT_EQ(align, 128);
  struct Want {
    int tp;
    int64_t padded, per_rank, last_real;
  };
  for (const Want& w : {Want{1, 29568, 29568, 29568}, Want{2, 29696, 14848, 14720},
                        Want{4, 29696, 7424, 7296}, Want{8, 29696, 3712, 3584}}) {
    auto p = PartitionGroupAligned(config->intermediate_size, align, w.tp);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(p->padded_size, w.padded) << "tp " << w.tp;
    EXPECT_EQ(p->per_rank, w.per_rank) << "tp " << w.tp;
    auto last = SliceForRank(*p, w.tp - 1);
    ASSERT_TRUE(last.ok());
    EXPECT_EQ(last->num_real(), w.last_real) << "tp " << w.tp;
    EXPECT_EQ(last->num_padding(), w.per_rank - w.last_real) << "tp " << w.tp;
    ExpectTiles(*p);
  }
  // FP8 needs no group alignment: 29,568 splits evenly over 2/4/8.
  QuantConfig fp8;
  fp8.method = QuantMethod::kFp8;
  auto p = PartitionGroupAligned(29568, IntermediateAlignment(fp8), 8);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->padding(), 0);
}

// Qwen2-7B (18,944 = 148 groups): only TP 8 pads (to 152 groups).
TEST(TpPartitionTest, Qwen2_7BAndSmallCases) {
  auto config = LoadModelConfig("tests/fixtures/shapes/qwen2-7b-instruct");
  ASSERT_TRUE(config.ok()) << config.status();
  for (int tp : {1, 2, 4}) {
    auto p = PartitionGroupAligned(config->intermediate_size, 128, tp);
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(p->padding(), 0) << tp;
    ExpectTiles(*p);
  }
  auto p8 = PartitionGroupAligned(config->intermediate_size, 128, 8);
  ASSERT_TRUE(p8.ok());
  EXPECT_EQ(p8->padded_size, 152 * 128);
  ExpectTiles(*p8);
  // Padding larger than one rank's slice: 3 groups over 8 ranks leaves the
  // last five ranks all padding.
  auto tiny = PartitionGroupAligned(3 * 64, 64, 8);
  ASSERT_TRUE(tiny.ok());
  EXPECT_EQ(tiny->per_rank, 64);
  auto r5 = SliceForRank(*tiny, 5);
  ASSERT_TRUE(r5.ok());
  EXPECT_EQ(r5->num_real(), 0);
  ExpectTiles(*tiny);
  // GPTQ per channel int8 aligns to its pack factor (4 inputs per word).
  QuantConfig int8;
  int8.method = QuantMethod::kGptq;
  int8.bits = 8;
  EXPECT_EQ(IntermediateAlignment(int8), 4);
}

TEST(TpPartitionTest, BadInput) {
  EXPECT_FALSE(PartitionGroupAligned(0, 128, 2).ok());
  EXPECT_FALSE(PartitionGroupAligned(512, 0, 2).ok());
  EXPECT_FALSE(PartitionGroupAligned(512, 128, 0).ok());
  auto p = PartitionGroupAligned(512, 128, 2);
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(SliceForRank(*p, 2).ok());
  EXPECT_FALSE(SliceForRank(*p, -1).ok());
}

}  // namespace
}  // namespace tpserve
