#include "common/quant/quant_linear.h"

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "common/quant/test_checkpoint.h"
#include "common/safetensors/writer.h"
#include "gtest/gtest.h"

namespace tpserve {
namespace {

namespace st = safetensors;

st::TensorData Raw(const std::string& name, st::DType dtype, std::vector<int64_t> shape,
                   const void* data, size_t nbytes) {
  st::TensorData t{name, dtype, std::move(shape), {}};
  t.bytes.resize(nbytes);
  std::memcpy(t.bytes.data(), data, nbytes);
  return t;
}

st::TensorData I32(const std::string& name, std::vector<int64_t> shape,
                   const std::vector<uint32_t>& v) {
  return Raw(name, st::DType::kI32, std::move(shape), v.data(), v.size() * 4);
}

constexpr auto Write = ::tpserve::testing::WriteCheckpoint;

QuantConfig Gptq4(bool desc_act) {
  QuantConfig c;
  c.method = QuantMethod::kGptq;
  c.bits = 4;
  c.group_size = 8;
  c.desc_act = desc_act;
  c.zero_offset = 1;
  return c;
}

// GPTQ int4 layer [out 8, in 16], two groups: input i has code i % 16 for
// every output, group g stores zero 7 (+1 = 8) and scale g + 1.
std::vector<st::TensorData> GptqLayer(const std::vector<uint32_t>& g_idx) {
  std::vector<uint32_t> qweight(2 * 8);
  for (int o = 0; o < 8; ++o) {
    qweight[0 * 8 + o] = 0x76543210u;  // inputs 0..7
    qweight[1 * 8 + o] = 0xFEDCBA98u;  // inputs 8..15
  }
  std::vector<float> scales(16);
  for (int o = 0; o < 8; ++o) scales[o] = 1.0f, scales[8 + o] = 2.0f;
  return {I32("l.qweight", {2, 8}, qweight), I32("l.qzeros", {2, 1}, {0x77777777u, 0x77777777u}),
          st::Float32Tensor("l.scales", {2, 8}, scales), I32("l.g_idx", {16}, g_idx)};
}

TEST(QuantLinearTest, GptqDequantizesRowsAndColumns) {
  std::vector<uint32_t> g_idx(16);
  for (int i = 0; i < 16; ++i) g_idx[i] = i / 8;
  auto ckpt = Write("gptq_ok", GptqLayer(g_idx));
  ASSERT_NE(ckpt, nullptr);
  EXPECT_TRUE(IsQuantizedLinear(Gptq4(false), *ckpt, "l"));
  auto q = QuantizedLinear::Open(Gptq4(false), *ckpt, "l", 8, 16);
  ASSERT_TRUE(q.ok()) << q.status();
  auto rows = q->Dequantize(2, 4, 0, 16);
  ASSERT_TRUE(rows.ok());
  for (int r = 0; r < 2; ++r) {
    for (int i = 0; i < 16; ++i) EXPECT_EQ((*rows)[r * 16 + i], (i - 8) * (i < 8 ? 1.0f : 2.0f));
  }
  auto cols = q->Dequantize(0, 8, 12, 14);
  ASSERT_TRUE(cols.ok());
  for (int o = 0; o < 8; ++o) EXPECT_EQ((*cols)[o * 2], 8.0f) << o;  // (12 - 8) * 2
  EXPECT_FALSE(q->Dequantize(0, 9, 0, 1).ok());
}

TEST(QuantLinearTest, GptqDescActUsesGIdxAndChecksIt) {
  std::vector<uint32_t> g_idx(16);
  for (int i = 0; i < 16; ++i) g_idx[i] = 1 - i / 8;  // groups swapped
  auto ckpt = Write("gptq_desc", GptqLayer(g_idx));
  auto q = QuantizedLinear::Open(Gptq4(true), *ckpt, "l", 8, 16);
  ASSERT_TRUE(q.ok()) << q.status();
  auto row = q->Dequantize(0, 1, 0, 16);
  ASSERT_TRUE(row.ok());
  EXPECT_EQ((*row)[0], -16.0f);  // input 0 in group 1: (0 - 8) * 2
  EXPECT_EQ((*row)[15], 7.0f);   // input 15 in group 0: (15 - 8) * 1
  g_idx[3] = 2;
  auto bad = Write("gptq_bad_gidx", GptqLayer(g_idx));
  auto err = QuantizedLinear::Open(Gptq4(true), *bad, "l", 8, 16);
  ASSERT_FALSE(err.ok());
  EXPECT_NE(std::string(err.status().message()).find("\"l.g_idx\" element 3 is 2; groups are [0, 2)"),
            std::string::npos)
      << err.status();
}

TEST(QuantLinearTest, ShapeDtypeAndMissingErrors) {
  std::vector<uint32_t> g_idx(16, 0);
  auto ckpt = Write("gptq_shape", GptqLayer(g_idx));
  // The config says 32 inputs: every tensor's shape is wrong; the first is named.
  auto wrong = QuantizedLinear::Open(Gptq4(false), *ckpt, "l", 8, 32);
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(std::string(wrong.status().message())
                .find("tensor \"l.qweight\" has shape [2, 8]; gptq int4, group 8 needs [4, 8]"),
            std::string::npos)
      << wrong.status();
  auto missing = QuantizedLinear::Open(Gptq4(false), *ckpt, "other", 8, 16);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(std::string(missing.status().message()).find("other.qweight"), std::string::npos);
  auto layer = GptqLayer(g_idx);
  layer[2] = I32("l.scales", {2, 8}, std::vector<uint32_t>(16, 1));
  auto ints = Write("gptq_dtype", layer);
  auto dtype = QuantizedLinear::Open(Gptq4(false), *ints, "l", 8, 16);
  ASSERT_FALSE(dtype.ok());
  EXPECT_NE(std::string(dtype.status().message()).find("\"l.scales\" has dtype I32; gptq int4, "
                                                       "group 8 needs F16/BF16/F32"),
            std::string::npos)
      << dtype.status();
  auto unpackable = QuantizedLinear::Open(Gptq4(false), *ckpt, "l", 12, 16);
  EXPECT_FALSE(unpackable.ok());
}

TEST(QuantLinearTest, Fp8PerTensorAndPerChannel) {
  QuantConfig c;
  c.method = QuantMethod::kFp8;
  c.bits = 8;
  const std::vector<uint8_t> w = {0x38, 0x40, 0xC0, 0x39};  // [2, 2]: 1, 2, -2, 1.125
  const float scalar = 0.5f;
  const std::vector<float> channel = {2.0f, 4.0f};
  auto ckpt = Write("fp8", {Raw("a.weight", st::DType::kF8E4M3, {2, 2}, w.data(), 4),
                            Raw("a.weight_scale", st::DType::kF32, {}, &scalar, 4),
                            Raw("b.weight", st::DType::kF8E4M3, {2, 2}, w.data(), 4),
                            st::Float32Tensor("b.weight_scale", {2, 1}, channel),
                            Raw("c.weight", st::DType::kF8E4M3, {2, 2}, w.data(), 4),
                            st::Float32Tensor("c.weight_scale", {2}, {1.0f, 0.0f}),
                            st::Float32Tensor("d.weight", {2, 2}, {1, 2, 3, 4})});
  ASSERT_NE(ckpt, nullptr);
  EXPECT_TRUE(IsQuantizedLinear(c, *ckpt, "a"));
  EXPECT_FALSE(IsQuantizedLinear(c, *ckpt, "d"));  // left unquantized (ignored_layers)
  auto a = QuantizedLinear::Open(c, *ckpt, "a", 2, 2);
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(*a->Dequantize(0, 2, 0, 2), (std::vector<float>{0.5f, 1.0f, -1.0f, 0.5625f}));
  auto b = QuantizedLinear::Open(c, *ckpt, "b", 2, 2);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(*b->Dequantize(0, 2, 1, 2), (std::vector<float>{4.0f, 4.5f}));
  auto zero = QuantizedLinear::Open(c, *ckpt, "c", 2, 2);
  ASSERT_FALSE(zero.ok());
  EXPECT_NE(std::string(zero.status().message()).find("\"c.weight_scale\" element 1 is 0"),
            std::string::npos)
      << zero.status();
  c.static_activations = true;  // static checkpoints must carry input_scale
  auto no_input_scale = QuantizedLinear::Open(c, *ckpt, "a", 2, 2);
  ASSERT_FALSE(no_input_scale.ok());
  EXPECT_NE(std::string(no_input_scale.status().message()).find("a.input_scale"), std::string::npos);
}

}  // namespace
}  // namespace tpserve
