// The FP8 KV cache's per-layer scales a checkpoint may carry (the
// llm-compressor / vLLM layout): "model.layers.N.self_attn.k_scale" and
// "...v_scale", or in older checkpoints one "...kv_scale" used for both;
// float32 (or f16/bf16) scalars, shape [] or [1]. The cache stores
// E4M3(k / k_scale) and reads it back times k_scale (v likewise). One parse
// shared by the CPU and CUDA loaders and by `tpserve verify`.
#ifndef TPSERVE_COMMON_QUANT_KV_SCALES_H_
#define TPSERVE_COMMON_QUANT_KV_SCALES_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/quant/quant_linear.h"
#include "common/safetensors/checkpoint.h"

namespace tpserve {

// The scale tensors layer `layer` may hold, all optional: k_scale, v_scale,
// kv_scale (in that order).
std::vector<QuantTensorSpec> KvScaleSpecs(int layer);

// The value of the scale tensor `spec` (one of KvScaleSpecs), checked: shape
// [] or [1], a float dtype, finite and > 0; an error names the file and the
// tensor.
absl::StatusOr<float> ReadKvScale(const safetensors::Checkpoint& checkpoint, const QuantTensorSpec& spec);

// Every layer's scales: k_scale (else kv_scale, else 1.0) and v_scale (else
// kv_scale, else 1.0).
struct KvCacheScales {
  std::vector<float> k, v;  // [num_layers]
  int k_found = 0;          // layers whose k scale came from the checkpoint
  int v_found = 0;
  int tensors = 0;          // scale tensors present (all checked)

  // All 1.0 for `num_layers` layers.
  static KvCacheScales Unit(int num_layers);
  // e.g. "k scales of 24/24 layers in [0.02, 0.31], v scales of 24/24
  // layers in [0.01, 0.09]", or "none (scale 1.0)".
  std::string Describe() const;
};

// Reads and checks (ReadKvScale) every scale tensor of layers
// [0, num_layers); the first bad one is the error.
absl::StatusOr<KvCacheScales> ReadKvCacheScales(const safetensors::Checkpoint& checkpoint, int num_layers);

// What the loaders call. With an FP8 cache: ReadKvCacheScales, logged once
// (which scales were found, min/max). Otherwise (a bfloat16 or, on the CPU,
// float32 cache) the scales are not used: all 1.0, unread, and one log line
// says so when the checkpoint has any.
absl::StatusOr<KvCacheScales> LoadKvCacheScales(const safetensors::Checkpoint& checkpoint, int num_layers,
                                                bool fp8_cache);

}  // namespace tpserve

#endif  // TPSERVE_COMMON_QUANT_KV_SCALES_H_
