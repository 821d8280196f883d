// --kv-cache-dtype fp8 with a checkpoint's per-layer k_scale / v_scale on
// the CPU backend, on testing/kv_scale_model.h's model (k and v large enough
// that scale 1.0 saturates E4M3). The reference folds the scales into the
// weights instead (KvScaleLayout::kFolded): E4M3(k / s) is what the cache of
// a model whose k_proj is divided by s stores at scale 1.0, and
// q . (E4M3(k / s) * s) = (q * s) . E4M3(k / s), so that model with q_proj
// times s (and v_proj / s, o_proj times s for v) computes the same logits
// without any scale tensor. With power-of-two scales every one of those
// multiplications is exact, so the logits must be bit-identical; with other
// scales they agree to float rounding.
#include <iostream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "worker/model/testing/backend_driver.h"
#include "worker/model/testing/goldens.h"
#include "worker/model/testing/kv_scale_model.h"

namespace tpserve::worker {
namespace {

using testing::KvScaleLayout;
using testing::KvScales;
using testing::MaxLogitError;
using testing::WriteKvScaleModel;

const KvScales& kFit = testing::kFittingKvScales;

// Prefills the prompts in chunks of 5 (later chunks read the cached prefix)
// and decodes 8 greedy tokens.
absl::StatusOr<std::vector<testing::DriveResult>> Generate(const std::string& dir, const std::string& kv_cache_dtype) {
  LoadOptions options;
  options.model_path = dir;
  options.kv_cache_dtype = kv_cache_dtype;
  auto backend = testing::LoadCpu(options, 32);
  if (!backend.ok()) return backend.status();
  testing::DriveOptions drive;
  drive.chunk = 5;
  drive.num_blocks = 32;
  drive.shuffle_blocks = true;
  return testing::Drive({backend->get()}, testing::KvScalePrompts(), 8, SamplingParams(), drive);
}

TEST(CpuBackendKvScaleTest, PowerOfTwoScalesEqualTheFoldedReference) {
  auto scaled = Generate(WriteKvScaleModel("pow2", kFit, KvScaleLayout::kKAndV), "fp8");
  ASSERT_TRUE(scaled.ok()) << scaled.status();
  auto folded = Generate(WriteKvScaleModel("pow2_folded", kFit, KvScaleLayout::kFolded), "fp8");
  ASSERT_TRUE(folded.ok()) << folded.status();
  for (size_t i = 0; i < scaled->size(); ++i) {
    EXPECT_EQ((*scaled)[i].prompt_logits, (*folded)[i].prompt_logits) << "prompt " << i;
    EXPECT_EQ((*scaled)[i].tokens, (*folded)[i].tokens) << "prompt " << i;
  }
}

TEST(CpuBackendKvScaleTest, ScalesKeepLargeValuesFromSaturating) {
  const std::string dir = WriteKvScaleModel("sat_scaled", kFit, KvScaleLayout::kKAndV);
  auto scaled = Generate(dir, "fp8");
  ASSERT_TRUE(scaled.ok()) << scaled.status();
  auto exact = Generate(dir, "auto");  // float32 cache: the scales are not used
  ASSERT_TRUE(exact.ok()) << exact.status();
  // The same weights at scale 1.0, and with layer 0's scales on both layers
  // (layer 1's k and v are 8 times larger): both saturate.
  auto unit = Generate(WriteKvScaleModel("sat_unit", kFit, KvScaleLayout::kNone), "fp8");
  ASSERT_TRUE(unit.ok()) << unit.status();
  const KvScales layer0 = {{kFit.k[0], kFit.k[0]}, {kFit.v[0], kFit.v[0]}};
  auto wrong = Generate(WriteKvScaleModel("sat_layer0", layer0, KvScaleLayout::kKAndV), "fp8");
  ASSERT_TRUE(wrong.ok()) << wrong.status();
  const double scaled_err = MaxLogitError(*scaled, *exact), unit_err = MaxLogitError(*unit, *exact);
  const double wrong_err = MaxLogitError(*wrong, *exact);
  std::cout << "relative error vs the float32 cache: scales " << scaled_err << ", scale 1.0 " << unit_err
            << ", layer 0's scales everywhere " << wrong_err << "\n";
  EXPECT_GT(scaled_err, 1e-4);  // the cache was rounded
  EXPECT_LT(scaled_err, 0.2);  // measured 0.059 (E4M3 keeps 3 mantissa bits)
  EXPECT_GT(unit_err, 5 * scaled_err);  // measured 1.12
  EXPECT_GT(wrong_err, 2 * scaled_err);  // measured 0.156 vs 0.059
}

TEST(CpuBackendKvScaleTest, Bf16CacheIgnoresTheScales) {
  auto with = Generate(WriteKvScaleModel("ignored_with", kFit, KvScaleLayout::kKAndV), "auto");
  ASSERT_TRUE(with.ok()) << with.status();
  auto without = Generate(WriteKvScaleModel("ignored_without", kFit, KvScaleLayout::kNone), "auto");
  ASSERT_TRUE(without.ok()) << without.status();
  for (size_t i = 0; i < with->size(); ++i) {
    EXPECT_EQ((*with)[i].prompt_logits, (*without)[i].prompt_logits) << "prompt " << i;
  }
}

TEST(CpuBackendKvScaleTest, OlderKvScaleServesKAndV) {
  const KvScales same = {{32.0f, 256.0f}, {32.0f, 256.0f}};
  auto kv = Generate(WriteKvScaleModel("kv_scale", same, KvScaleLayout::kKvScale), "fp8");
  ASSERT_TRUE(kv.ok()) << kv.status();
  auto folded = Generate(WriteKvScaleModel("kv_scale_folded", same, KvScaleLayout::kFolded), "fp8");
  ASSERT_TRUE(folded.ok()) << folded.status();
  for (size_t i = 0; i < kv->size(); ++i) {
    EXPECT_EQ((*kv)[i].prompt_logits, (*folded)[i].prompt_logits) << "prompt " << i;
  }
}

TEST(CpuBackendKvScaleTest, NonPowerOfTwoScalesPerLayerAndTensor) {
  // Scales that are not powers of two change every rounding, so the folded
  // reference agrees only to float rounding (x * (1 / s) against weights / s),
  // and the same scales on the other layer (or tensor) are far off.
  const KvScales odd = {{12.5f, 150.0f}, {37.0f, 210.0f}};
  const KvScales swapped = {{150.0f, 12.5f}, {210.0f, 37.0f}};
  const KvScales k_for_v = {{37.0f, 210.0f}, {12.5f, 150.0f}};
  auto scaled = Generate(WriteKvScaleModel("odd", odd, KvScaleLayout::kKAndV), "fp8");
  ASSERT_TRUE(scaled.ok()) << scaled.status();
  double err[3];
  int i = 0;
  for (const KvScales* ref : {&odd, &swapped, &k_for_v}) {
    auto folded = Generate(WriteKvScaleModel("odd_folded" + std::to_string(i), *ref, KvScaleLayout::kFolded), "fp8");
    ASSERT_TRUE(folded.ok()) << folded.status();
    err[i++] = MaxLogitError(*scaled, *folded);
  }
  std::cout << "relative error vs the folded reference " << err[0] << ", vs layers swapped " << err[1]
            << ", vs k and v swapped " << err[2] << "\n";
  EXPECT_LT(err[0], 1e-5);
  EXPECT_GT(err[1], 1e-3);
  EXPECT_GT(err[2], 1e-3);
}

TEST(CpuBackendKvScaleTest, BadScaleRefusedWithTheTensorName) {
  const KvScales bad = {{16.0f, -2.0f}, {32.0f, 256.0f}};
  const std::string dir = WriteKvScaleModel("bad", bad, KvScaleLayout::kKAndV);
  auto fp8 = Generate(dir, "fp8");
  ASSERT_FALSE(fp8.ok());
  EXPECT_NE(fp8.status().message().find("\"model.layers.1.self_attn.k_scale\" element 0 is -2; scales must be "
                                        "finite and > 0"),
            std::string::npos)
      << fp8.status();
  EXPECT_TRUE(Generate(dir, "auto").ok());  // not read with a float32 cache
}

}  // namespace
}  // namespace tpserve::worker
