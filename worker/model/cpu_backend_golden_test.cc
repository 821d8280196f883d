// The CPU backend against the HF reference goldens of the tiny checkpoints
// (tiny-qwen2-yarn: YaRN, prompts to 450 tokens over an original context of
// 128; tiny-qwen2-{awq,gptq-int4,gptq-int8,fp8}: quantized checkpoints,
// goldens from HF on the dequantized weights).
#include <iostream>
#include <string>

#include "gtest/gtest.h"
#include "worker/model/cpu_backend.h"
#include "worker/model/testing/backend_driver.h"
#include "worker/model/testing/goldens.h"

namespace tpserve::worker {
namespace {

using testing::GoldenPrompt;

class GoldenTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    auto goldens = testing::LoadGoldens(GetParam());
    ASSERT_TRUE(goldens.ok()) << goldens.status();
    goldens_ = std::move(*goldens);
    LoadOptions options;
    options.model_path = GetParam();
    auto backend = testing::LoadCpu(options, 64);
    ASSERT_TRUE(backend.ok()) << backend.status();
    backend_ = std::move(*backend);
  }
  std::vector<GoldenPrompt> goldens_;
  std::unique_ptr<Backend> backend_;
};

// Whole-prompt prefill, then 24 greedy decode steps, one prompt at a time.
TEST_P(GoldenTest, LastLogitsAndGreedyMatch) {
  std::vector<std::vector<int32_t>> prompts;
  for (const auto& g : goldens_) prompts.push_back(g.input_ids);
  testing::DriveOptions options;
  options.batch_all = false;
  options.num_blocks = 64;
  auto results = testing::Drive({backend_.get()}, prompts, 24, SamplingParams(), options);
  ASSERT_TRUE(results.ok()) << results.status();
  for (size_t i = 0; i < goldens_.size(); ++i) {
    const auto& g = goldens_[i];
    const auto& r = (*results)[i];
    ASSERT_EQ(r.prompt_logits.size(), g.last_logits.size());
    const double err =
        testing::RelativeError(r.prompt_logits.data(), g.last_logits.data(), g.last_logits.size());
    EXPECT_LE(err, 1e-4) << "prompt " << i;
    std::cout << GetParam() << " p" << i << " last_logits relative error " << err << "\n";
    EXPECT_EQ(testing::ArgMax(r.prompt_logits.data(), r.prompt_logits.size()), g.argmax.back());
    EXPECT_EQ(r.tokens, g.greedy) << "prompt " << i;
  }
}

// Logits at every prompt position (one-token chunks, each one a sampling
// position) against `argmax` and, where present, `all_logits`.
TEST_P(GoldenTest, EveryPositionMatches) {
  SamplingParams greedy;
  for (size_t i = 0; i < goldens_.size(); ++i) {
    const auto& g = goldens_[i];
    const int len = static_cast<int>(g.input_ids.size());
    std::vector<int32_t> blocks;
    for (int b = 0; b * 16 < len; ++b) blocks.push_back(b);
    const size_t vocab = g.last_logits.size();
    for (int pos = 0; pos < len; ++pos) {
      SeqStep step;
      step.seq_id = i;
      step.token_ids = g.input_ids;
      step.num_prompt_tokens = len;
      step.num_computed_tokens = pos;
      step.num_scheduled_tokens = 1;
      step.block_table = blocks;
      step.sample = true;
      step.sampling = &greedy;
      auto logits = backend_->StepLogits(StepBatch{{step}});
      ASSERT_TRUE(logits.ok()) << logits.status();
      const std::vector<float>& row = (*logits)[0];
      ASSERT_EQ(row.size(), vocab);
      EXPECT_EQ(testing::ArgMax(row.data(), vocab), g.argmax[pos]) << "prompt " << i << " pos " << pos;
      if (!g.all_logits.empty()) {
        EXPECT_LE(testing::RelativeError(row.data(), &g.all_logits[pos * vocab], vocab), 1e-4)
            << "prompt " << i << " pos " << pos;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, GoldenTest,
                         ::testing::Values("tests/fixtures/tiny-qwen2",
                                           "tests/fixtures/tiny-qwen2-chat",
                                           "tests/fixtures/tiny-qwen2-yarn",
                                           "tests/fixtures/tiny-qwen2-awq",
                                           "tests/fixtures/tiny-qwen2-gptq-int4",
                                           "tests/fixtures/tiny-qwen2-gptq-int8",
                                           "tests/fixtures/tiny-qwen2-fp8"));

}  // namespace
}  // namespace tpserve::worker
