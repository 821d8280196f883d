#include "worker/model/testing/kv_scale_model.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/model/model_config.h"
#include "common/model/model_tensors.h"
#include "common/safetensors/writer.h"
#include "gtest/gtest.h"
#include "worker/model/sampling_rng.h"
#include "worker/model/testing/goldens.h"

namespace tpserve::worker::testing {
namespace {

namespace fs = std::filesystem;

// head_dim 64: a size the CUDA attention kernels take.
constexpr char kConfig[] = R"({
  "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 256,
  "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2,
  "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256,
  "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "tie_word_embeddings": false,
  "torch_dtype": "float32", "eos_token_id": 2})";
// Layer l's k and v magnitude factor (powers of two: the folding is exact).
constexpr float kMagnitude[kKvScaleLayers] = {1024.0f, 8192.0f};

}  // namespace

std::string WriteKvScaleModel(const std::string& name, const KvScales& s, KvScaleLayout layout) {
  // TempDir(): TEST_TMPDIR under Bazel, /tmp/ when the binary runs alone (the GPU machine).
  const std::string dir = (fs::path(::testing::TempDir()) / name).string();
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
    for (int l = 0; l < kKvScaleLayers; ++l) {
      const float ks = layout == KvScaleLayout::kFolded ? s.k[l] : 1.0f;
      const float vs = layout == KvScaleLayout::kFolded ? s.v[l] : 1.0f;
      const float big = kMagnitude[l];
      if (e.name.starts_with(LayerTensorName(l, "self_attn.q_proj"))) factor = ks / big;
      if (e.name.starts_with(LayerTensorName(l, "self_attn.k_proj"))) factor = big / ks;
      if (e.name.starts_with(LayerTensorName(l, "self_attn.v_proj"))) factor = big / vs;
      if (e.name.starts_with(LayerTensorName(l, "self_attn.o_proj"))) factor = vs / big;
    }
    // Uniform in +-0.1: k and v of about unit size before the factor.
    std::vector<float> values(n);
    for (int64_t i = 0; i < n; ++i) {
      values[i] = norm ? 1.0f + 0.1f * static_cast<float>(SampleUniform(salt, i) - 0.5)
                       : factor * static_cast<float>(SampleUniform(salt, i) * 0.2 - 0.1);
    }
    ++salt;
    tensors.push_back(safetensors::Float32Tensor(e.name, e.shape, values));
  }
  for (int l = 0; l < kKvScaleLayers; ++l) {
    auto scalar = [&](const char* suffix, float value) {
      tensors.push_back(safetensors::Float32Tensor(LayerTensorName(l, suffix), {}, {value}));
    };
    if (layout == KvScaleLayout::kKAndV) {
      scalar("self_attn.k_scale", s.k[l]);
      scalar("self_attn.v_scale", s.v[l]);
    } else if (layout == KvScaleLayout::kKvScale) {
      EXPECT_EQ(s.k[l], s.v[l]);
      scalar("self_attn.kv_scale", s.k[l]);
    }
  }
  EXPECT_TRUE(safetensors::WriteSafetensors(dir + "/model.safetensors", tensors).ok());
  return dir;
}

const std::vector<std::vector<int32_t>>& KvScalePrompts() {
  static const auto* prompts = new std::vector<std::vector<int32_t>>{
      {5, 17, 99, 3, 64, 120, 7, 8, 41, 77, 12, 90, 33, 4, 101, 56, 23, 9, 70, 18, 44},
      {100, 3, 3, 27, 88, 61, 14, 119, 35, 6, 52},
      {11, 22, 33, 44, 55, 66, 77, 88, 99, 110, 121, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120, 1, 2, 3}};
  return *prompts;
}

double MaxLogitError(const std::vector<DriveResult>& got, const std::vector<DriveResult>& ref) {
  EXPECT_EQ(got.size(), ref.size());
  double worst = 0;
  for (size_t i = 0; i < std::min(got.size(), ref.size()); ++i) {
    const auto& a = got[i].prompt_logits;
    const auto& b = ref[i].prompt_logits;
    EXPECT_EQ(a.size(), b.size());
    if (a.size() != b.size()) return 1e30;
    worst = std::max(worst, RelativeError(a.data(), b.data(), b.size()));
  }
  return worst;
}

}  // namespace tpserve::worker::testing
