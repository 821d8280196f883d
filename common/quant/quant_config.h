// A checkpoint's "quantization_config" (config.json), validated once at parse
// time: AWQ (AutoAWQ gemm), GPTQ (AutoGPTQ v1/v2 checkpoints) and FP8 (the
// vLLM / llm-compressor "fp8" layout). See docs/quantization.md.
#ifndef TPSERVE_COMMON_QUANT_QUANT_CONFIG_H_
#define TPSERVE_COMMON_QUANT_QUANT_CONFIG_H_

#include <string>

// The forward declaration only: model_config.h includes this header widely.
#include <nlohmann/json_fwd.hpp>

#include "absl/status/statusor.h"

namespace tpserve {

enum class QuantMethod { kNone, kAwq, kGptq, kFp8 };

// "none", "awq", "gptq", "fp8".
const char* QuantMethodName(QuantMethod method);

struct QuantConfig {
  QuantMethod method = QuantMethod::kNone;
  // 4 (AWQ, GPTQ) or 8 (GPTQ); 8 for FP8.
  int bits = 0;
  // Inputs per scale group; 0 for one group over all inputs (GPTQ
  // group_size -1, "per channel"). AWQ/GPTQ only.
  int group_size = 0;
  // GPTQ: act-order checkpoints, whose g_idx is not i / group_size.
  bool desc_act = false;
  // GPTQ: symmetric (zero points all 2^(bits-1)); informational, the stored
  // qzeros are used either way.
  bool sym = true;
  // GPTQ: what to add to a stored zero point: 1 for the classic (v1)
  // checkpoints that store zero - 1, 0 for checkpoint_format "gptq_v2".
  int zero_offset = 0;
  // FP8: "static" checkpoints carry input_scale tensors.
  bool static_activations = false;

  bool enabled() const { return method != QuantMethod::kNone; }
  // Codes per int32 word (AWQ/GPTQ): 32 / bits.
  int pack_factor() const { return bits > 0 ? 32 / bits : 0; }
  // Number of scale groups along an input dimension of `in` features.
  int64_t num_groups(int64_t in) const {
    return group_size > 0 ? (in + group_size - 1) / group_size : 1;
  }
  // e.g. "gptq int4, group 128, desc_act" (for logs and verify).
  std::string Describe() const;
};

// Parses the "quantization_config" object. Unknown or unsupported methods
// and settings are INVALID_ARGUMENT naming `source`, the key and the value.
absl::StatusOr<QuantConfig> ParseQuantConfig(const nlohmann::json& j, const std::string& source);

}  // namespace tpserve

#endif  // TPSERVE_COMMON_QUANT_QUANT_CONFIG_H_
