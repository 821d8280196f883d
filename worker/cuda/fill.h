// Values written in bulk: float32 -> bf16 conversion (the row-parallel sums
// before lm_head) and the seeded uniform fills of dummy weights.
#ifndef TPSERVE_WORKER_CUDA_FILL_H_
#define TPSERVE_WORKER_CUDA_FILL_H_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"

namespace tpserve::worker::cuda {

// out[i] = bf16(in[i]) for n elements (round to nearest even).
absl::Status Float32ToBf16(const float* in, __nv_bfloat16* out, size_t n, cudaStream_t stream);

// Fills `n` bf16 values with a deterministic uniform draw in [lo, hi) from
// (seed, element index): dummy weights generated on the device.
absl::Status FillUniformBf16(__nv_bfloat16* p, size_t n, uint64_t seed, float lo, float hi,
                             cudaStream_t stream);

}  // namespace tpserve::worker::cuda

#endif  // TPSERVE_WORKER_CUDA_FILL_H_
