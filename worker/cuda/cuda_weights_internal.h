// Helpers shared by the two halves of the cuda_weights library: the
// checkpoint loader (cuda_weights.cc) and the dummy weights
// (cuda_weights_dummy.cc). Not part of its interface.
#ifndef TPSERVE_WORKER_CUDA_CUDA_WEIGHTS_INTERNAL_H_
#define TPSERVE_WORKER_CUDA_CUDA_WEIGHTS_INTERNAL_H_

#include <algorithm>
#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "common/status_macros.h"
#include "worker/cuda/cuda_check.h"
#include "worker/cuda/cuda_weights.h"

namespace tpserve::worker::cuda::weights_internal {

// A new device buffer of `elems` bf16 values, its bytes counted in `total`.
absl::StatusOr<DeviceBuffer> AllocBf16(int64_t elems, int64_t& total);

// Uploads a host vector to a new device buffer, counting its bytes.
template <typename T>
absl::StatusOr<DeviceBuffer> UploadVector(const std::vector<T>& v, int64_t& total) {
  TP_ASSIGN_OR_RETURN(DeviceBuffer b, DeviceBuffer::Allocate(std::max<size_t>(v.size(), 1) * sizeof(T)));
  TP_CUDA_CHECK(cudaMemcpy(b.data(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
  total += static_cast<int64_t>(v.size() * sizeof(T));
  return b;
}

// A packed int weight [n, k] in the layout its decode GEMV streams fastest
// (gemv_int.h's tiled layout where IntTilesPay says so).
absl::Status LayOutForDecode(LinearWeight& lw, int64_t n, int64_t k);

// A loaded layer's linear weights in `quant`'s format (one layer at a time,
// so loading needs one layer of bf16 beyond the quantized model).
absl::Status QuantizeLayer(LayerWeights& lw, const ModelConfig& c, const Partition& p, WeightQuant quant,
                           int64_t& total);

}  // namespace tpserve::worker::cuda::weights_internal

#endif  // TPSERVE_WORKER_CUDA_CUDA_WEIGHTS_INTERNAL_H_
