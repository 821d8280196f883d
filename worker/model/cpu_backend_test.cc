// CpuBackend's contract apart from numerics: loading errors, memory
// profiling, cache sizing, step validation and logprobs.
#include "worker/model/cpu_backend.h"

#include <cmath>
#include <string>

#include "common/model/model_config.h"
#include "gtest/gtest.h"
#include "worker/model/testing/goldens.h"

namespace tpserve::worker {
namespace {

constexpr char kModel[] = "tests/fixtures/tiny-qwen2";

LoadOptions Options() {
  LoadOptions o;
  o.model_path = kModel;
  return o;
}

std::string Message(const absl::Status& s) { return std::string(s.message()); }

TEST(CpuBackendTest, LoadErrorsAreClear) {
  struct Case {
    void (*edit)(LoadOptions&);
    absl::StatusCode code;
    std::string needle;
  };
  const Case cases[] = {
      {[](LoadOptions& o) { o.model_path = "/nonexistent"; }, absl::StatusCode::kNotFound,
       "/nonexistent"},
      {[](LoadOptions& o) { o.load_format = "gguf"; }, absl::StatusCode::kInvalidArgument, "gguf"},
      {[](LoadOptions& o) { o.dtype = "int4"; }, absl::StatusCode::kInvalidArgument, "int4"},
      {[](LoadOptions& o) { o.block_size = 0; }, absl::StatusCode::kInvalidArgument, "block_size"},
      {[](LoadOptions& o) { o.max_model_len = 5000; }, absl::StatusCode::kInvalidArgument, "4096"},
  };
  for (const Case& c : cases) {
    LoadOptions o = Options();
    c.edit(o);
    auto backend = CreateCpuBackend();
    ASSERT_TRUE(backend.ok());
    const absl::Status s = (*backend)->Load(o, nullptr);
    EXPECT_EQ(s.code(), c.code) << s;
    EXPECT_NE(Message(s).find(c.needle), std::string::npos) << s;
  }
}

TEST(CpuBackendTest, ProfileAndInitCache) {
  auto backend = *CreateCpuBackend();
  EXPECT_EQ(backend->device(), "cpu");
  EXPECT_EQ(backend->ProfileMemory(0, 1 << 20).status().code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(backend->Load(Options(), nullptr).ok());
  EXPECT_EQ(backend->config().vocab_size, 4096);
  // The one EOS rule (what the worker reports to the router).
  EXPECT_EQ(backend->eos_token_ids(),
            EosTokenIds(*LoadModelConfig(kModel), *LoadGenerationConfig(kModel)));
  EXPECT_FALSE(backend->eos_token_ids().empty());
  // 3,279,104 parameters in float32.
  EXPECT_EQ(backend->weight_bytes(), int64_t{3279104} * 4);
  auto profile = backend->ProfileMemory(0.9, 1 << 20);
  ASSERT_TRUE(profile.ok()) << profile.status();
  // K and V x 2 layers x 16 positions x 2 KV heads x 64 dims x 4 bytes.
  EXPECT_EQ(profile->bytes_per_block, 2 * 2 * 16 * 2 * 64 * 4);
  EXPECT_EQ(profile->num_blocks, (1 << 20) / (2 * 2 * 16 * 2 * 64 * 4));
  EXPECT_GT(profile->peak_activation_bytes, 0);
  EXPECT_EQ(backend->ProfileMemory(0.9, 100).status().code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_FALSE(backend->InitCache(0).ok());
  // 2^31 - 1 blocks of 32 KiB: 64 TiB, more than any test machine has.
  const absl::Status huge = backend->InitCache(2147483647);
  EXPECT_EQ(huge.code(), absl::StatusCode::kResourceExhausted) << huge;
  auto [total, available] = backend->MemoryInfo();
  EXPECT_GT(total, 0);
  EXPECT_GT(available, 0);
  EXPECT_LE(available, total);
  EXPECT_TRUE(backend->InitCache(profile->num_blocks).ok());
  EXPECT_EQ(backend->Load(Options(), nullptr).code(), absl::StatusCode::kFailedPrecondition);
}

// Step contents are validated where the worker service applies a step
// (worker/service/sequence_table_test.cc), not again here.
TEST(CpuBackendTest, StepsNeedLoadAndCache) {
  auto backend = *CreateCpuBackend();
  const std::vector<int32_t> tokens = {5, 6, 7, 8};
  const std::vector<int32_t> blocks = {3};
  SamplingParams greedy;
  SeqStep good{.seq_id = 1, .token_ids = tokens, .num_prompt_tokens = 4,
               .num_computed_tokens = 0, .num_scheduled_tokens = 4, .block_table = blocks,
               .sample = true, .sampling = &greedy};
  EXPECT_EQ(backend->Step(StepBatch{{good}}).status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(backend->Load(Options(), nullptr).ok());
  EXPECT_EQ(backend->Step(StepBatch{{good}}).status().code(), absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(backend->InitCache(4).ok());
  ASSERT_TRUE(backend->Step(StepBatch{{good}}).ok());
  EXPECT_EQ(backend->Step(StepBatch{}).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CpuBackendTest, LogprobsComeBackWithTheToken) {
  auto backend = testing::LoadCpu(Options(), 4);
  ASSERT_TRUE(backend.ok());
  const std::vector<int32_t> tokens = {5, 6, 7, 8};
  const std::vector<int32_t> blocks = {0};
  SamplingParams p;
  p.logprobs = true;
  p.top_logprobs = 5;
  SeqStep step{.seq_id = 9, .token_ids = tokens, .num_prompt_tokens = 4,
               .num_computed_tokens = 0, .num_scheduled_tokens = 4, .block_table = blocks,
               .sample = true, .sampling = &p};
  auto r = (*backend)->Step(StepBatch{{step}});
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->size(), 1u);
  const SampleResult& s = (*r)[0];
  EXPECT_EQ(s.seq_id, 9u);
  ASSERT_TRUE(s.has_logprobs);
  ASSERT_EQ(s.top_logprobs.size(), 5u);
  EXPECT_EQ(s.top_logprobs[0].first, s.token_id);  // greedy picks the top one
  EXPECT_FLOAT_EQ(s.top_logprobs[0].second, s.logprob);
  EXPECT_LT(s.logprob, 0.0f);
}

}  // namespace
}  // namespace tpserve::worker
