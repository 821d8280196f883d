// Dequantization on hand-packed words: each expected value is written out
// from the format's documented bit layout, not computed by a packer.
#include "common/quant/dequant.h"

#include <cmath>
#include <cstdint>
#include <vector>

#include "gtest/gtest.h"

namespace tpserve {
namespace {

const uint8_t* Bytes(const std::vector<uint32_t>& v) {
  return reinterpret_cast<const uint8_t*>(v.data());
}

// A GPTQ layer over hand-packed words (v1 zero offset).
PackedIntWeight Gptq(int bits, int64_t out, int64_t in, int group_size,
                     const std::vector<uint32_t>& qweight, const std::vector<uint32_t>& qzeros,
                     const std::vector<float>& scales) {
  PackedIntWeight w;
  w.bits = bits;
  w.out = out;
  w.in = in;
  w.group_size = group_size;
  w.qweight = Bytes(qweight);
  w.qzeros = Bytes(qzeros);
  w.scales = scales.data();
  w.zero_offset = 1;
  return w;
}

// AWQ: a word holds 8 output columns, column 8c + kAwqOrder[i] in nibble i.
// Columns 0..7 with codes 0..7 are nibbles (low to high) 0,2,4,6,1,3,5,7.
TEST(DequantTest, AwqInterleavedNibbles) {
  const std::vector<uint32_t> qweight = {0x75316420u,   // input 0: column j has code j
                                         0x00000000u};  // input 1: all codes 0
  // zeros: column j zero point j (same interleave) for group 0 only.
  const std::vector<uint32_t> qzeros = {0x75316420u};
  std::vector<float> scales(8);
  for (int o = 0; o < 8; ++o) scales[o] = 0.5f * (o + 1);
  PackedIntWeight w;
  w.awq = true;
  w.bits = 4;
  w.out = 8;
  w.in = 2;
  w.group_size = 2;
  w.qweight = Bytes(qweight);
  w.qzeros = Bytes(qzeros);
  w.scales = scales.data();
  std::vector<float> dst(16);
  DequantizePacked(w, 0, 8, 0, 2, dst.data());
  for (int o = 0; o < 8; ++o) {
    EXPECT_EQ(dst[o * 2 + 0], 0.0f) << o;                   // code o - zero o
    EXPECT_EQ(dst[o * 2 + 1], -o * scales[o]) << o;         // code 0 - zero o
  }
  // Column 1 sits in nibble 4, not nibble 1: code 3 there must show in column 1.
  const std::vector<uint32_t> one = {0x00030000u};
  const std::vector<uint32_t> zero = {0u};
  w.in = 1;
  w.qweight = Bytes(one);
  w.qzeros = Bytes(zero);
  std::vector<float> col(8);
  DequantizePacked(w, 0, 8, 0, 1, col.data());
  for (int o = 0; o < 8; ++o) EXPECT_EQ(col[o], o == 1 ? 3.0f * scales[1] : 0.0f) << o;
}

// GPTQ int4: qweight packs 8 consecutive INPUTS per word (sequential), qzeros
// 8 outputs per word; v1 checkpoints store zero - 1.
TEST(DequantTest, GptqInt4SequentialWithV1Offset) {
  const std::vector<uint32_t> qweight = {0x76543210u, 0xFEDCBA98u};  // [in/8 = 1, out = 2]
  const std::vector<uint32_t> qzeros = {0x00000037u};  // out 0 stores 7, out 1 stores 3
  const std::vector<float> scales = {0.25f, 2.0f};
  PackedIntWeight w = Gptq(4, 2, 8, 8, qweight, qzeros, scales);
  std::vector<float> dst(16);
  DequantizePacked(w, 0, 2, 0, 8, dst.data());
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(dst[i], (i - 8) * 0.25f) << i;            // codes 0..7, zero 7 + 1
    EXPECT_EQ(dst[8 + i], (8 + i - 4) * 2.0f) << i;     // codes 8..15, zero 3 + 1
  }
  // gptq_v2: no offset.
  w.zero_offset = 0;
  DequantizePacked(w, 1, 2, 3, 5, dst.data());
  EXPECT_EQ(dst[0], (11 - 3) * 2.0f);
  EXPECT_EQ(dst[1], (12 - 3) * 2.0f);
}

// GPTQ int8: 4 inputs per word (bits 8j), 4 outputs per zero word.
TEST(DequantTest, GptqInt8) {
  // [in/4 = 1, out = 4]: output o's word holds inputs 0..3.
  const std::vector<uint32_t> qweight = {0x04030201u, 0x80808080u, 0xFF000000u, 0x0000007Fu};
  const std::vector<uint32_t> qzeros = {0x7F7F7F7Du};  // out 0 stores 125, others 127
  const std::vector<float> scales = {1.0f, 1.0f, 1.0f, 0.5f};
  const PackedIntWeight w = Gptq(8, 4, 4, /*group_size=*/0, qweight, qzeros, scales);  // per channel
  std::vector<float> dst(16);
  DequantizePacked(w, 0, 4, 0, 4, dst.data());
  const float want[16] = {1 - 126, 2 - 126, 3 - 126, 4 - 126,  // zero 125 + 1
                          0,       0,       0,       0,        // 128 - 128
                          -128,    -128,    -128,    127,      // 0, 0, 0, 255
                          -0.5f,   -64,     -64,     -64};     // (127, 0, 0, 0) - 128, x0.5
  for (int k = 0; k < 16; ++k) EXPECT_EQ(dst[k], want[k]) << k;
}

// desc_act: g_idx, not i / group_size, picks each input's scale and zero.
TEST(DequantTest, GptqGIdxPicksGroups) {
  const std::vector<uint32_t> qw(8, 0x99999999u);  // [in/8 = 1, out = 8], every code 9
  const std::vector<uint32_t> qzeros = {0x77777777u, 0x33333333u};  // group 0: 8, group 1: 4
  std::vector<float> scales(16);
  for (int o = 0; o < 8; ++o) {
    scales[o] = 1.0f;       // group 0
    scales[8 + o] = 0.5f;   // group 1
  }
  const std::vector<int32_t> g_idx = {1, 0, 1, 1, 0, 0, 1, 0};
  PackedIntWeight w = Gptq(4, 8, 8, 4, qw, qzeros, scales);
  w.g_idx = g_idx.data();
  std::vector<float> dst(64);
  DequantizePacked(w, 0, 8, 0, 8, dst.data());
  for (int o = 0; o < 8; ++o) {
    for (int i = 0; i < 8; ++i) {
      EXPECT_EQ(dst[o * 8 + i], g_idx[i] == 1 ? (9 - 4) * 0.5f : (9 - 8) * 1.0f) << o << "," << i;
    }
  }
}

TEST(DequantTest, Fp8E4M3Values) {
  EXPECT_EQ(Fp8E4M3ToFloat(0x00), 0.0f);
  EXPECT_EQ(Fp8E4M3ToFloat(0x38), 1.0f);       // exponent 7 = bias
  EXPECT_EQ(Fp8E4M3ToFloat(0x39), 1.125f);     // mantissa 1/8
  EXPECT_EQ(Fp8E4M3ToFloat(0xC0), -2.0f);
  EXPECT_EQ(Fp8E4M3ToFloat(0x7E), 448.0f);     // largest finite
  EXPECT_EQ(Fp8E4M3ToFloat(0x08), 0.015625f);  // smallest normal 2^-6
  EXPECT_EQ(Fp8E4M3ToFloat(0x01), 0.001953125f);  // smallest subnormal 2^-9
  EXPECT_EQ(Fp8E4M3ToFloat(0x07), 7 * 0.001953125f);
  EXPECT_TRUE(std::isnan(Fp8E4M3ToFloat(0x7F)));
  EXPECT_TRUE(std::isnan(Fp8E4M3ToFloat(0xFF)));
  EXPECT_EQ(Fp8E4M3ToFloat(0x78), 256.0f);     // exponent 15 is finite in e4m3fn
}

TEST(DequantTest, Fp8ScalesAndSlices) {
  const std::vector<uint8_t> w = {0x38, 0x40, 0xC0,   // 1, 2, -2
                                  0x39, 0x00, 0x7E};  // 1.125, 0, 448
  const float per_tensor = 0.5f;
  std::vector<float> dst(6);
  DequantizeFp8(w.data(), 3, &per_tensor, false, 0, 2, 0, 3, dst.data());
  EXPECT_EQ(dst, (std::vector<float>{0.5f, 1.0f, -1.0f, 0.5625f, 0.0f, 224.0f}));
  const float per_channel[2] = {2.0f, 0.25f};
  std::vector<float> cols(2);
  DequantizeFp8(w.data(), 3, per_channel, true, 0, 2, 2, 3, cols.data());  // column 2
  EXPECT_EQ(cols, (std::vector<float>{-4.0f, 112.0f}));
}

}  // namespace
}  // namespace tpserve
