#include "common/model/tensor_parallel.h"

#include <algorithm>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace tpserve {
namespace {

ModelConfig Config(int heads, int kv, int inter) {
  ModelConfig c;
  c.num_attention_heads = heads;
  c.num_key_value_heads = kv;
  c.intermediate_size = inter;
  return c;
}

TEST(CheckTensorParallelTest, HeadsAndColumnsDivideKvHeadsDivideOrReplicate) {
  const ModelConfig qwen7b = Config(28, 4, 18944);
  for (int tp : {1, 2, 4}) EXPECT_TRUE(CheckTensorParallel(qwen7b, tp).ok()) << tp;
  const absl::Status s = CheckTensorParallel(qwen7b, 8);
  ASSERT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("does not divide the model's num_attention_heads (28)"), std::string::npos) << s;
  EXPECT_NE(s.message().find("sizes that work: 1, 2, 4"), std::string::npos) << s;
  EXPECT_EQ(s.message().find("1, 2, 4,"), std::string::npos) << s;
  // 72B: TP=8 divides its 8 KV heads; 2 KV heads are replicated at TP=8.
  EXPECT_TRUE(CheckTensorParallel(Config(64, 8, 29568), 8).ok());
  EXPECT_TRUE(CheckTensorParallel(Config(16, 2, 4096), 8).ok());  // KV heads replicated
  EXPECT_NE(CheckTensorParallel(Config(12, 3, 4096), 2).message().find("neither divides nor is a multiple of the model's num_key_value_heads (3)"),
            std::string::npos);
  EXPECT_NE(CheckTensorParallel(Config(8, 8, 100), 8).message().find("intermediate_size (100)"), std::string::npos);
  EXPECT_FALSE(CheckTensorParallel(qwen7b, 0).ok());
}

// Every rank's share together covers each head and column exactly once; KV
// heads, when replicated, go to consecutive ranks.
TEST(SplitHeadsTest, SharesCoverTheModel) {
  struct Case {
    ModelConfig config;
    int world;
  };
  const Case cases[] = {{Config(28, 4, 18944), 4}, {Config(16, 2, 4096), 8}, {Config(8, 8, 64), 1}};
  for (const Case& c : cases) {
    std::vector<int> heads(c.config.num_attention_heads), kv(c.config.num_key_value_heads);
    int columns = 0;
    for (int r = 0; r < c.world; ++r) {
      const HeadSplit h = SplitHeads(c.config, r, c.world);
      for (int i = 0; i < h.num_heads; ++i) ++heads[h.first_head + i];
      for (int i = 0; i < h.num_kv_heads; ++i) ++kv[h.first_kv_head + i];
      columns += h.intermediate;
    }
    const int kv_copies = std::max(1, c.world / c.config.num_key_value_heads);
    for (int n : heads) EXPECT_EQ(n, 1) << c.world;
    for (int n : kv) EXPECT_EQ(n, kv_copies) << c.world;
    EXPECT_EQ(columns, c.config.intermediate_size);
  }
  // 2 KV heads over 8 ranks: ranks 0-3 hold head 0, ranks 4-7 head 1.
  EXPECT_EQ(SplitHeads(Config(16, 2, 4096), 3, 8).first_kv_head, 0);
  EXPECT_EQ(SplitHeads(Config(16, 2, 4096), 4, 8).first_kv_head, 1);
}

}  // namespace
}  // namespace tpserve
