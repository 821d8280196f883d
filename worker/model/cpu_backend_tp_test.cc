// Tensor parallelism on threads: TP=2 and TP=4 (KV heads replicated) equal
// TP=1, for checkpoint and dummy weights.
#include <string>

#include "gtest/gtest.h"
#include "worker/model/testing/backend_driver.h"
#include "worker/model/testing/goldens.h"
#include "worker/model/testing/thread_communicator.h"

namespace tpserve::worker {
namespace {

// A TP group of CPU backends sharing one thread communicator.
struct Group {
  std::unique_ptr<testing::ThreadCommGroup> comm_group;
  std::vector<std::unique_ptr<Communicator>> comms;
  std::vector<std::unique_ptr<Backend>> backends;
  std::vector<Backend*> ranks() const {
    std::vector<Backend*> out;
    for (const auto& b : backends) out.push_back(b.get());
    return out;
  }
};

absl::StatusOr<Group> LoadGroup(const LoadOptions& options, int world_size) {
  Group g;
  g.comm_group = std::make_unique<testing::ThreadCommGroup>(world_size);
  g.comms = g.comm_group->MakeCommunicators();
  for (int r = 0; r < world_size; ++r) {
    auto b = testing::LoadCpu(options, 96, world_size > 1 ? g.comms[r].get() : nullptr);
    if (!b.ok()) return b.status();
    g.backends.push_back(std::move(*b));
  }
  return g;
}

std::vector<testing::DriveResult> Generate(const Group& g, const std::vector<std::vector<int32_t>>& prompts) {
  testing::DriveOptions options;
  options.chunk = 7;
  options.num_blocks = 96;
  auto r = testing::Drive(g.ranks(), prompts, 6, SamplingParams(), options);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? *r : std::vector<testing::DriveResult>{};
}

void ExpectClose(const std::vector<testing::DriveResult>& ref,
                 const std::vector<testing::DriveResult>& got, int world) {
  ASSERT_EQ(ref.size(), got.size());
  for (size_t i = 0; i < ref.size(); ++i) {
    EXPECT_EQ(ref[i].tokens, got[i].tokens) << "TP=" << world << " prompt " << i;
    ASSERT_EQ(ref[i].prompt_logits.size(), got[i].prompt_logits.size());
    EXPECT_LE(testing::RelativeError(got[i].prompt_logits.data(), ref[i].prompt_logits.data(),
                                     ref[i].prompt_logits.size()),
              1e-5)
        << "TP=" << world << " prompt " << i;
  }
}

std::vector<std::vector<int32_t>> Prompts(const std::string& dir, size_t max_prompts) {
  auto goldens = testing::LoadGoldens(dir);
  EXPECT_TRUE(goldens.ok());
  std::vector<std::vector<int32_t>> prompts;
  for (const auto& g : *goldens) {
    if (prompts.size() < max_prompts) prompts.push_back(g.input_ids);
  }
  return prompts;
}

TEST(TensorParallelTest, TinyQwen2Tp2AndTp4EqualTp1) {
  LoadOptions options;
  options.model_path = "tests/fixtures/tiny-qwen2";
  const auto prompts = Prompts(options.model_path, 4);
  auto base = LoadGroup(options, 1);
  ASSERT_TRUE(base.ok()) << base.status();
  const auto ref = Generate(*base, prompts);
  for (int world : {2, 4}) {  // 2 KV heads: split at TP=2, replicated at TP=4
    auto group = LoadGroup(options, world);
    ASSERT_TRUE(group.ok()) << group.status();
    ExpectClose(ref, Generate(*group, prompts), world);
  }
}

TEST(TensorParallelTest, ChatModelTp2EqualsTp1) {
  LoadOptions options;
  options.model_path = "tests/fixtures/tiny-qwen2-chat";  // 1 KV head, tied lm_head
  const auto prompts = Prompts(options.model_path, 3);
  auto base = LoadGroup(options, 1);
  ASSERT_TRUE(base.ok()) << base.status();
  auto group = LoadGroup(options, 2);
  ASSERT_TRUE(group.ok()) << group.status();
  ExpectClose(Generate(*base, prompts), Generate(*group, prompts), 2);
}

TEST(TensorParallelTest, DummyWeightsAreTheSameModelAtAnyTp) {
  LoadOptions options;
  options.model_path = "tests/fixtures/tiny-qwen2/config.json";
  options.load_format = "dummy";
  options.seed = 7;
  const std::vector<std::vector<int32_t>> prompts = {{1, 2, 3, 4, 5, 6, 7, 8, 9}, {42}};
  auto base = LoadGroup(options, 1);
  ASSERT_TRUE(base.ok()) << base.status();
  const auto ref = Generate(*base, prompts);
  auto group = LoadGroup(options, 2);
  ASSERT_TRUE(group.ok()) << group.status();
  ExpectClose(ref, Generate(*group, prompts), 2);
  options.seed = 8;
  auto other = LoadGroup(options, 1);
  ASSERT_TRUE(other.ok());
  const auto reseeded = Generate(*other, prompts);
  EXPECT_GT(testing::RelativeError(reseeded[0].prompt_logits.data(), ref[0].prompt_logits.data(),
                                   ref[0].prompt_logits.size()),
            1e-2);
}

TEST(TensorParallelTest, IndivisibleSizesAreRefused) {
  LoadOptions options;
  options.model_path = "tests/fixtures/tiny-qwen2";
  auto group = LoadGroup(options, 3);
  ASSERT_FALSE(group.ok());
  const std::string msg(group.status().message());
  EXPECT_NE(msg.find("tensor-parallel size 3"), std::string::npos) << msg;
  EXPECT_NE(msg.find("num_attention_heads (4)"), std::string::npos) << msg;
}

}  // namespace
}  // namespace tpserve::worker
