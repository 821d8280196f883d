#include "worker/cuda/memory_fit.h"

#include <string>

#include "gtest/gtest.h"
#include "worker/cuda/test_util.h"

namespace tpserve::worker::cuda {
namespace {

constexpr int64_t kGiB = int64_t{1} << 30;

ModelConfig Shape(const std::string& name) {
  auto c = LoadModelConfig("tests/fixtures/shapes/" + name + "/config.json");
  EXPECT_TRUE(c.ok()) << c.status();
  return *c;
}

Partition Part(const ModelConfig& c, int rank, int world) {
  auto p = MakePartition(c, rank, world);
  EXPECT_TRUE(p.ok()) << p.status();
  return *p;
}

// Memory of the cards as cudaMemGetInfo reports them (totals a little under
// the marketing size), with ~0.5 GiB taken by the CUDA context.
GpuMemory Card(const char* name, double total_gib) {
  GpuMemory g;
  g.name = name;
  g.total_bytes = static_cast<int64_t>(total_gib * kGiB);
  g.free_bytes = g.total_bytes - kGiB / 2;
  return g;
}
const GpuMemory kRtx4090 = Card("NVIDIA GeForce RTX 4090", 23.6);
const GpuMemory kL40s = Card("NVIDIA L40S", 44.4);
const GpuMemory kA800 = Card("NVIDIA A800-SXM4-80GB", 79.3);

TEST(RankWeightBytesTest, MatchesThePublishedParameterCount) {
  // Qwen2-7B-Instruct has 7,615,616,512 parameters (untied lm_head).
  const ModelConfig c = Shape("qwen2-7b-instruct");
  EXPECT_EQ(RankWeightBytes(c, Part(c, 0, 1)), 2 * int64_t{7615616512});
}

TEST(RankWeightBytesTest, RanksSplitEverythingButTheNorms) {
  // 72B at TP=8: 8 KV heads and a vocabulary that divides by 8, so only the
  // 2 * 80 + 1 norm vectors are held by every rank.
  const ModelConfig c = Shape("qwen2-72b-instruct");
  int64_t sum = 0;
  for (int r = 0; r < 8; ++r) sum += RankWeightBytes(c, Part(c, r, 8));
  const int64_t norms = 2 * int64_t{c.hidden_size} * (2 * c.num_hidden_layers + 1);
  EXPECT_EQ(sum - RankWeightBytes(c, Part(c, 0, 1)), 7 * norms);
}

// FP8 halves the linear layers (plus a float per row); embedding, lm_head,
// norms and biases stay bf16. 72B's weights (135.4 GiB in bf16, ~70 GiB in
// FP8) then fit one 80 GB card, and two L40S where bf16 needs four.
TEST(RankWeightBytesTest, Fp8HalvesTheLinearLayers) {
  const ModelConfig c = Shape("qwen2-72b-instruct");
  const Partition p = Part(c, 0, 1);
  const int64_t h = c.hidden_size, v = c.vocab_size, layers = c.num_hidden_layers;
  const int64_t bf16 = RankWeightBytes(c, p), fp8 = RankWeightBytes(c, p, WeightQuant::kFp8);
  const int64_t untouched = 2 * (2 * v * h + h + layers * (2 * h + (c.num_attention_heads + 2 * c.num_key_value_heads) *
                                                                        int64_t{c.head_dim}));
  const int64_t rows = layers * ((c.num_attention_heads + 2 * c.num_key_value_heads) * int64_t{c.head_dim} + 2 * h +
                                 2 * int64_t{c.intermediate_size});
  EXPECT_EQ(fp8, untouched + (bf16 - untouched) / 2 + 4 * rows);
  EXPECT_EQ(CheckWeightsFit(c, p, kA800).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(CheckWeightsFit(c, p, kA800, WeightQuant::kFp8).ok());
  const absl::Status s = CheckWeightsFit(c, p, kL40s, WeightQuant::kFp8);
  ASSERT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(std::string(s.message()).find(" is 2 "), std::string::npos) << s;
}

// AWQ/GPTQ int4 kept packed: half a byte per weight plus a float scale and a
// 16-bit zero point per group of 128, on the group-padded intermediate
// dimension (72B at TP 2: 29,568 -> 29,696, 14,848 per rank). 72B int4 then
// fits one 80 GB card.
TEST(RankWeightBytesTest, PackedInt4IsAQuarterOfBf16PlusGroupScales) {
  ModelConfig c = Shape("qwen2-72b-instruct");
  c.quantization.method = QuantMethod::kAwq;
  c.quantization.bits = 4;
  c.quantization.group_size = 128;
  const Partition p = Part(c, 0, 2), last = Part(c, 1, 2);
  EXPECT_EQ(p.intermediate, 14848);
  EXPECT_EQ(p.intermediate_real, 14848);
  EXPECT_EQ(last.intermediate_begin, 14848);
  EXPECT_EQ(last.intermediate_real, 14720);
  const int64_t h = c.hidden_size, layers = c.num_hidden_layers;
  const int64_t qkv_rows = (p.num_heads + 2 * int64_t{p.num_kv_heads}) * c.head_dim;
  const int64_t linear = layers * (qkv_rows * h + h * p.num_heads * c.head_dim + 3 * h * int64_t{p.intermediate});
  const int64_t bf16 = RankWeightBytes(c, p), int4 = RankWeightBytes(c, p, WeightQuant::kInt);
  EXPECT_EQ(int4, bf16 - 2 * linear + linear / 2 + linear / 128 * 6);
  EXPECT_EQ(CheckWeightsFit(c, Part(c, 0, 1), kA800).code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(CheckWeightsFit(c, Part(c, 0, 1), kA800, WeightQuant::kInt).ok());
}

TEST(CheckWeightsFitTest, SmallModelsFitEveryCard) {
  const ModelConfig c7 = Shape("qwen2-7b-instruct");
  for (const GpuMemory& gpu : {kRtx4090, kL40s, kA800}) {
    EXPECT_TRUE(CheckWeightsFit(c7, Part(c7, 0, 1), gpu).ok()) << gpu.name;
  }
}

TEST(CheckWeightsFitTest, Names72BTensorParallelSizeThatFits) {
  const ModelConfig c = Shape("qwen2-72b-instruct");
  // 135.4 GiB at TP=1, 67.7 at 2, 33.9 at 4, 17.0 at 8.
  const struct {
    GpuMemory gpu;
    int fits_at;
  } cases[] = {{kA800, 2}, {kL40s, 4}, {kRtx4090, 8}};
  for (const auto& k : cases) {
    const absl::Status s = CheckWeightsFit(c, Part(c, 0, 1), k.gpu);
    ASSERT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << k.gpu.name;
    const std::string m(s.message());
    EXPECT_NE(m.find("135.4 GiB of weights at --tensor-parallel-size 1"), std::string::npos) << m;
    EXPECT_NE(m.find(k.gpu.name), std::string::npos) << m;
    EXPECT_NE(m.find(" is " + std::to_string(k.fits_at) + " "), std::string::npos) << m;
    EXPECT_NE(m.find("Raise --tensor-parallel-size"), std::string::npos) << m;
    for (int world : {1, 2, 4, 8}) {
      EXPECT_EQ(CheckWeightsFit(c, Part(c, 0, world), k.gpu).ok(), world >= k.fits_at)
          << k.gpu.name << " TP=" << world;
    }
  }
}

TEST(KvCacheTest, BlocksAreTheBudgetOverTheBlockSize) {
  MemoryPlan p;
  p.total_bytes = 80 * kGiB;
  p.fraction = 0.9;  // 72 GiB
  p.used_bytes = 70 * kGiB;
  p.bytes_per_block = 2 << 20;
  EXPECT_EQ(KvCacheBlocks(p), 1024);  // 2 GiB / 2 MiB
  p.used_bytes = 73 * kGiB;
  EXPECT_EQ(KvCacheBlocks(p), 0);
}

// The plan of a deployment on each card: 7B on one 24 GB card, 72B on four
// 48 GB cards and on eight 80 GB A800s (the reference deployment), with
// ~3 GiB of activations and runtime.
TEST(KvCacheTest, PlansOn24And48And80GbCards) {
  const ModelConfig c7 = Shape("qwen2-7b-instruct"), c72 = Shape("qwen2-72b-instruct");
  const struct {
    const ModelConfig* config;
    GpuMemory gpu;
    int world;
    int max_model_len;
    bool fits;
  } cases[] = {
      {&c7, kRtx4090, 1, 32768, true},  {&c7, kRtx4090, 1, 131072, false},
      {&c72, kL40s, 4, 32768, true},    {&c72, kA800, 8, 32768, true},
      {&c72, kA800, 2, 32768, false},
  };
  for (const auto& k : cases) {
    const Partition part = Part(*k.config, 0, k.world);
    MemoryPlan p;
    p.total_bytes = k.gpu.total_bytes;
    p.weight_bytes = RankWeightBytes(*k.config, part);
    p.used_bytes = p.weight_bytes + 3 * kGiB;
    p.bytes_per_block = KvBlockBytes(*k.config, part, p.block_size, KvCacheDtype::kBf16);
    p.max_model_len = k.max_model_len;
    p.max_num_batched_tokens = 8192;
    const absl::Status s = CheckKvCacheFits(*k.config, k.world, p);
    EXPECT_EQ(s.ok(), k.fits) << k.gpu.name << " TP=" << k.world << ": " << s;
    EXPECT_EQ(s.ok(), int64_t{KvCacheBlocks(p)} * p.block_size >= k.max_model_len);
    if (!s.ok()) {
      const std::string m(s.message());
      for (const char* flag : {"--max-model-len", "--gpu-memory-utilization", "--tensor-parallel-size"}) {
        EXPECT_NE(m.find(flag), std::string::npos) << m;
      }
    }
  }
}

// --kv-cache-dtype fp8: one byte per element, so twice the blocks. 7B on a
// 24 GB card: the bf16 cache holds ~75k tokens, short of a 128k sequence;
// the FP8 cache holds ~150k and the same deployment fits.
TEST(KvCacheTest, Fp8CacheDoublesTheBlocks) {
  const ModelConfig c = Shape("qwen2-7b-instruct");
  const Partition part = Part(c, 0, 1);
  // 28 layers x 16 tokens x 4 KV heads x 128 x (K, V).
  EXPECT_EQ(KvBlockBytes(c, part, 16, KvCacheDtype::kBf16), 917504);
  EXPECT_EQ(KvBlockBytes(c, part, 16, KvCacheDtype::kFp8E4m3), 458752);
  EXPECT_EQ(KvBlockBytes(c, Part(c, 0, 2), 16, KvCacheDtype::kFp8E4m3), 229376);  // 2 KV heads per rank
  MemoryPlan p;
  p.total_bytes = kRtx4090.total_bytes;
  p.weight_bytes = RankWeightBytes(c, part);
  p.used_bytes = p.weight_bytes + 3 * kGiB;
  p.max_model_len = 131072;
  p.max_num_batched_tokens = 8192;
  p.bytes_per_block = KvBlockBytes(c, part, p.block_size, KvCacheDtype::kBf16);
  const int bf16_blocks = KvCacheBlocks(p);
  EXPECT_FALSE(CheckKvCacheFits(c, 1, p).ok());
  p.bytes_per_block = KvBlockBytes(c, part, p.block_size, KvCacheDtype::kFp8E4m3);
  const int fp8_blocks = KvCacheBlocks(p);
  EXPECT_NEAR(fp8_blocks, 2 * bf16_blocks, 1);
  EXPECT_GT(int64_t{bf16_blocks} * 16, 70000);
  EXPECT_LT(int64_t{bf16_blocks} * 16, 131072);
  EXPECT_TRUE(CheckKvCacheFits(c, 1, p).ok());
}

TEST(KvCacheTest, WeightsAboveTheUtilizationNameTheFlags) {
  const ModelConfig c = Shape("qwen2-72b-instruct");
  MemoryPlan p;
  p.total_bytes = 80 * kGiB;
  p.fraction = 0.5;  // 40 GiB, under TP=2's 67.7 GiB
  p.weight_bytes = RankWeightBytes(c, Part(c, 0, 2));
  p.used_bytes = p.weight_bytes + kGiB;
  p.bytes_per_block = 1 << 20;
  p.max_model_len = 4096;
  const absl::Status s = CheckKvCacheFits(c, 2, p);
  ASSERT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  const std::string m(s.message());
  EXPECT_NE(m.find("exceed --gpu-memory-utilization 0.5"), std::string::npos) << m;
  EXPECT_NE(m.find("the smallest that fits within 40.0 GiB is 4"), std::string::npos) << m;
}

// RankWeightBytes against what the loader really allocates.
TEST(RankWeightBytesTest, MatchesDummyWeightsOnTheDevice) {
  TP_SKIP_WITHOUT_GPU();
  auto c = LoadModelConfig("tests/fixtures/tiny-qwen2/config.json");
  ASSERT_TRUE(c.ok()) << c.status();
  for (int world : {1, 2}) {
    for (int rank = 0; rank < world; ++rank) {
      const Partition p = Part(*c, rank, world);
      for (WeightQuant q : {WeightQuant::kNone, WeightQuant::kFp8}) {
        auto w = MakeDummyWeights(*c, p, 1, q);
        ASSERT_TRUE(w.ok()) << w.status();
        EXPECT_EQ(w->bytes, RankWeightBytes(*c, p, q)) << "rank " << rank << " of " << world;
      }
      ModelConfig int4 = *c;  // random packed int4 / int8 codes, groups of 128
      int4.quantization.method = QuantMethod::kGptq;
      int4.quantization.group_size = 128;
      for (int bits : {4, 8}) {
        int4.quantization.bits = bits;
        auto w = MakeDummyWeights(int4, p, 1, WeightQuant::kInt);
        ASSERT_TRUE(w.ok()) << w.status();
        EXPECT_TRUE(w->layers[0].down.packed_int());
        EXPECT_EQ(w->bytes, RankWeightBytes(int4, p, WeightQuant::kInt)) << bits << "-bit rank " << rank;
      }
    }
  }
}

}  // namespace
}  // namespace tpserve::worker::cuda
