// --kv-cache-dtype fp8 on the CPU backend: the float32 cache holds every K/V
// value rounded through FP8 E4M3, and the tiny fixture's output stays close
// to the unrounded cache's. The measure: over the five golden prompts,
// prefilled in chunks of 7 (later chunks read the rounded cached prefix), the
// last prompt position's logits differ from the float32 cache's by a relative
// L2 error above 1e-3 (the rounding happened: E4M3 keeps 3 mantissa bits)
// and below 0.1 (measured: 0.029 to 0.065), and fp8's top token is among the
// float32 cache's 3 highest logits. The fixture's weights are random, so
// its logits are nearly flat (neighbouring logits a few percent apart) and
// greedy continuations are no measure: the trained-checkpoint top-1
// agreement is the GPU check's (docs/performance.md).
#include <algorithm>
#include <iostream>
#include <string>

#include "gtest/gtest.h"
#include "worker/model/cpu_backend.h"
#include "worker/model/testing/backend_driver.h"
#include "worker/model/testing/goldens.h"

namespace tpserve::worker {
namespace {

constexpr char kModel[] = "tests/fixtures/tiny-qwen2";

absl::StatusOr<std::vector<testing::DriveResult>> Generate(const std::string& kv_cache_dtype,
                                                      const std::vector<std::vector<int32_t>>& prompts) {
  LoadOptions options;
  options.model_path = kModel;
  options.kv_cache_dtype = kv_cache_dtype;
  auto backend = testing::LoadCpu(options, 64);
  if (!backend.ok()) return backend.status();
  testing::DriveOptions drive;
  drive.chunk = 7;
  drive.num_blocks = 64;
  drive.shuffle_blocks = true;
  return testing::Drive({backend->get()}, prompts, 24, SamplingParams(), drive);
}

TEST(CpuBackendFp8KvTest, CloseToFloat32Cache) {
  auto goldens = testing::LoadGoldens(kModel);
  ASSERT_TRUE(goldens.ok()) << goldens.status();
  std::vector<std::vector<int32_t>> prompts;
  for (const auto& g : *goldens) prompts.push_back(g.input_ids);
  auto ref = Generate("auto", prompts);
  ASSERT_TRUE(ref.ok()) << ref.status();
  for (const std::string dtype : {"fp8", "fp8_e4m3"}) {
    auto fp8 = Generate(dtype, prompts);
    ASSERT_TRUE(fp8.ok()) << fp8.status();
    for (size_t i = 0; i < prompts.size(); ++i) {
      const auto& a = (*ref)[i].prompt_logits;
      const auto& b = (*fp8)[i].prompt_logits;
      ASSERT_EQ(a.size(), b.size());
      const double err = testing::RelativeError(b.data(), a.data(), a.size());
      std::cout << dtype << " p" << i << " last-position logits relative error " << err << "\n";
      EXPECT_GT(err, 1e-3) << "prompt " << i << ": the cache was not rounded";
      EXPECT_LT(err, 0.1) << "prompt " << i;
      const float top = a[testing::ArgMax(b.data(), b.size())];
      const int higher = static_cast<int>(std::count_if(a.begin(), a.end(), [&](float x) { return x > top; }));
      std::cout << "  fp8's top token is the float32 cache's number " << higher + 1 << "\n";
      EXPECT_LT(higher, 3) << "prompt " << i;
    }
  }
}

TEST(CpuBackendFp8KvTest, UnknownDtypeRefused) {
  LoadOptions options;
  options.model_path = kModel;
  options.kv_cache_dtype = "fp16";
  auto backend = testing::LoadCpu(options, 64);
  ASSERT_FALSE(backend.ok());
  EXPECT_NE(backend.status().message().find("--kv-cache-dtype"), std::string::npos) << backend.status();
}

}  // namespace
}  // namespace tpserve::worker
