#include "common/safetensors/dtype.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "gtest/gtest.h"

namespace tpserve::safetensors {
namespace {

TEST(DTypeTest, NamesRoundTrip) {
  for (DType d : {DType::kBF16, DType::kF16, DType::kF32, DType::kF64, DType::kI32, DType::kI64,
                  DType::kBool}) {
    EXPECT_EQ(ParseDType(DTypeName(d)), d);
  }
  EXPECT_FALSE(ParseDType("Q4_K").has_value());
  EXPECT_EQ(DTypeSize(DType::kBF16), 2u);
  EXPECT_EQ(DTypeSize(DType::kF64), 8u);
}

TEST(DTypeTest, Bf16KnownValues) {
  EXPECT_EQ(Bf16ToFloat(0x3F80), 1.0f);
  EXPECT_EQ(Bf16ToFloat(0xC000), -2.0f);
  EXPECT_EQ(Bf16ToFloat(0x3EAB), 0.333984375f);
  EXPECT_EQ(FloatToBf16(1.0f), 0x3F80);
  // 1 + 2^-8 is halfway between two bf16 values: ties to even (1.0).
  EXPECT_EQ(FloatToBf16(1.0f + 1.0f / 256), 0x3F80);
  EXPECT_EQ(FloatToBf16(1.0f + 3.0f / 256), 0x3F82);
}

TEST(DTypeTest, F16KnownValues) {
  EXPECT_EQ(F16ToFloat(0x3C00), 1.0f);
  EXPECT_EQ(F16ToFloat(0xC000), -2.0f);
  EXPECT_EQ(F16ToFloat(0x7BFF), 65504.0f);
  EXPECT_EQ(F16ToFloat(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(F16ToFloat(0x8000), -0.0f);
  EXPECT_TRUE(std::signbit(F16ToFloat(0x8000)));
  EXPECT_EQ(F16ToFloat(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(F16ToFloat(0x7E00)));
}

TEST(DTypeTest, ConvertUnalignedBuffers) {
  uint8_t buf[1 + 3 * 8];
  const double values[3] = {1.5, -2.25, 1e-3};
  std::memcpy(buf + 1, values, sizeof(values));
  float out[3];
  ConvertToFloat32(DType::kF64, buf + 1, 3, out);
  EXPECT_EQ(out[0], 1.5f);
  EXPECT_EQ(out[1], -2.25f);
  EXPECT_EQ(out[2], static_cast<float>(1e-3));
  const uint16_t halves[2] = {0x3C00, 0x4200};  // 1, 3
  std::memcpy(buf + 1, halves, 4);
  ConvertToFloat32(DType::kF16, buf + 1, 2, out);
  EXPECT_EQ(out[0], 1.0f);
  EXPECT_EQ(out[1], 3.0f);
}

}  // namespace
}  // namespace tpserve::safetensors
