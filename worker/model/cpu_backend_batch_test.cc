// Batching, chunked prefill and block placement must not change results: a
// ragged batch of every prompt, 7-token prefill chunks and shuffled blocks of
// another block size all equal one prompt at a time.
#include <string>

#include "gtest/gtest.h"
#include "worker/model/testing/backend_driver.h"
#include "worker/model/testing/goldens.h"

namespace tpserve::worker {
namespace {

class BatchTest : public ::testing::TestWithParam<std::string> {
 protected:
  std::unique_ptr<Backend> Load(int block_size, int num_blocks) {
    LoadOptions options;
    options.model_path = GetParam();
    options.block_size = block_size;
    auto backend = testing::LoadCpu(options, num_blocks);
    EXPECT_TRUE(backend.ok()) << backend.status();
    return backend.ok() ? std::move(*backend) : nullptr;
  }
  std::vector<std::vector<int32_t>> Prompts() {
    auto goldens = testing::LoadGoldens(GetParam());
    EXPECT_TRUE(goldens.ok());
    std::vector<std::vector<int32_t>> prompts;
    for (const auto& g : *goldens) prompts.push_back(g.input_ids);
    return prompts;
  }
};

void ExpectSame(const std::vector<testing::DriveResult>& ref,
                const std::vector<testing::DriveResult>& got, const std::string& what) {
  ASSERT_EQ(ref.size(), got.size());
  for (size_t i = 0; i < ref.size(); ++i) {
    EXPECT_EQ(ref[i].tokens, got[i].tokens) << what << " prompt " << i;
    ASSERT_EQ(ref[i].prompt_logits.size(), got[i].prompt_logits.size());
    EXPECT_LE(testing::RelativeError(got[i].prompt_logits.data(), ref[i].prompt_logits.data(),
                                     ref[i].prompt_logits.size()),
              1e-5)
        << what << " prompt " << i;
  }
}

TEST_P(BatchTest, RaggedChunkedShuffledEqualsOneAtATime) {
  const auto prompts = Prompts();
  auto base = Load(16, 128);
  ASSERT_NE(base, nullptr);
  testing::DriveOptions one;
  one.batch_all = false;
  one.num_blocks = 128;
  SamplingParams greedy;
  auto ref = testing::Drive({base.get()}, prompts, 8, greedy, one);
  ASSERT_TRUE(ref.ok()) << ref.status();

  testing::DriveOptions batched = one;
  batched.batch_all = true;
  auto all = testing::Drive({base.get()}, prompts, 8, greedy, batched);
  ASSERT_TRUE(all.ok()) << all.status();
  ExpectSame(*ref, *all, "ragged batch");

  batched.chunk = 7;
  auto chunked = testing::Drive({base.get()}, prompts, 8, greedy, batched);
  ASSERT_TRUE(chunked.ok()) << chunked.status();
  ExpectSame(*ref, *chunked, "7-token chunks");

  auto small_blocks = Load(5, 200);
  ASSERT_NE(small_blocks, nullptr);
  batched.block_size = 5;
  batched.num_blocks = 200;
  batched.shuffle_blocks = true;
  auto shuffled = testing::Drive({small_blocks.get()}, prompts, 8, greedy, batched);
  ASSERT_TRUE(shuffled.ok()) << shuffled.status();
  ExpectSame(*ref, *shuffled, "shuffled 5-token blocks");
}

// Seeded sampling draws the same tokens whatever batch a sequence runs in.
TEST_P(BatchTest, SeededSamplingIndependentOfBatch) {
  const auto prompts = Prompts();
  auto backend = Load(16, 128);
  ASSERT_NE(backend, nullptr);
  SamplingParams p;
  p.temperature = 0.9f;
  p.top_p = 0.95f;
  p.seed = 1234;
  testing::DriveOptions one;
  one.batch_all = false;
  one.num_blocks = 128;
  auto ref = testing::Drive({backend.get()}, prompts, 6, p, one);
  ASSERT_TRUE(ref.ok()) << ref.status();
  testing::DriveOptions batched = one;
  batched.batch_all = true;
  batched.chunk = 7;
  batched.shuffle_blocks = true;
  auto got = testing::Drive({backend.get()}, prompts, 6, p, batched);
  ASSERT_TRUE(got.ok()) << got.status();
  ExpectSame(*ref, *got, "seeded sampling");
}

INSTANTIATE_TEST_SUITE_P(Fixtures, BatchTest,
                         ::testing::Values("tests/fixtures/tiny-qwen2",
                                           "tests/fixtures/tiny-qwen2-chat"));

}  // namespace
}  // namespace tpserve::worker
