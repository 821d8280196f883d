// The tensors a Qwen2/Llama checkpoint must contain for a given config, with
// their shapes. Shared by the loaders and by `verify`.
#ifndef TPSERVE_COMMON_MODEL_MODEL_TENSORS_H_
#define TPSERVE_COMMON_MODEL_MODEL_TENSORS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "common/model/model_config.h"

namespace tpserve {

// One expected weight.
struct ExpectedTensor {
  std::string name;
  std::vector<int64_t> shape;
  // Present in some checkpoints only (lm_head.weight with tied embeddings).
  bool optional = false;
};

// Every weight of `config`'s architecture, embedding first, lm_head last.
std::vector<ExpectedTensor> ExpectedTensors(const ModelConfig& config);

// "model.layers.<layer>.<suffix>".
std::string LayerTensorName(int layer, const std::string& suffix);

}  // namespace tpserve

#endif  // TPSERVE_COMMON_MODEL_MODEL_TENSORS_H_
