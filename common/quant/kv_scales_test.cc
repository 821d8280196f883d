#include "common/quant/kv_scales.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "common/quant/test_checkpoint.h"
#include "common/safetensors/writer.h"
#include "gtest/gtest.h"

namespace tpserve {
namespace {

namespace st = safetensors;

constexpr auto Write = ::tpserve::testing::WriteCheckpoint;

st::TensorData Scalar(const std::string& name, float value, std::vector<int64_t> shape = {}) {
  return st::Float32Tensor(name, std::move(shape), {value});
}

// Every checkpoint needs one tensor; a norm stands for the model's weights.
st::TensorData Norm() { return st::Float32Tensor("model.norm.weight", {2}, {1, 1}); }

TEST(KvScalesTest, AbsentScalesAreOne) {
  auto ckpt = Write("absent", {Norm()});
  ASSERT_NE(ckpt, nullptr);
  auto s = ReadKvCacheScales(*ckpt, 3);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->k, std::vector<float>(3, 1.0f));
  EXPECT_EQ(s->v, std::vector<float>(3, 1.0f));
  EXPECT_EQ(s->tensors, 0);
  EXPECT_EQ(s->Describe(), "none (scale 1.0)");
}

TEST(KvScalesTest, PerLayerKAndVWithFallbacks) {
  // Layer 0: k and v; layer 1: the older single kv_scale; layer 2: k only
  // (v stays 1.0); layer 3: k_scale and kv_scale (k_scale wins for k, the
  // kv_scale serves v). Shapes [] and [1], f32 and bf16.
  st::TensorData bf16{"model.layers.2.self_attn.k_scale", st::DType::kBF16, {1}, {}};
  const uint16_t code = st::FloatToBf16(0.25f);
  bf16.bytes.resize(2);
  std::memcpy(bf16.bytes.data(), &code, 2);
  auto ckpt = Write("layers", {Norm(), Scalar("model.layers.0.self_attn.k_scale", 0.5f),
                               Scalar("model.layers.0.self_attn.v_scale", 3.0f, {1}),
                               Scalar("model.layers.1.self_attn.kv_scale", 2.0f), bf16,
                               Scalar("model.layers.3.self_attn.k_scale", 7.0f),
                               Scalar("model.layers.3.self_attn.kv_scale", 5.0f)});
  ASSERT_NE(ckpt, nullptr);
  auto s = ReadKvCacheScales(*ckpt, 4);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->k, (std::vector<float>{0.5f, 2.0f, 0.25f, 7.0f}));
  EXPECT_EQ(s->v, (std::vector<float>{3.0f, 2.0f, 1.0f, 5.0f}));
  EXPECT_EQ(s->k_found, 4);
  EXPECT_EQ(s->v_found, 3);
  EXPECT_EQ(s->tensors, 6);
  EXPECT_EQ(s->Describe(), "k scales of 4/4 layers, in [0.25, 7], v scales of 3/4 layers, in [1, 5]");
  // Layers past num_layers are not read.
  auto two = ReadKvCacheScales(*ckpt, 2);
  ASSERT_TRUE(two.ok()) << two.status();
  EXPECT_EQ(two->k, (std::vector<float>{0.5f, 2.0f}));
  EXPECT_EQ(two->tensors, 3);
}

TEST(KvScalesTest, BadValuesRefusedNamingTheTensor) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  int n = 0;
  for (float bad : {0.0f, -1.0f, inf, nan}) {
    auto ckpt = Write("bad" + std::to_string(n++), {Norm(), Scalar("model.layers.0.self_attn.k_scale", 1.0f),
                                                    Scalar("model.layers.1.self_attn.v_scale", bad)});
    ASSERT_NE(ckpt, nullptr);
    auto s = ReadKvCacheScales(*ckpt, 2);
    ASSERT_FALSE(s.ok()) << bad;
    EXPECT_NE(s.status().message().find("tensor \"model.layers.1.self_attn.v_scale\""), std::string::npos)
        << s.status();
    EXPECT_NE(s.status().message().find("finite and > 0"), std::string::npos) << s.status();
  }
}

TEST(KvScalesTest, BadShapeAndDtypeRefused) {
  // Per-head scales ([num_kv_heads]) are not a layout tpserve reads.
  auto shape = Write("shape", {Norm(), st::Float32Tensor("model.layers.0.self_attn.kv_scale", {2}, {1, 2})});
  ASSERT_NE(shape, nullptr);
  auto s = ReadKvCacheScales(*shape, 1);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("\"model.layers.0.self_attn.kv_scale\" has shape [2]"), std::string::npos)
      << s.status();
  EXPECT_NE(s.status().message().find("needs [] or [1]"), std::string::npos) << s.status();

  const int32_t one = 1;
  st::TensorData i32{"model.layers.0.self_attn.k_scale", st::DType::kI32, {}, {}};
  i32.bytes.resize(4);
  std::memcpy(i32.bytes.data(), &one, 4);
  auto dtype = Write("dtype", {Norm(), i32});
  ASSERT_NE(dtype, nullptr);
  auto d = ReadKvCacheScales(*dtype, 1);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("has dtype I32"), std::string::npos) << d.status();
}

TEST(KvScalesTest, Bf16CacheIgnoresTheScales) {
  // Not read at all with a bfloat16 cache: even a bad value loads (the
  // cache never uses it); with FP8 it is refused.
  auto ckpt = Write("bf16", {Norm(), Scalar("model.layers.0.self_attn.k_scale", 4.0f),
                             Scalar("model.layers.1.self_attn.k_scale", -1.0f)});
  ASSERT_NE(ckpt, nullptr);
  auto bf16 = LoadKvCacheScales(*ckpt, 2, /*fp8_cache=*/false);
  ASSERT_TRUE(bf16.ok()) << bf16.status();
  EXPECT_EQ(bf16->k, std::vector<float>(2, 1.0f));
  EXPECT_EQ(bf16->tensors, 0);
  EXPECT_FALSE(LoadKvCacheScales(*ckpt, 2, /*fp8_cache=*/true).ok());
}

}  // namespace
}  // namespace tpserve
