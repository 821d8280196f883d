// --kv-cache-dtype fp8 with a checkpoint's per-layer k_scale / v_scale on
// the CPU backend. The reference folds the scales into the weights instead:
// E4M3(k / s) is what the cache of a model whose k_proj is divided by s
// stores at scale 1.0, and q . (E4M3(k / s) * s) = (q * s) . E4M3(k / s), so
// that model with q_proj times s (and v_proj / s, o_proj times s for v)
// computes the same logits without any scale tensor. With power-of-two
// scales every one of those multiplications is exact, so the logits must be
// bit-identical; with other scales they agree to float rounding.
//
// The test model's k and v are ~2^10 times larger than usual (q_proj and
// o_proj as much smaller, so the bfloat16-cache model is an ordinary one):
// at scale 1.0 most k/v values pass E4M3's 448 and saturate, which the
// scales (16, 32) avoid.
#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include "common/model/model_config.h"
#include "common/model/model_tensors.h"
#include "common/safetensors/writer.h"
#include "gtest/gtest.h"
#include "worker/model/sampling_rng.h"
#include "worker/model/testing/backend_driver.h"
#include "worker/model/testing/goldens.h"

namespace tpserve::worker {
namespace {

namespace fs = std::filesystem;

constexpr char kConfig[] = R"({
  "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 128,
  "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
  "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256,
  "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "tie_word_embeddings": false,
  "torch_dtype": "float32", "eos_token_id": 2})";
constexpr int kLayers = 2;
constexpr float kBig = 1024.0f;  // k and v magnitude factor

// Per-layer k and v scales.
struct Scales {
  std::vector<float> k, v;
};

// How a test checkpoint stores the scales.
enum class Layout {
  kNone,     // no scale tensors
  kKAndV,    // k_scale and v_scale
  kKvScale,  // one kv_scale per layer (k's value; v must equal it)
  kFolded,   // no scale tensors: the scales folded into q/k/v/o_proj
};

// Writes the test model to a fresh folder `name` and returns its path.
std::string WriteModel(const std::string& name, const Scales& s, Layout layout) {
  const std::string dir = (fs::path(std::getenv("TEST_TMPDIR")) / name).string();
  fs::create_directories(dir);
  std::ofstream(dir + "/config.json") << kConfig;
  auto config = ParseModelConfig(kConfig, "config.json");
  EXPECT_TRUE(config.ok()) << config.status();
  std::vector<safetensors::TensorData> tensors;
  uint64_t salt = 0;
  for (const ExpectedTensor& e : ExpectedTensors(*config)) {
    int64_t n = 1;
    for (int64_t d : e.shape) n *= d;
    const bool norm = e.name.ends_with("norm.weight");
    float factor = 1.0f;
    for (int l = 0; l < kLayers; ++l) {
      const float ks = layout == Layout::kFolded ? s.k[l] : 1.0f;
      const float vs = layout == Layout::kFolded ? s.v[l] : 1.0f;
      if (e.name.starts_with(LayerTensorName(l, "self_attn.q_proj"))) factor = ks / kBig;
      if (e.name.starts_with(LayerTensorName(l, "self_attn.k_proj"))) factor = kBig / ks;
      if (e.name.starts_with(LayerTensorName(l, "self_attn.v_proj"))) factor = kBig / vs;
      if (e.name.starts_with(LayerTensorName(l, "self_attn.o_proj"))) factor = vs / kBig;
    }
    std::vector<float> values(n);
    for (int64_t i = 0; i < n; ++i) {
      values[i] = norm ? 1.0f + 0.1f * static_cast<float>(SampleUniform(salt, i) - 0.5)
                       : factor * static_cast<float>(SampleUniform(salt, i) * 0.4 - 0.2);
    }
    ++salt;
    tensors.push_back(safetensors::Float32Tensor(e.name, e.shape, values));
  }
  for (int l = 0; l < kLayers; ++l) {
    auto scalar = [&](const char* suffix, float value) {
      tensors.push_back(safetensors::Float32Tensor(LayerTensorName(l, suffix), {}, {value}));
    };
    if (layout == Layout::kKAndV) {
      scalar("self_attn.k_scale", s.k[l]);
      scalar("self_attn.v_scale", s.v[l]);
    } else if (layout == Layout::kKvScale) {
      EXPECT_EQ(s.k[l], s.v[l]);
      scalar("self_attn.kv_scale", s.k[l]);
    }
  }
  EXPECT_TRUE(safetensors::WriteSafetensors(dir + "/model.safetensors", tensors).ok());
  return dir;
}

const std::vector<std::vector<int32_t>>& Prompts() {
  static const auto* prompts = new std::vector<std::vector<int32_t>>{
      {5, 17, 99, 3, 64, 120, 7, 8, 41, 77, 12, 90, 33, 4, 101, 56, 23, 9, 70, 18, 44},
      {100, 3, 3, 27, 88, 61, 14, 119, 35, 6, 52},
      {11, 22, 33, 44, 55, 66, 77, 88, 99, 110, 121, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 1, 2, 3}};
  return *prompts;
}

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
  return testing::Drive({backend->get()}, Prompts(), 8, SamplingParams(), drive);
}

// The largest relative L2 error of the prompts' last-position logits.
double MaxError(const std::vector<testing::DriveResult>& got, const std::vector<testing::DriveResult>& ref) {
  double worst = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const auto& a = got[i].prompt_logits;
    const auto& b = ref[i].prompt_logits;
    EXPECT_EQ(a.size(), b.size());
    worst = std::max(worst, testing::RelativeError(a.data(), b.data(), b.size()));
  }
  return worst;
}

const Scales kPow2 = {{16.0f, 32.0f}, {32.0f, 16.0f}};

TEST(CpuBackendKvScaleTest, PowerOfTwoScalesEqualTheFoldedReference) {
  auto scaled = Generate(WriteModel("pow2", kPow2, Layout::kKAndV), "fp8");
  ASSERT_TRUE(scaled.ok()) << scaled.status();
  auto folded = Generate(WriteModel("pow2_folded", kPow2, Layout::kFolded), "fp8");
  ASSERT_TRUE(folded.ok()) << folded.status();
  for (size_t i = 0; i < Prompts().size(); ++i) {
    EXPECT_EQ((*scaled)[i].prompt_logits, (*folded)[i].prompt_logits) << "prompt " << i;
    EXPECT_EQ((*scaled)[i].tokens, (*folded)[i].tokens) << "prompt " << i;
  }
}

TEST(CpuBackendKvScaleTest, ScalesKeepLargeValuesFromSaturating) {
  // The same weights without scale tensors (1.0): k and v saturate at 448.
  const std::string dir = WriteModel("sat_scaled", kPow2, Layout::kKAndV);
  auto scaled = Generate(dir, "fp8");
  ASSERT_TRUE(scaled.ok()) << scaled.status();
  auto unit = Generate(WriteModel("sat_unit", kPow2, Layout::kNone), "fp8");
  ASSERT_TRUE(unit.ok()) << unit.status();
  auto exact = Generate(dir, "auto");  // float32 cache: the scales are not used
  ASSERT_TRUE(exact.ok()) << exact.status();
  const double scaled_err = MaxError(*scaled, *exact), unit_err = MaxError(*unit, *exact);
  std::cout << "relative error vs the float32 cache: scales " << scaled_err << ", scale 1.0 " << unit_err << "\n";
  EXPECT_GT(scaled_err, 1e-4);  // the cache was rounded
  EXPECT_LT(scaled_err, 0.2);  // measured 0.076 (E4M3 keeps 3 mantissa bits)
  EXPECT_GT(unit_err, 5 * scaled_err);  // measured 1.26: saturated
}

TEST(CpuBackendKvScaleTest, Bf16CacheIgnoresTheScales) {
  auto with = Generate(WriteModel("ignored_with", kPow2, Layout::kKAndV), "auto");
  ASSERT_TRUE(with.ok()) << with.status();
  auto without = Generate(WriteModel("ignored_without", kPow2, Layout::kNone), "auto");
  ASSERT_TRUE(without.ok()) << without.status();
  for (size_t i = 0; i < Prompts().size(); ++i) {
    EXPECT_EQ((*with)[i].prompt_logits, (*without)[i].prompt_logits) << "prompt " << i;
  }
}

TEST(CpuBackendKvScaleTest, OlderKvScaleServesKAndV) {
  const Scales same = {{16.0f, 64.0f}, {16.0f, 64.0f}};
  auto kv = Generate(WriteModel("kv_scale", same, Layout::kKvScale), "fp8");
  ASSERT_TRUE(kv.ok()) << kv.status();
  auto folded = Generate(WriteModel("kv_scale_folded", same, Layout::kFolded), "fp8");
  ASSERT_TRUE(folded.ok()) << folded.status();
  for (size_t i = 0; i < Prompts().size(); ++i) {
    EXPECT_EQ((*kv)[i].prompt_logits, (*folded)[i].prompt_logits) << "prompt " << i;
  }
}

TEST(CpuBackendKvScaleTest, EachLayerUsesItsOwnScales) {
  // Scales that are not powers of two change every rounding, so the folded
  // reference agrees only to float rounding (x * (1 / s) vs weights / s), and
  // the same scales on the wrong layers are far off.
  const Scales odd = {{12.5f, 37.0f}, {40.0f, 9.75f}};
  const Scales swapped = {{37.0f, 12.5f}, {9.75f, 40.0f}};
  auto scaled = Generate(WriteModel("odd", odd, Layout::kKAndV), "fp8");
  ASSERT_TRUE(scaled.ok()) << scaled.status();
  auto folded = Generate(WriteModel("odd_folded", odd, Layout::kFolded), "fp8");
  ASSERT_TRUE(folded.ok()) << folded.status();
  auto wrong = Generate(WriteModel("odd_swapped", swapped, Layout::kFolded), "fp8");
  ASSERT_TRUE(wrong.ok()) << wrong.status();
  const double err = MaxError(*scaled, *folded), wrong_err = MaxError(*scaled, *wrong);
  std::cout << "relative error vs the folded reference " << err << ", vs swapped layers " << wrong_err << "\n";
  EXPECT_LT(err, 1e-5);
  EXPECT_GT(wrong_err, 1e-3);
}

TEST(CpuBackendKvScaleTest, BadScaleRefusedWithTheTensorName) {
  const Scales bad = {{16.0f, -2.0f}, {16.0f, 16.0f}};
  const std::string dir = WriteModel("bad", bad, Layout::kKAndV);
  auto fp8 = Generate(dir, "fp8");
  ASSERT_FALSE(fp8.ok());
  EXPECT_NE(fp8.status().message().find("\"model.layers.1.self_attn.k_scale\" element 0 is -2; scales must be "
                                        "finite and > 0"),
            std::string::npos)
      << fp8.status();
  EXPECT_TRUE(Generate(dir, "auto").ok());  // unused with a bfloat16 cache
}

}  // namespace
}  // namespace tpserve::worker
