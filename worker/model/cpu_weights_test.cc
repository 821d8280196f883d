#include "worker/model/cpu_weights.h"

#include <string>

#include "gtest/gtest.h"

namespace tpserve::worker {
namespace {

ModelConfig Config(int heads, int kv_heads, int inter, int vocab) {
  ModelConfig c;
  c.vocab_size = vocab;
  c.hidden_size = heads * 4;
  c.intermediate_size = inter;
  c.num_hidden_layers = 1;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv_heads;
  c.head_dim = 4;
  return c;
}

TEST(TpPlanTest, SplitsAndReplicates) {
  struct Case {
    int heads, kv, world, rank;
    int head_begin, num_heads, kv_begin, num_kv;
  };
  const Case cases[] = {
      {4, 2, 1, 0, 0, 4, 0, 2},  {4, 2, 2, 1, 2, 2, 1, 1},  {4, 2, 4, 1, 1, 1, 0, 1},
      {4, 2, 4, 2, 2, 1, 1, 1},  {64, 8, 8, 5, 40, 8, 5, 1}, {14, 2, 2, 1, 7, 7, 1, 1},
      {2, 1, 2, 1, 1, 1, 0, 1},
  };
  for (const Case& c : cases) {
    auto plan = MakeTpPlan(Config(c.heads, c.kv, 64, 128), c.rank, c.world);
    ASSERT_TRUE(plan.ok()) << plan.status();
    EXPECT_EQ(plan->head_begin, c.head_begin);
    EXPECT_EQ(plan->num_heads, c.num_heads);
    EXPECT_EQ(plan->kv_head_begin, c.kv_begin);
    EXPECT_EQ(plan->num_kv_heads, c.num_kv);
    // Every local query head maps to a KV head this rank holds.
    for (int h = 0; h < plan->num_heads; ++h) {
      const int kv = (plan->head_begin + h) / plan->group_size - plan->kv_head_begin;
      EXPECT_GE(kv, 0);
      EXPECT_LT(kv, plan->num_kv_heads);
    }
    EXPECT_EQ(plan->vocab, 128 / c.world);
    EXPECT_EQ(plan->vocab_begin, c.rank * 128 / c.world);
  }
}

TEST(TpPlanTest, RefusesIndivisibleSizesNamingThem) {
  struct Case {
    ModelConfig config;
    int world;
    std::string needle;
  };
  const Case cases[] = {
      {Config(4, 2, 64, 128), 3, "num_attention_heads (4)"},
      {Config(4, 2, 66, 128), 4, "intermediate_size (66)"},
      {Config(4, 2, 64, 130), 4, "vocab_size (130)"},
      {Config(6, 3, 64, 128), 2, "num_key_value_heads (3)"},
  };
  for (const Case& c : cases) {
    auto plan = MakeTpPlan(c.config, 0, c.world);
    ASSERT_FALSE(plan.ok()) << c.needle;
    EXPECT_NE(std::string(plan.status().message()).find(c.needle), std::string::npos)
        << plan.status();
  }
  EXPECT_FALSE(MakeTpPlan(Config(4, 2, 64, 128), 2, 2).ok());  // rank out of range
}

// Rank slices of a real checkpoint reassemble the TP=1 tensors exactly.
TEST(CpuWeightsTest, RankSlicesReassembleFullTensors) {
  auto config = LoadModelConfig("tests/fixtures/tiny-qwen2");
  ASSERT_TRUE(config.ok());
  auto ckpt = safetensors::Checkpoint::Open("tests/fixtures/tiny-qwen2");
  ASSERT_TRUE(ckpt.ok());
  auto source = MakeCheckpointSource(std::move(*ckpt));
  auto full = LoadCpuWeights(*config, *MakeTpPlan(*config, 0, 1), *source);
  ASSERT_TRUE(full.ok()) << full.status();
  auto r0 = LoadCpuWeights(*config, *MakeTpPlan(*config, 0, 2), *source);
  auto r1 = LoadCpuWeights(*config, *MakeTpPlan(*config, 1, 2), *source);
  ASSERT_TRUE(r0.ok() && r1.ok());
  const auto& f = full->layers[1];
  // Column-parallel: rows concatenate.
  std::vector<float> q = r0->layers[1].q_w;
  q.insert(q.end(), r1->layers[1].q_w.begin(), r1->layers[1].q_w.end());
  EXPECT_EQ(q, f.q_w);
  std::vector<float> kb = r0->layers[1].k_b;
  kb.insert(kb.end(), r1->layers[1].k_b.begin(), r1->layers[1].k_b.end());
  EXPECT_EQ(kb, f.k_b);
  // Row-parallel: each row of o_proj is rank 0's half then rank 1's half.
  const int h = 256, half = 128;
  for (int row = 0; row < h; ++row) {
    for (int c = 0; c < half; ++c) {
      ASSERT_EQ(r0->layers[1].o_w[row * half + c], f.o_w[row * 256 + c]);
      ASSERT_EQ(r1->layers[1].o_w[row * half + c], f.o_w[row * 256 + half + c]);
    }
  }
  EXPECT_EQ(r0->bytes() + r1->bytes() - 4 * (256 * 5),  // norms are replicated
            full->bytes());
}

TEST(CpuWeightsTest, ShapeMismatchNamesTensor) {
  auto config = LoadModelConfig("tests/fixtures/tiny-qwen2");
  ASSERT_TRUE(config.ok());
  config->intermediate_size = 384;
  auto ckpt = safetensors::Checkpoint::Open("tests/fixtures/tiny-qwen2");
  ASSERT_TRUE(ckpt.ok());
  auto source = MakeCheckpointSource(std::move(*ckpt));
  auto w = LoadCpuWeights(*config, *MakeTpPlan(*config, 0, 1), *source);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(std::string(w.status().message()).find("mlp.gate_proj.weight"), std::string::npos);
}

}  // namespace
}  // namespace tpserve::worker
