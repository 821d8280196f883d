// Rotary position embedding as HF transformers defines it for Qwen2/Llama:
// the RoPE section of config.json, and the per-pair frequencies and cos/sin
// scale that the CPU and CUDA kernels apply (neox layout: pair i rotates
// dimensions i and i + head_dim / 2).
#ifndef TPSERVE_COMMON_MODEL_ROPE_H_
#define TPSERVE_COMMON_MODEL_ROPE_H_

#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "absl/status/status.h"
#include "common/model/model_config.h"

namespace tpserve {

// What a kernel needs: angle(pos, i) = pos * inv_freq[i]; q and k are
// rotated by cos/sin of it, both multiplied by attention_factor.
struct RopeTable {
  std::vector<float> inv_freq;  // head_dim / 2 entries
  float attention_factor = 1.0f;
};

// The table for `head_dim`, `theta` and `scaling`, in HF's float32
// arithmetic (YaRN: transformers' _compute_yarn_parameters).
RopeTable MakeRopeTable(int head_dim, double theta, const RopeScaling& scaling);

// Reads "rope_theta", "rope_scaling" / "rope_parameters" and
// "partial_rotary_factor" of config.json object `config` into `c`. Expects
// c->max_position_embeddings to hold the file's value; under YaRN it becomes
// original_max_position_embeddings * factor. Errors name `source` and the key;
// a rope type other than default or yarn is refused by name.
absl::Status ParseRopeConfig(const nlohmann::json& config, const std::string& source,
                             ModelConfig* c);

}  // namespace tpserve

#endif  // TPSERVE_COMMON_MODEL_ROPE_H_
