// One quantized linear layer of a checkpoint: which tensors a config needs
// (names, shapes, dtypes), opening and validating them, and dequantizing a
// rectangle of the logical weight W[out, in]. Shared by the CPU backend's
// weight source and `tpserve verify`.
#ifndef TPSERVE_COMMON_QUANT_QUANT_LINEAR_H_
#define TPSERVE_COMMON_QUANT_QUANT_LINEAR_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/quant/dequant.h"
#include "common/quant/quant_config.h"
#include "common/safetensors/checkpoint.h"

namespace tpserve {

// A tensor a quantized linear layer stores, and what it must look like.
struct QuantTensorSpec {
  std::string name;
  // Any of these shapes is accepted (FP8 scales come as [], [1], [out] or
  // [out, 1]).
  std::vector<std::vector<int64_t>> shapes;
  std::vector<safetensors::DType> dtypes;
  bool optional = false;
};

// The tensor `spec` names, checked against the spec's shapes and dtypes;
// an error names the file, the tensor and `needed_by` (e.g. the config's
// Describe()). Shared with the KV cache scales (kv_scales.h).
absl::StatusOr<safetensors::TensorView> GetChecked(const safetensors::Checkpoint& checkpoint,
                                                   const QuantTensorSpec& spec, const std::string& needed_by);

// OK when every value of tensor `v` is finite (and > 0 when `positive`);
// otherwise an error naming the file, the tensor and the element.
absl::Status CheckFinitePositive(const safetensors::TensorView& v, const std::vector<float>& values, bool positive);

// The tensors `config` stores for the linear layer `prefix` (e.g.
// "model.layers.0.mlp.down_proj") of logical shape [out, in]. Fails when the
// shape cannot be packed (e.g. out not a multiple of 8 for int4).
absl::StatusOr<std::vector<QuantTensorSpec>> QuantLinearSpecs(const QuantConfig& config,
                                                              const std::string& prefix,
                                                              int64_t out, int64_t in);

// Whether `prefix` is stored quantized: AWQ/GPTQ layers have a qweight (or no
// plain weight either, so the error names the qweight); FP8 layers have an
// F8_E4M3 weight or a weight_scale. Layers a checkpoint left unquantized
// (modules_to_not_convert, ignored_layers) have a plain float weight.
bool IsQuantizedLinear(const QuantConfig& config, const safetensors::Checkpoint& checkpoint,
                       const std::string& prefix);

// A validated quantized layer. Holds views into the checkpoint, which must
// outlive it, and float32 copies of the (small) scales.
class QuantizedLinear {
 public:
  // Checks every tensor's presence, shape and dtype, GPTQ g_idx values and
  // FP8 scales; errors name the file, the tensor and what was expected.
  static absl::StatusOr<QuantizedLinear> Open(const QuantConfig& config,
                                              const safetensors::Checkpoint& checkpoint,
                                              const std::string& prefix, int64_t out, int64_t in);

  // W[out_begin:out_end, in_begin:in_end] as row-major float32.
  absl::StatusOr<std::vector<float>> Dequantize(int64_t out_begin, int64_t out_end,
                                                int64_t in_begin, int64_t in_end) const;

  // Bytes of the stored tensors.
  int64_t stored_bytes() const { return stored_bytes_; }

  // FP8 layers only: the E4M3 codes, row-major [out, in] (a view into the
  // checkpoint), and the scale of output row `row` (per tensor or per
  // channel), for backends that keep the codes as they are.
  const uint8_t* fp8_codes() const { return fp8_; }

  // AWQ/GPTQ layers only: the packed tensors with the float32 scales and
  // g_idx (pointers into the checkpoint and this object, which must outlive
  // them), for backends that keep the codes (worker/cuda/int_repack.h).
  PackedIntWeight packed_int() const {
    PackedIntWeight w = packed_;
    w.scales = scales_.data();
    w.g_idx = g_idx_.empty() ? nullptr : g_idx_.data();
    return w;
  }
  float fp8_row_scale(int64_t row) const { return scales_.size() > 1 ? scales_[row] : scales_[0]; }

 private:
  QuantConfig config_;
  std::string prefix_;
  int64_t out_ = 0, in_ = 0;
  PackedIntWeight packed_;          // AWQ / GPTQ
  const uint8_t* fp8_ = nullptr;    // FP8 weight
  std::vector<float> scales_;       // [groups, out], or FP8 [1] / [out]
  std::vector<int32_t> g_idx_;      // GPTQ desc_act
  int64_t stored_bytes_ = 0;
};

}  // namespace tpserve

#endif  // TPSERVE_COMMON_QUANT_QUANT_LINEAR_H_
