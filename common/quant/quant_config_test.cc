#include "common/quant/quant_config.h"

#include <string>

#include <nlohmann/json.hpp>

#include "common/model/model_config.h"
#include "gtest/gtest.h"

namespace tpserve {
namespace {

using nlohmann::json;

absl::StatusOr<QuantConfig> Parse(const std::string& text) {
  return ParseQuantConfig(json::parse(text), "config.json");
}

void ExpectError(const std::string& text, const std::string& needle) {
  auto q = Parse(text);
  ASSERT_FALSE(q.ok()) << text;
  EXPECT_EQ(q.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(std::string(q.status().message()).find(needle), std::string::npos)
      << q.status() << " lacks " << needle;
}

// Qwen2-72B-Instruct-AWQ's block.
TEST(QuantConfigTest, QwenAwq) {
  auto q = Parse(R"({"bits": 4, "group_size": 128, "modules_to_not_convert": null,
                     "quant_method": "awq", "version": "gemm", "zero_point": true})");
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->method, QuantMethod::kAwq);
  EXPECT_EQ(q->bits, 4);
  EXPECT_EQ(q->group_size, 128);
  EXPECT_EQ(q->pack_factor(), 8);
  EXPECT_EQ(q->zero_offset, 0);
  EXPECT_EQ(q->Describe(), "awq int4, group 128");
}

// Qwen2-72B-Instruct-GPTQ-Int4/Int8's block (abridged: unknown keys ignored).
TEST(QuantConfigTest, QwenGptq) {
  auto q = Parse(R"({"batch_size": 1, "bits": 8, "damp_percent": 0.01, "desc_act": false,
                     "exllama_config": {"version": 1}, "group_size": 128, "quant_method": "gptq",
                     "sym": true, "true_sequential": true, "use_exllama": true})");
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->method, QuantMethod::kGptq);
  EXPECT_EQ(q->bits, 8);
  EXPECT_EQ(q->pack_factor(), 4);
  EXPECT_EQ(q->zero_offset, 1);  // v1 checkpoints store zero - 1
  EXPECT_FALSE(q->desc_act);
  auto per_channel = Parse(R"({"quant_method": "gptq", "bits": 4, "group_size": -1,
                               "desc_act": true, "checkpoint_format": "gptq_v2"})");
  ASSERT_TRUE(per_channel.ok()) << per_channel.status();
  EXPECT_EQ(per_channel->group_size, 0);
  EXPECT_EQ(per_channel->num_groups(3584), 1);
  EXPECT_EQ(per_channel->zero_offset, 0);
  EXPECT_EQ(per_channel->Describe(), "gptq int4, per channel, desc_act");
}

TEST(QuantConfigTest, Fp8) {
  auto q = Parse(R"({"quant_method": "fp8", "activation_scheme": "static",
                     "ignored_layers": ["lm_head"]})");
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->method, QuantMethod::kFp8);
  EXPECT_TRUE(q->static_activations);
  auto dynamic = Parse(R"({"quant_method": "FP8"})");
  ASSERT_TRUE(dynamic.ok()) << dynamic.status();
  EXPECT_FALSE(dynamic->static_activations);
}

TEST(QuantConfigTest, ErrorsNameKeyAndValue) {
  ExpectError(R"({"bits": 4})", "\"quant_method\" is missing");
  ExpectError(R"({"quant_method": "bitsandbytes"})", "\"quant_method\" is \"bitsandbytes\"");
  ExpectError(R"({"quant_method": "compressed-tensors", "format": "float-quantized"})",
              "\"compressed-tensors\", which is not supported (supported: awq, gptq, fp8)");
  ExpectError(R"({"quant_method": "awq", "bits": 3})", "\"bits\" is 3; AWQ supports only 4");
  ExpectError(R"({"quant_method": "awq", "version": "gemv"})", "\"version\" is \"gemv\"");
  ExpectError(R"({"quant_method": "awq", "zero_point": false})", "\"zero_point\" is false");
  ExpectError(R"({"quant_method": "awq", "group_size": 0})", "\"group_size\" is 0");
  ExpectError(R"({"quant_method": "gptq", "bits": 2})", "\"bits\" is 2; GPTQ supports 4 and 8");
  ExpectError(R"({"quant_method": "gptq", "group_size": 100})", "\"group_size\" is 100");
  ExpectError(R"({"quant_method": "gptq", "desc_act": "yes"})", "\"desc_act\" must be a boolean");
  ExpectError(R"({"quant_method": "gptq", "checkpoint_format": "marlin"})",
              "\"checkpoint_format\" is \"marlin\"");
  ExpectError(R"({"quant_method": "fp8", "weight_block_size": [128, 128]})",
              "\"weight_block_size\" is [128,128]; block-wise");
  ExpectError(R"({"quant_method": "fp8", "activation_scheme": "tensor"})",
              "\"activation_scheme\" is \"tensor\"");
  ExpectError(R"("awq")", "must be an object");
}

// The hook in config.json parsing: a field, validated once.
TEST(QuantConfigTest, ModelConfigCarriesIt) {
  const std::string base = R"({"architectures": ["Qwen2ForCausalLM"], "vocab_size": 64,
      "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
      "num_attention_heads": 2)";
  auto plain = ParseModelConfig(base + "}", "config.json");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_FALSE(plain->quantization.enabled());
  auto awq = ParseModelConfig(base + R"(, "quantization_config": {"quant_method": "awq",
      "bits": 4, "group_size": 32, "version": "gemm", "zero_point": true}})", "config.json");
  ASSERT_TRUE(awq.ok()) << awq.status();
  EXPECT_EQ(awq->quantization.method, QuantMethod::kAwq);
  auto bad = ParseModelConfig(base + R"(, "quantization_config": {"quant_method": "gguf"}})",
                              "m/config.json");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(std::string(bad.status().message()).find("m/config.json: quantization_config key "
                                                     "\"quant_method\" is \"gguf\""),
            std::string::npos)
      << bad.status();
}

}  // namespace
}  // namespace tpserve
