// Quantized checkpoints (tests/fixtures/tiny-qwen2-{awq,gptq-int4,gptq-int8,
// fp8}) on the CPU backend: the weight source reproduces the reference
// quantizer's float32 dequantization bit for bit, and TP=2/4 equal TP=1.
// The HF golden comparison is in cpu_backend_golden_test.
#include <string>

#include "common/model/model_config.h"
#include "common/safetensors/safetensors_file.h"
#include "common/safetensors/tensor_read.h"
#include "gtest/gtest.h"
#include "worker/model/testing/backend_driver.h"
#include "worker/model/testing/goldens.h"
#include "worker/model/testing/thread_communicator.h"
#include "worker/model/weight_source.h"

namespace tpserve::worker {
namespace {

class QuantFixtureTest : public ::testing::TestWithParam<std::string> {};

// goldens.safetensors holds ref.<name>: the script's own dequantization of
// k_proj (whole) and down_proj (first 8 rows), float32.
TEST_P(QuantFixtureTest, DequantizedWeightsAreExact) {
  const std::string dir = GetParam();
  auto config = LoadModelConfig(dir);
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_TRUE(config->quantization.enabled());
  auto ckpt = safetensors::Checkpoint::Open(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status();
  auto source = MakeCheckpointSource(std::move(*ckpt), config->quantization);
  auto goldens = safetensors::SafetensorsFile::Open(dir + "/goldens.safetensors");
  ASSERT_TRUE(goldens.ok()) << goldens.status();
  auto ref = [&](const std::string& name) {
    auto view = (*goldens)->Get("ref." + name);
    EXPECT_TRUE(view.ok()) << view.status();
    return safetensors::ReadFloat32(*view).value_or(std::vector<float>{});
  };

  const std::string k = "model.layers.1.self_attn.k_proj.weight";  // [128, 256]
  EXPECT_TRUE(source->Has(k));
  auto k_all = source->Rows(k, {128, 256}, 0, 128);
  ASSERT_TRUE(k_all.ok()) << k_all.status();
  EXPECT_EQ(*k_all, ref(k));
  auto k_rows = source->Rows(k, {128, 256}, 64, 128);  // a TP=2 rank's KV head
  ASSERT_TRUE(k_rows.ok()) << k_rows.status();
  EXPECT_TRUE(std::equal(k_rows->begin(), k_rows->end(), ref(k).begin() + 64 * 256));

  const std::string down = "model.layers.0.mlp.down_proj.weight";  // [256, 512], ref rows 0..7
  const std::vector<float> down_ref = ref(down);
  ASSERT_EQ(down_ref.size(), 8u * 512);
  for (const auto& [begin, end] : {std::pair{0, 512}, std::pair{256, 512}, std::pair{128, 256}}) {
    auto cols = source->Columns(down, {256, 512}, begin, end);  // row-parallel slices
    ASSERT_TRUE(cols.ok()) << cols.status();
    const int width = end - begin;
    for (int r = 0; r < 8; ++r) {
      for (int c = 0; c < width; ++c) {
        ASSERT_EQ((*cols)[r * width + c], down_ref[r * 512 + begin + c])
            << dir << " row " << r << " column " << begin + c;
      }
    }
  }
  // Unquantized tensors pass through; a wrong shape is still refused.
  EXPECT_TRUE(source->Rows("model.norm.weight", {256}, 0, 256).ok());
  EXPECT_FALSE(source->Rows(k, {256, 256}, 0, 1).ok());
  EXPECT_FALSE(source->Has("model.layers.9.self_attn.k_proj.weight"));
}

// Loads `world` CPU ranks of `dir` on threads and generates 6 greedy tokens.
absl::StatusOr<std::vector<testing::DriveResult>> RunTp(
    const std::string& dir, int world, const std::vector<std::vector<int32_t>>& prompts) {
  testing::ThreadCommGroup comm_group(world);
  std::vector<std::unique_ptr<Communicator>> comms = comm_group.MakeCommunicators();
  std::vector<std::unique_ptr<Backend>> backends;
  std::vector<Backend*> ranks;
  LoadOptions options;
  options.model_path = dir;
  for (int r = 0; r < world; ++r) {
    auto b = testing::LoadCpu(options, 64, world > 1 ? comms[r].get() : nullptr);
    if (!b.ok()) return b.status();
    ranks.push_back(b->get());
    backends.push_back(std::move(*b));
  }
  testing::DriveOptions drive;
  drive.chunk = 7;
  drive.num_blocks = 64;
  return testing::Drive(ranks, prompts, 6, SamplingParams(), drive);
}

// Column-parallel rows of packed outputs and row-parallel (down_proj) input
// columns that cut through scale groups / g_idx must give the same model.
TEST_P(QuantFixtureTest, TensorParallelEqualsTp1) {
  const std::string dir = GetParam();
  auto goldens = testing::LoadGoldens(dir);
  ASSERT_TRUE(goldens.ok()) << goldens.status();
  std::vector<std::vector<int32_t>> prompts;
  for (size_t i = 1; i < 4 && i < goldens->size(); ++i) prompts.push_back((*goldens)[i].input_ids);
  auto ref = RunTp(dir, 1, prompts);
  ASSERT_TRUE(ref.ok()) << ref.status();
  for (int world : {2, 4}) {
    auto got = RunTp(dir, world, prompts);
    ASSERT_TRUE(got.ok()) << got.status();
    for (size_t i = 0; i < prompts.size(); ++i) {
      EXPECT_EQ((*got)[i].tokens, (*ref)[i].tokens) << dir << " TP=" << world << " prompt " << i;
      EXPECT_LE(testing::RelativeError((*got)[i].prompt_logits.data(),
                                       (*ref)[i].prompt_logits.data(),
                                       (*ref)[i].prompt_logits.size()),
                1e-5)
          << dir << " TP=" << world << " prompt " << i;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, QuantFixtureTest,
                         ::testing::Values("tests/fixtures/tiny-qwen2-awq",
                                           "tests/fixtures/tiny-qwen2-gptq-int4",
                                           "tests/fixtures/tiny-qwen2-gptq-int8",
                                           "tests/fixtures/tiny-qwen2-fp8"));

}  // namespace
}  // namespace tpserve::worker
