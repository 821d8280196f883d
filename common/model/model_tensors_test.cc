#include "common/model/model_tensors.h"

#include <set>

#include "common/safetensors/checkpoint.h"
#include "gtest/gtest.h"

namespace tpserve {
namespace {

// The expected list must match both real fixture checkpoints exactly: every
// required tensor present with its shape, and nothing in the files unlisted.
TEST(ModelTensorsTest, MatchesFixtureCheckpoints) {
  for (const char* dir : {"tests/fixtures/tiny-qwen2", "tests/fixtures/tiny-qwen2-chat"}) {
    auto config = LoadModelConfig(dir);
    ASSERT_TRUE(config.ok()) << config.status();
    auto ckpt = safetensors::Checkpoint::Open(dir);
    ASSERT_TRUE(ckpt.ok()) << ckpt.status();
    std::set<std::string> listed;
    for (const ExpectedTensor& t : ExpectedTensors(*config)) {
      listed.insert(t.name);
      if (t.optional && !(*ckpt)->Has(t.name)) continue;
      auto view = (*ckpt)->GetWithShape(t.name, t.shape);
      EXPECT_TRUE(view.ok()) << dir << ": " << view.status();
    }
    for (const std::string& name : (*ckpt)->names()) EXPECT_TRUE(listed.count(name)) << name;
  }
}

TEST(ModelTensorsTest, LlamaHasNoBiases) {
  ModelConfig c;
  c.vocab_size = 10;
  c.hidden_size = 8;
  c.intermediate_size = 16;
  c.num_hidden_layers = 1;
  c.num_attention_heads = 2;
  c.num_key_value_heads = 1;
  c.head_dim = 4;
  c.attention_bias = false;
  const auto tensors = ExpectedTensors(c);
  EXPECT_EQ(tensors.size(), 1u + 9u + 2u);
  for (const auto& t : tensors) EXPECT_EQ(t.name.find("bias"), std::string::npos);
  EXPECT_EQ(tensors[2].name, "model.layers.0.self_attn.q_proj.weight");
  EXPECT_EQ(tensors[3].shape, (std::vector<int64_t>{4, 8}));  // k_proj: 1 kv head
  EXPECT_FALSE(tensors.back().optional);
}

}  // namespace
}  // namespace tpserve
