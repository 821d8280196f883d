// Where a rank's weights come from: a safetensors checkpoint, or seeded
// random values ("--load-format dummy") for runs at real model sizes without
// downloading the weights. Both hand out float32 row/column slices of a
// tensor whose full shape the caller states (and the source checks).
#ifndef TPSERVE_WORKER_MODEL_WEIGHT_SOURCE_H_
#define TPSERVE_WORKER_MODEL_WEIGHT_SOURCE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/quant/quant_config.h"
#include "common/safetensors/checkpoint.h"

namespace tpserve::worker {

// A provider of float32 weight slices.
class WeightSource {
 public:
  virtual ~WeightSource() = default;
  // Whether the tensor exists (dummy sources have every tensor).
  virtual bool Has(const std::string& name) const = 0;
  // Rows [begin, end) of `name` (elements for 1-D), which must have `shape`.
  virtual absl::StatusOr<std::vector<float>> Rows(const std::string& name,
                                                  const std::vector<int64_t>& shape,
                                                  int64_t begin, int64_t end) const = 0;
  // Columns [begin, end) of the 2-D tensor `name`, which must have `shape`.
  virtual absl::StatusOr<std::vector<float>> Columns(const std::string& name,
                                                     const std::vector<int64_t>& shape,
                                                     int64_t begin, int64_t end) const = 0;
};

// Reads from a memory-mapped checkpoint (only the requested slices' pages).
// With a `quantization` config (config.json's quantization_config), the
// logical "<layer>.weight" of every quantized linear layer (AWQ / GPTQ
// qweight+qzeros+scales(+g_idx), FP8 weight+weight_scale) is served
// dequantized to float32, only the requested rows or columns; every other
// tensor (and layers the checkpoint left unquantized) as stored.
std::unique_ptr<WeightSource> MakeCheckpointSource(
    std::unique_ptr<safetensors::Checkpoint> checkpoint, const QuantConfig& quantization = {});

// Seeded random weights: every element is a pure function of (seed, tensor
// name, element index), so any TP split sees slices of the same model. Norm
// weights are 1; everything else is uniform in [-0.05, 0.05).
std::unique_ptr<WeightSource> MakeDummySource(uint64_t seed);

}  // namespace tpserve::worker

#endif  // TPSERVE_WORKER_MODEL_WEIGHT_SOURCE_H_
