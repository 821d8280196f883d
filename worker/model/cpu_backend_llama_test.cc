// A Llama-style checkpoint (no q/k/v bias, single model.safetensors, mixed
// BF16/F32 tensors) written by the test: the first-token logits against an
// independent double-precision computation, and TP=2 against TP=1.
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include "common/model/model_tensors.h"
#include "common/safetensors/writer.h"
#include "gtest/gtest.h"
#include "worker/model/sampling_rng.h"
#include "worker/model/testing/backend_driver.h"
#include "worker/model/testing/goldens.h"
#include "worker/model/testing/thread_communicator.h"

namespace tpserve::worker {
namespace {

namespace fs = std::filesystem;
using Matrix = std::vector<double>;

constexpr char kConfig[] = R"({
  "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 96,
  "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
  "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 256,
  "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false,
  "torch_dtype": "float32", "eos_token_id": 2})";

class LlamaTest : public ::testing::Test {
 protected:
  // Writes the checkpoint and remembers every tensor as the float32 values
  // the loader will see (BF16 ones rounded).
  void SetUp() override {
    dir_ = (fs::path(::testing::TempDir()) / "llama").string();
    fs::create_directories(dir_);
    std::ofstream(dir_ + "/config.json") << kConfig;
    auto config = ParseModelConfig(kConfig, "config.json");
    ASSERT_TRUE(config.ok()) << config.status();
    config_ = *config;
    std::vector<safetensors::TensorData> tensors;
    uint64_t salt = 0;
    for (const ExpectedTensor& e : ExpectedTensors(config_)) {
      int64_t n = 1;
      for (int64_t d : e.shape) n *= d;
      std::vector<float> values(n);
      const bool norm = e.name.ends_with("norm.weight");
      for (int64_t i = 0; i < n; ++i) {
        values[i] = norm ? 1.0f + 0.1f * static_cast<float>(SampleUniform(salt, i) - 0.5)
                         : static_cast<float>(SampleUniform(salt, i) * 0.4 - 0.2);
      }
      ++salt;
      const bool bf16 = tensors.size() % 2 == 0;
      safetensors::TensorData t{e.name, bf16 ? safetensors::DType::kBF16 : safetensors::DType::kF32,
                                e.shape, {}};
      if (bf16) {
        t.bytes.resize(n * 2);
        for (int64_t i = 0; i < n; ++i) {
          const uint16_t b = safetensors::FloatToBf16(values[i]);
          values[i] = safetensors::Bf16ToFloat(b);
          std::memcpy(&t.bytes[i * 2], &b, 2);
        }
      } else {
        t = safetensors::Float32Tensor(e.name, e.shape, values);
      }
      weights_[e.name] = Matrix(values.begin(), values.end());
      tensors.push_back(std::move(t));
    }
    ASSERT_TRUE(safetensors::WriteSafetensors(dir_ + "/model.safetensors", tensors).ok());
  }

  const Matrix& W(const std::string& name) { return weights_.at(name); }
  const Matrix& L(int layer, const std::string& suffix) {
    return weights_.at(LayerTensorName(layer, suffix));
  }

  // y = W x for W [rows, cols].
  static Matrix MatVec(const Matrix& w, const Matrix& x, int rows) {
    const size_t cols = x.size();
    Matrix y(rows, 0.0);
    for (int r = 0; r < rows; ++r) {
      for (size_t c = 0; c < cols; ++c) y[r] += w[r * cols + c] * x[c];
    }
    return y;
  }
  Matrix RmsNorm(const Matrix& x, const Matrix& w) {
    double ms = 0;
    for (double v : x) ms += v * v;
    const double scale = 1.0 / std::sqrt(ms / x.size() + config_.rms_norm_eps);
    Matrix y(x.size());
    for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * scale * w[i];
    return y;
  }

  // Logits of a one-token prompt at position 0, where RoPE is the identity
  // and attention returns the token's own V for every head of its group.
  Matrix FirstTokenLogits(int token) {
    const int h = config_.hidden_size, hd = config_.head_dim, inter = config_.intermediate_size;
    const int group = config_.num_attention_heads / config_.num_key_value_heads;
    const Matrix& embed = W("model.embed_tokens.weight");
    Matrix x(embed.begin() + token * h, embed.begin() + (token + 1) * h);
    for (int l = 0; l < config_.num_hidden_layers; ++l) {
      const Matrix v = MatVec(L(l, "self_attn.v_proj.weight"), RmsNorm(x, L(l, "input_layernorm.weight")),
                              config_.num_key_value_heads * hd);
      Matrix attn(config_.num_attention_heads * hd);
      for (int head = 0; head < config_.num_attention_heads; ++head) {
        for (int d = 0; d < hd; ++d) attn[head * hd + d] = v[(head / group) * hd + d];
      }
      const Matrix o = MatVec(L(l, "self_attn.o_proj.weight"), attn, h);
      for (int i = 0; i < h; ++i) x[i] += o[i];
      const Matrix hn = RmsNorm(x, L(l, "post_attention_layernorm.weight"));
      Matrix g = MatVec(L(l, "mlp.gate_proj.weight"), hn, inter);
      const Matrix u = MatVec(L(l, "mlp.up_proj.weight"), hn, inter);
      for (int i = 0; i < inter; ++i) g[i] = g[i] / (1 + std::exp(-g[i])) * u[i];
      const Matrix d = MatVec(L(l, "mlp.down_proj.weight"), g, h);
      for (int i = 0; i < h; ++i) x[i] += d[i];
    }
    return MatVec(W("lm_head.weight"), RmsNorm(x, W("model.norm.weight")), config_.vocab_size);
  }

  std::string dir_;
  ModelConfig config_;
  std::map<std::string, Matrix> weights_;
};

TEST_F(LlamaTest, FirstTokenMatchesDoubleReference) {
  ASSERT_FALSE(config_.attention_bias);
  LoadOptions options;
  options.model_path = dir_;
  auto backend = testing::LoadCpu(options, 8);
  ASSERT_TRUE(backend.ok()) << backend.status();
  for (int token : {0, 17, 95}) {
    const std::vector<int32_t> ids = {token};
    const std::vector<int32_t> blocks = {0};
    SamplingParams greedy;
    SeqStep step{.seq_id = 1, .token_ids = ids, .num_prompt_tokens = 1,
                 .num_computed_tokens = 0, .num_scheduled_tokens = 1, .block_table = blocks,
                 .sample = true, .sampling = &greedy};
    auto logits = (*backend)->StepLogits(StepBatch{{step}});
    ASSERT_TRUE(logits.ok()) << logits.status();
    const Matrix ref = FirstTokenLogits(token);
    const std::vector<float> ref_f(ref.begin(), ref.end());
    EXPECT_LE(testing::RelativeError((*logits)[0].data(), ref_f.data(), ref_f.size()), 1e-5)
        << "token " << token;
  }
}

TEST_F(LlamaTest, Tp2EqualsTp1) {
  LoadOptions options;
  options.model_path = dir_;
  const std::vector<std::vector<int32_t>> prompts = {{1, 5, 9, 13, 40, 41, 42, 90, 3}, {7}};
  testing::DriveOptions drive;
  drive.chunk = 4;
  drive.num_blocks = 16;
  auto one = testing::LoadCpu(options, 16);
  ASSERT_TRUE(one.ok()) << one.status();
  auto ref = testing::Drive({one->get()}, prompts, 10, SamplingParams(), drive);
  ASSERT_TRUE(ref.ok()) << ref.status();
  testing::ThreadCommGroup group(2);
  auto comms = group.MakeCommunicators();
  auto r0 = testing::LoadCpu(options, 16, comms[0].get());
  auto r1 = testing::LoadCpu(options, 16, comms[1].get());
  ASSERT_TRUE(r0.ok() && r1.ok());
  auto got = testing::Drive({r0->get(), r1->get()}, prompts, 10, SamplingParams(), drive);
  ASSERT_TRUE(got.ok()) << got.status();
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ((*ref)[i].tokens, (*got)[i].tokens);
    EXPECT_LE(testing::RelativeError((*got)[i].prompt_logits.data(), (*ref)[i].prompt_logits.data(),
                                     (*ref)[i].prompt_logits.size()),
              1e-5);
  }
}

}  // namespace
}  // namespace tpserve::worker
