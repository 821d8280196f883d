// The quantized fixtures (tests/fixtures/tiny-qwen2-{awq,gptq-int4,
// gptq-int8}) opened for the int4/int8 tests: config, checkpoint and the
// linear layers (prefix and logical [out, in]) that carry codes.
#ifndef TPSERVE_WORKER_CUDA_QUANT_FIXTURE_H_
#define TPSERVE_WORKER_CUDA_QUANT_FIXTURE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/model/model_config.h"
#include "common/model/model_tensors.h"
#include "common/safetensors/checkpoint.h"
#include "gtest/gtest.h"

namespace tpserve::worker::cuda::testing {

struct FixtureLayer {
  std::string prefix;  // e.g. "model.layers.0.mlp.down_proj"
  int64_t out = 0, in = 0;
};

struct QuantFixture {
  ModelConfig config;
  std::unique_ptr<safetensors::Checkpoint> ckpt;
  std::vector<FixtureLayer> layers;
};

// Opens `dir`; a failure is reported to gtest and gives nullopt.
inline std::optional<QuantFixture> OpenQuantFixture(const std::string& dir) {
  auto config = LoadModelConfig(dir);
  auto ckpt = safetensors::Checkpoint::Open(dir);
  if (!config.ok() || !ckpt.ok()) {
    ADD_FAILURE() << dir << ": " << config.status() << " / " << ckpt.status();
    return std::nullopt;
  }
  QuantFixture f{*config, std::move(*ckpt), {}};
  const std::string suffix = "_proj.weight";
  for (const ExpectedTensor& e : ExpectedTensors(f.config)) {
    const size_t n = e.name.size();
    if (n > suffix.size() && e.name.compare(n - suffix.size(), suffix.size(), suffix) == 0) {
      f.layers.push_back({e.name.substr(0, n - 7), e.shape[0], e.shape[1]});  // without ".weight"
    }
  }
  EXPECT_EQ(f.layers.size(), 7u * f.config.num_hidden_layers) << dir;
  return f;
}

}  // namespace tpserve::worker::cuda::testing

#endif  // TPSERVE_WORKER_CUDA_QUANT_FIXTURE_H_
